"""The hot loop of `audit verify`, light enough to run in a worker process of its own.

`check_rows` checks a run of raw rows (seq, at, actor, entity, entity_id, action, from_state, to_state,
detail, prev_hash, hash) on their own: each row's digest, and the links between neighbours inside the run.
The links into the run (its first row against the event before it) are the caller's, by `first` and
`last`; so a chain split into runs at any seq gives the same findings as one pass over it, in one process
or in several. A digest that does not match is only a candidate ("changed?"): `audit.verify_stream`
confirms it the reference way (`_digest` through the ORM's column types) before reporting it.

Run as `python -m mailroom.store.audit_check`, this module is such a worker: it reads its dialect, SQL
and database from the first line of stdin (JSON), then one "low high" seq range a line, and answers each
with one JSON line. It imports only the standard library and the database driver: no SQLAlchemy, so it
starts in a few tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode
_string: Any = json.encoder.encode_basestring_ascii
_MEMO_MAX = 50_000
# Encoded text of the values that repeat (actors, actions, states; SQLite's detail text), by value. Only
# str keys and None are stored: a str never equals a value of another type, so a hit is always exact.
_texts: dict[Any, str] = {None: "null"}
_bodies: dict[str, str] = {"{}": "{}"}

Found = tuple[
    str, int, int
]  # ("missing", expected seq, found seq) | ("follow", seq, 0) | ("changed?", seq, 0)


def _text(value: Any) -> str:
    found = _texts.get(value)
    if found is None:
        if len(_texts) > _MEMO_MAX:
            _texts.clear()
            _texts[None] = "null"
        found = _texts[value] = str(_string(value))
    return found


def _body(detail: Any, text: bool) -> str:
    if not text:
        return str(_dumps(detail))
    found = _bodies.get(detail)
    if found is None:
        if len(_bodies) > _MEMO_MAX:
            _bodies.clear()
        found = _bodies[detail] = str(_dumps(json.loads(detail)))
    return found


def fast_canonical(row: Sequence[Any], text: bool) -> bytes:
    """`audit._digest`'s canonical JSON for a raw row: the keys in sorted order, each value encoded as
    json.dumps does (byte for byte; tests/unit/store/test_audit_fast.py holds it to that)."""
    seq, at, actor, entity, entity_id, action, from_state, to_state, detail, prev_hash = row[:10]
    if text:  # 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC; anything else goes the reference way (a mismatch)
        stamp = at[:10] + "T" + at[11:] + "+00:00" if len(at) == 26 and at[10] == " " else at
    else:
        stamp = at.astimezone(UTC).isoformat(timespec="microseconds")
    return (
        f'{{"action":{_text(action)},"actor":{_text(actor)},"at":"{stamp}","detail":{_body(detail, text)},'
        f'"entity":{_text(entity)},"entity_id":{"null" if entity_id is None else int(entity_id)},'
        f'"from_state":{_text(from_state)},"prev_hash":{_string(prev_hash)},"seq":{int(seq)},'
        f'"to_state":{_text(to_state)}}}'
    ).encode("ascii")


def check_rows(
    rows: Iterable[Sequence[Any]], text: bool
) -> tuple[int, tuple[int, str] | None, tuple[int, str] | None, list[Found]]:
    """(rows checked, (first seq, its prev_hash), (last seq, its hash), what was found, in chain order)."""
    sha256 = hashlib.sha256
    canonical = fast_canonical
    found: list[Found] = []
    first: tuple[int, str] | None = None
    count, expected_seq, expected_prev = 0, 0, ""
    for row in rows:
        seq = row[0]
        if first is None:
            first = (seq, row[9])
        else:
            if seq != expected_seq:
                found.append(("missing", expected_seq, seq))
            if row[9] != expected_prev:
                found.append(("follow", seq, 0))
        try:
            intact = sha256(canonical(row, text)).hexdigest() == row[10]
        except (TypeError, ValueError, AttributeError):  # a value of a type the writer never stores
            intact = False
        if not intact:
            found.append(("changed?", seq, 0))
        expected_prev, expected_seq = row[10], seq + 1
        count += 1
    last = None if first is None else (expected_seq - 1, expected_prev)
    return count, first, last, found


def _connect(setup: dict[str, Any]) -> Any:
    if setup["dialect"] == "sqlite":
        import sqlite3

        return sqlite3.connect(f"file:{setup['database']}?mode=ro", uri=True)
    import psycopg

    return psycopg.connect(setup["database"])


def worker() -> int:
    """The worker loop: stdin gives the setup, then seq ranges; stdout gets one JSON result per range."""
    setup = json.loads(sys.stdin.readline())
    sqlite = setup["dialect"] == "sqlite"
    connection = _connect(setup)
    cursor = connection.cursor()
    for line in sys.stdin:
        low, high = (int(part) for part in line.split())
        cursor.execute(setup["sql"], (low, high) if sqlite else {"low": low, "high": high})
        count, first, last, found = check_rows(cursor.fetchall(), text=True)
        sys.stdout.write(json.dumps([count, first, last, found]) + "\n")
        sys.stdout.flush()
        if not sqlite:
            connection.rollback()
    connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(worker())
