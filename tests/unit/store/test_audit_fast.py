"""`audit verify`'s fast path: its canonical text is byte for byte `_digest`'s (so existing chains verify
unchanged), and an edit of any hashed field is still found. tests/integration/test_postgres_audit.py runs
the same checks on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mailroom.store import audit, audit_check
from mailroom.store.engine import transaction

T0 = datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC)
DETAILS = [
    {},
    {"kind": "acknowledgement", "due_at": "2026-03-30T17:00:00+01:00"},
    {"why": 'quote " and \\ back\nslash', "é": "naïve – “dash”", "n": [1, 2.5, None, True]},
    {"z": {"b": 1, "a": {}}, "a": []},
]
EDITS = [
    "actor = 'mallory'",
    "at = '2026-03-29 00:59:59.999998'",
    "at = '2026-03-29T00:59:59.999999'",
    'detail = \'{"kind": "decision"}\'',
    "entity_id = 99",
    "action = 'sent '",
    "from_state = NULL",
    "to_state = 'met'",
    "prev_hash = '" + "1" * 64 + "'",
]


def write_events(engine: Engine, n: int = 12) -> None:
    with transaction(engine) as session:
        for i in range(n):
            audit.record(
                session,
                at=T0 + timedelta(microseconds=i),
                actor=["daemon:clocks", "ops@example.org", "naïve"][i % 3],
                entity="submission",
                entity_id=None if i % 4 == 0 else 10**6 + i,
                action="sent",
                from_state="queued" if i % 2 else None,
                to_state="sent",
                detail=DETAILS[i % len(DETAILS)],
            )


def check_fast_path(engine: Engine) -> None:
    write_events(engine)
    table = sa.table("audit_events", *(sa.column(c) for c in (*audit._HASHED, "hash")))
    with transaction(engine) as session:
        raw = session.connection().connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute(str(sa.select(table).order_by(sa.text("seq")).compile(session.connection())))
        sqlite = engine.dialect.name == "sqlite"
        for row, event in zip(cursor.fetchall(), audit.all_events(session), strict=True):
            reference = {name: getattr(event, name) for name in audit._HASHED}
            reference["at"] = event.at.astimezone(UTC).isoformat(timespec="microseconds")
            expected = json.dumps(reference, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
            assert audit_check.fast_canonical(row, sqlite) == expected.encode("ascii")
            assert hashlib.sha256(expected.encode()).hexdigest() == event.hash
        assert audit.verify_stream(session, batch=5) == (12, [])
        assert _whole_chunk_intact(raw, engine.dialect.name)  # the fast path is the one taken
    for edit in EDITS:
        if "T00" in edit and engine.dialect.name != "sqlite":
            continue  # a text form of the time only SQLite can hold
        with engine.begin() as connection:
            before = connection.execute(sa.text("SELECT * FROM audit_events WHERE seq = 6")).mappings().one()
            connection.execute(sa.text(f"UPDATE audit_events SET {edit} WHERE seq = 6"))
        with transaction(engine) as session:
            count, problems = audit.verify_stream(session, batch=5)
            assert count == 12 and problems, edit
            raw = session.connection().connection.dbapi_connection
            assert not _whole_chunk_intact(raw, engine.dialect.name), edit
            assert problems == audit.verify(audit.all_events(session)), edit
        with engine.begin() as connection:
            values = {k: v for k, v in before.items() if k != "seq"}
            if isinstance(values["detail"], dict):
                values["detail"] = json.dumps(values["detail"])
            sets = ", ".join(f"{k} = :{k}" for k in values)
            connection.execute(sa.text(f"UPDATE audit_events SET {sets} WHERE seq = 6"), values)
        with transaction(engine) as session:
            assert audit.verify_stream(session, batch=5) == (12, []), edit


def _whole_chunk_intact(raw: Any, dialect: str) -> bool:
    """`audit_check._intact` over all the events as one chunk, read as the workers read them."""
    cursor = raw.cursor()
    cursor.execute(audit_check.SELECT[dialect], audit_check.bounds(dialect, 1, 10**6))
    rows = cursor.fetchall()
    cursor.close()
    return audit_check._intact(rows, 0, "")


def test_the_fast_verify_hashes_as_the_writer_does_and_finds_every_edit_on_sqlite(engine: Engine) -> None:
    check_fast_path(engine)
