"""The hot loop of `audit verify`, light enough to run in a worker process of its own.

`check_rows` checks a run of raw rows (seq, at, actor, entity, entity_id, action, from_state, to_state,
detail, prev_hash, hash) on their own: each row's digest, and the links between neighbours inside the run.
The links into the run (its first row against the event before it) are the caller's, by `first` and
`last`; so a chain split into runs at any seq gives the same findings as one pass over it, in one process
or in several. A digest that does not match is only a candidate ("changed?"): `audit_scan.verify_chain`
has it decided the reference way (`_digest` through the ORM's column types) before reporting it.

Run as `python -m mailroom.store.audit_check`, this module is such a worker: it reads its dialect and
database from the first line of stdin (JSON), then one "low high" seq range a line, which it reads with
`SELECT[dialect]` and answers with one JSON line. It imports only the standard library and the
database driver: no SQLAlchemy, so it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import operator
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC
from typing import Any, TypeVar

_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode
_string: Any = json.encoder.encode_basestring_ascii
_MEMO_MAX = 50_000
CHUNK = 256  # rows a cursor is read and checked whole at a time (more: slower, out of the CPU's caches)
_INT_OR_NULL = frozenset({int, type(None)})
# The columns `_intact` checks a chunk at a time: seq, at, entity_id, prev_hash, hash.
_CHECKED = tuple(operator.itemgetter(index) for index in (0, 1, 4, 9, 10))
# The canonical text around the values that vary from event to event, by the values that repeat (action,
# actor, entity, from_state, to_state): one dict lookup a row instead of five encodings. And the canonical
# text of SQLite's detail text, by that text. A hit is exact: the keys are the very values encoded.
_Parts = tuple[str, str, str, str]
_K = TypeVar("_K")
_V = TypeVar("_V")


class _Memo(dict[_K, _V]):
    """A dict whose missing values `make` makes (`memo[key]` is one C lookup when the value is there);
    past _MEMO_MAX values it starts again, so a chain of unique details cannot grow it without end."""

    def __init__(self, make: Callable[[_K], _V]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key: _K) -> _V:
        if len(self) > _MEMO_MAX:
            self.clear()
        value = self[key] = self._make(key)
        return value


def _make_parts(key: tuple[Any, ...]) -> _Parts:
    """The four fixed stretches of an event's canonical JSON for these repeating values (a value of a
    type the writer never stores raises TypeError)."""
    action, actor, entity, from_state, to_state = key
    return (
        f'{{"action":{_string(action)},"actor":{_string(actor)},"at":"',
        f',"entity":{_string(entity)},"entity_id":',
        f',"from_state":{_nullable(from_state)},"prev_hash":',
        f',"to_state":{_nullable(to_state)}}}',
    )


def _make_body(detail: str) -> str:
    return str(_dumps(json.loads(detail)))


_parts_memo: _Memo[tuple[Any, ...], _Parts] = _Memo(_make_parts)
_bodies: _Memo[str, str] = _Memo(_make_body)

# What the hot loop reads, a range of seq at a time; on PostgreSQL the time and the JSON come as the text
# SQLite stores, so both databases' rows are read one way (psycopg would otherwise build a datetime and
# decode the JSON of every event: half its time). A value these do not render as the writer hashed it
# fails the fast check and is decided the reference way, never missed.
_COLUMNS = "seq, {at}, actor, entity, entity_id, action, from_state, to_state, {detail}, prev_hash, hash"
SELECT = {
    "sqlite": f"SELECT {_COLUMNS.format(at='at', detail='detail')} FROM audit_events"
    " WHERE seq >= ? AND seq < ? ORDER BY seq",
    "postgresql": "SELECT "
    + _COLUMNS.format(
        at="to_char(timezone('UTC', at), 'YYYY-MM-DD HH24:MI:SS.US') AS at",
        detail="CAST(detail AS TEXT) AS detail",
    )
    + " FROM audit_events WHERE seq >= %(low)s AND seq < %(high)s ORDER BY seq",
}


def bounds(dialect: str, low: int, high: int) -> Any:
    """The range's parameters as the dialect's driver takes them."""
    return (low, high) if dialect == "sqlite" else {"low": low, "high": high}


Found = tuple[
    str, int, int
]  # ("missing", expected seq, found seq) | ("follow", seq, 0) | ("changed?", seq, 0)


def _nullable(value: Any) -> str:
    return "null" if value is None else str(_string(value))


def _stamp(at: str) -> str:
    """'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, as SQLite holds it and PostgreSQL's to_char gives it) as
    isoformat; any other text is refused, so a changed time can only ever fail the fast check."""
    if len(at) != 26 or at[10] != " ":
        raise ValueError("not a stored time")
    return at[:10] + "T" + at[11:] + "+00:00"


def _entity_id(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is not int:
        raise TypeError("entity_id")
    return str(value)


def fast_canonical(row: Sequence[Any], text: bool) -> bytes:
    """`audit._digest`'s canonical JSON for a raw row: the keys in sorted order, each value encoded as
    json.dumps does (byte for byte; tests/unit/store/test_audit_fast.py holds it to that). `text`: the
    time and the detail as stored text (SQLite's, and PostgreSQL's as `audit_verify` selects them), else
    as a datetime and a dict."""
    seq, at, actor, entity, entity_id, action, from_state, to_state, detail, prev_hash = row[:10]
    head, middle, before_prev, tail = _parts_memo[action, actor, entity, from_state, to_state]
    stamp = _stamp(at) if text else at.astimezone(UTC).isoformat(timespec="microseconds")
    body = _bodies[detail] if text else str(_dumps(detail))
    return (
        f'{head}{stamp}","detail":{body}{middle}{_entity_id(entity_id)}{before_prev}{_string(prev_hash)}'
        f',"seq":{int(seq)}{tail}'
    ).encode("ascii")


def check_rows(
    rows: Iterable[Sequence[Any]],
) -> tuple[int, tuple[int, str] | None, tuple[int, str] | None, list[Found]]:
    """(rows checked, (first seq, its prev_hash), (last seq, its hash), what was found, in chain order),
    for rows with the time and the detail as stored text.

    `rows` is best a cursor: it is read CHUNK rows at a time, and a chunk is first checked whole
    (`_intact`: its texts built in one comprehension, hashed and compared as one list). Only a
    chunk that is not intact, or has a value the whole-chunk check does not take, is checked row by
    row (`_each`), which says exactly what is wrong and where.
    """
    fetch = getattr(rows, "fetchmany", None)
    if fetch is None:
        remaining = iter(rows)
        fetch = lambda size: list(itertools.islice(remaining, size))  # noqa: E731
    found: list[Found] = []
    first: tuple[int, str] | None = None
    count, expected_seq, expected_prev = 0, 0, ""
    while chunk := fetch(CHUNK):
        count += len(chunk)
        if first is None:
            first = (chunk[0][0], chunk[0][9])
        if not _intact(chunk, expected_seq, expected_prev):
            _each(chunk, expected_seq, expected_prev, found)
        expected_seq, expected_prev = chunk[-1][0] + 1, chunk[-1][10]
    last = None if first is None else (expected_seq - 1, expected_prev)
    return count, first, last, found


def _intact(chunk: Sequence[Sequence[Any]], expected_seq: int, expected_prev: str) -> bool:
    """True if every row of the chunk is as written and linked to the one before (expected_seq 0: the
    run's first row, whose links are the caller's); False says nothing yet (`_each` decides).

    The per-row checks of `_each` are done a column at a time in C: seqs consecutive, each prev_hash
    the hash before it, entity ids integers (or NULL), times 26 characters with a space at 10 (the
    text below drops it, so it is checked here). Then the canonical texts of the whole chunk, one
    f-string a row as in `_each`, hashed and compared in one go."""
    try:
        seqs, stamps, entity_ids, prevs, digests = (tuple(map(column, chunk)) for column in _CHECKED)
        if seqs != tuple(range(seqs[0], seqs[0] + len(chunk))) or prevs[1:] != digests[:-1]:
            return False
        if expected_seq and (seqs[0] != expected_seq or prevs[0] != expected_prev):
            return False
        if not _INT_OR_NULL.issuperset(map(type, entity_ids)) or set(map(len, stamps)) != {26}:
            return False
        if "".join(stamps)[10::26] != " " * len(chunk):
            return False
        parts, bodies, sha256 = _parts_memo, _bodies, hashlib.sha256
        texts = [
            f"{(p := parts[action, actor, entity, from_state, to_state])[0]}"
            f'{at[:10]}T{at[11:]}+00:00","detail":{bodies[detail]}{p[1]}'
            f'{"null" if entity_id is None else entity_id}{p[2]}"{prev_hash}","seq":{seq}{p[3]}'
            for seq, at, actor, entity, entity_id, action, from_state, to_state, detail, prev_hash, _ in chunk
        ]
        return [sha256(text.encode("ascii")).hexdigest() for text in texts] == list(digests)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError, UnicodeEncodeError):
        return False


def _each(rows: Iterable[Sequence[Any]], expected_seq: int, expected_prev: str, found: list[Found]) -> None:
    """What is wrong in these rows, row by row, in chain order (expected_seq 0: the run's first row,
    whose links are the caller's). The hot loop is `fast_canonical` written out, for the usual row: the
    next seq, linked to the hash before it (so its prev_hash is 64 hex digits, checked by that row's own
    digest, and goes into the text unescaped), the time as stored, an integer entity id, values seen
    before. Any other row takes `_odd_row`, which says the same of it at the speed of `fast_canonical`."""
    sha256 = hashlib.sha256
    parts, bodies = _parts_memo, _bodies
    for row in rows:
        seq, at, actor, entity, entity_id, action, from_state, to_state, detail, prev_hash, digest = row
        usual = (
            seq == expected_seq
            and prev_hash == expected_prev
            and type(entity_id) is int
            and type(at) is str
            and len(at) == 26
            and at[10] == " "
        )
        templates = parts.get((action, actor, entity, from_state, to_state)) if usual else None
        body = bodies.get(detail) if templates else None
        if body is None or templates is None:  # an odd row, a value not seen yet, or one no writer stores
            _odd_row(row, expected_seq, expected_prev, found)
        else:
            head, middle, before_prev, tail = templates
            text = (
                f'{head}{at[:10]}T{at[11:]}+00:00","detail":{body}{middle}{entity_id}'
                f'{before_prev}"{prev_hash}","seq":{seq}{tail}'
            )
            if sha256(text.encode("ascii")).hexdigest() != digest:
                found.append(("changed?", seq, 0))
        expected_prev, expected_seq = digest, seq + 1


def _odd_row(row: Sequence[Any], expected_seq: int, expected_prev: str, found: list[Found]) -> None:
    """What `check_rows` finds in a row off its hot path (expected_seq 0: the run's first row, whose
    links are the caller's). Filling the memos here puts the next row like it on the hot path."""
    seq, prev_hash = row[0], row[9]
    if expected_seq:
        if seq != expected_seq:
            found.append(("missing", expected_seq, seq))
        if prev_hash != expected_prev:
            found.append(("follow", seq, 0))
    try:
        intact = hashlib.sha256(fast_canonical(row, True)).hexdigest() == row[10]
    except (TypeError, ValueError, AttributeError, UnicodeEncodeError):  # a value the writer never stores
        intact = False
    if not intact:
        found.append(("changed?", seq, 0))


def _connect(setup: dict[str, Any]) -> Any:
    if setup["dialect"] == "sqlite":
        import sqlite3

        return sqlite3.connect(f"file:{setup['database']}?mode=ro", uri=True)
    import psycopg

    return psycopg.connect(setup["database"])


def worker() -> int:
    """The worker loop: stdin gives the setup, then seq ranges; stdout gets one JSON result per range."""
    gc.disable()  # the loop makes no cycles; a collection every few hundred rows costs ~15 %
    setup = json.loads(sys.stdin.readline())
    dialect = setup["dialect"]
    connection = _connect(setup)
    cursor = connection.cursor()
    for line in sys.stdin:
        low, high = (int(part) for part in line.split())
        cursor.execute(SELECT[dialect], bounds(dialect, low, high))
        count, first, last, found = check_rows(cursor)
        sys.stdout.write(json.dumps([count, first, last, found]) + "\n")
        sys.stdout.flush()
        if dialect != "sqlite":
            connection.rollback()
    connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(worker())
