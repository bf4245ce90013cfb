"""The audit trail: append-only and hash-chained.

Each event's hash covers its own fields and the previous event's hash, and sequence numbers have no gaps,
so `verify` finds a row that was edited, deleted or inserted out of order. Events hold ids and states,
never names or NI numbers, so they survive an erasure request intact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as orm_event
from sqlalchemy import orm
from sqlalchemy.orm import ORMExecuteState, SessionTransaction
from sqlalchemy.sql import visitors
from sqlmodel import Session, col, select

from mailroom.store.audit_scan import BATCH, GENESIS, verify_chain
from mailroom.store.models import AuditEvent
from mailroom.store.readonly import database_address

_HEAD = "mailroom.store.audit.head"
_PENDING = "mailroom.store.audit.pending"
# Serialises appends on PostgreSQL (SQLite's BEGIN IMMEDIATE already does); an arbitrary fixed key.
_ADVISORY_KEY = 0x6D61696C726F6F6D
_TABLE: sa.Table = AuditEvent.__table__  # type: ignore[attr-defined]


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    entity: str,
    entity_id: int | None,
    action: str,
    from_state: str | None = None,
    to_state: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one event inside the caller's transaction: it commits or rolls back with its change.

    Events are written with one multi-row INSERT when the transaction commits, or before a query in it
    that could read them (so such a read sees them): a send records three events, and building each as
    an ORM object cost more than the rest of recording it.
    """
    last_seq, last_hash = _chain_head(session)
    row: dict[str, Any] = {
        "seq": last_seq + 1,
        "at": at.astimezone(UTC),
        "actor": actor,
        "entity": entity,
        "entity_id": entity_id,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "detail": detail or {},
        "prev_hash": last_hash,
    }
    row["hash"] = _digest(row)
    session.info.setdefault(_PENDING, []).append(row)
    session.info[_HEAD] = (row["seq"], row["hash"])


@orm_event.listens_for(Session, "before_commit")
def _write_pending_at_the_commit(session: Session) -> None:
    """SQLAlchemy dispatches before_commit for a savepoint's release too: its events stay pending until
    the transaction commits (`savepoint` gives them back if it rolls back), so a catch-up's group writes
    its trail with one INSERT, not one a message."""
    if not session.in_nested_transaction():
        _write_pending(session)


def _write_pending(session: orm.Session) -> None:
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.connection().execute(sa.insert(_TABLE), rows)


@orm_event.listens_for(Session, "do_orm_execute")
def _write_pending_before_a_query(state: ORMExecuteState) -> None:
    if state.session.info.get(_PENDING) and _may_read_events(state.statement):
        _write_pending(state.session)


def _may_read_events(statement: Any) -> bool:
    """Whether a statement run in the session could read the audit trail (anywhere in it: a subquery
    too), so the events still pending must be in the table first. Most queries in a write path read
    cases, submissions and clocks; writing the events before each of them cost a catch-up an INSERT
    and a half a message. Text SQL names its tables only in its text: it counts as reading them."""
    if isinstance(statement, sa.TextClause):
        return True
    # An ORM statement holds the table annotated (a copy), so it is known by its name.
    return any(
        isinstance(element, sa.TableClause) and element.name == _TABLE.name
        for element in visitors.iterate(statement)
    )


def _chain_head(session: Session) -> tuple[int, str]:
    """The last event's (seq, hash), read once per transaction under a lock that keeps it ours.

    SQLite transactions here begin IMMEDIATE (one writer at a time); on PostgreSQL an advisory lock held
    to the end of the transaction serialises writers. So after the first read, the head can be kept in
    the session instead of queried for every event. `_forget_head` drops it when the transaction ends.
    """
    head: tuple[int, str] | None = session.info.get(_HEAD)
    if head is not None:
        return head
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()
    head = (last.seq, last.hash) if last else (0, GENESIS)
    session.info[_HEAD] = head
    return head


def hold_the_trail(session: Session) -> None:
    """Take the trail's lock now (on PostgreSQL; SQLite's write lock is already held), as the first
    event of the transaction would: a writer that locks rows and then records events takes it first,
    so two writers cannot each hold what the other waits for."""
    _chain_head(session)


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """A SAVEPOINT that the chain follows: if the block raises, its work and its events are rolled back
    and the head is again what it was before the block, so the next event takes the same seq.

    Use it rather than a bare `session.begin_nested()` wherever events are recorded. The events pending
    when it opens are pending again after a rollback (a query in the block may have written them inside
    it, and the rollback took them from the table); the head is read (on PostgreSQL: the advisory lock
    taken) outside the savepoint, so the lock is not released with it.
    """
    head = _chain_head(session)
    pending = list(session.info.get(_PENDING, ()))
    try:
        with session.begin_nested():
            yield
    except BaseException:
        # SQLAlchemy's after_rollback also fires for a savepoint (`_forget_head`): put both back.
        session.info[_PENDING] = pending
        session.info[_HEAD] = head
        raise


@orm_event.listens_for(Session, "after_rollback")  # a savepoint's too: `savepoint` puts the head back
def _forget_head(session: Session) -> None:
    session.info.pop(_HEAD, None)
    session.info.pop(_PENDING, None)


@orm_event.listens_for(Session, "after_transaction_end")
def _forget_head_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    """The head is the transaction's, kept from its first read to its end; a savepoint's release
    (after_commit fires for that too) keeps it, so a catch-up reads it once a group, not once a message."""
    if transaction.parent is None:
        _forget_head(session)


def event_hash(event: AuditEvent) -> str:
    return _digest({name: getattr(event, name) for name in _HASHED})


_HASHED = (
    "seq",
    "at",
    "actor",
    "entity",
    "entity_id",
    "action",
    "from_state",
    "to_state",
    "detail",
    "prev_hash",
)


def _digest(fields: Mapping[str, Any]) -> str:
    body = {name: fields[name] for name in _HASHED}
    body["at"] = fields["at"].astimezone(UTC).isoformat(timespec="microseconds")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def verify(events: Iterable[AuditEvent]) -> list[str]:
    """Every break in the chain, as one line each; an empty list means the trail is intact."""
    problems: list[str] = []
    expected_prev, expected_seq = GENESIS, 1
    for event in events:
        if event.seq != expected_seq:
            problems.append(f"event {expected_seq} is missing (next found is {event.seq})")
        if event.prev_hash != expected_prev:
            problems.append(f"event {event.seq} does not follow the event before it")
        if event_hash(event) != event.hash:
            problems.append(f"event {event.seq} was changed after it was written")
        expected_prev, expected_seq = event.hash, event.seq + 1
    return problems


def verify_stream(
    session: Session, *, batch: int = BATCH, since: int = 0, workers: int | None = None
) -> tuple[int, list[str]]:
    """`audit verify` on a long trail, in the session's transaction: events after `since` read `batch` at
    a time by seq (a keyset, never OFFSET) as raw DB-API rows, so memory stays flat however long the
    chain is, in one worker process a CPU (`audit_scan.verify_chain`); the findings are the same as in
    one process, in the same order. With `since`, the chain starts from event `since`'s stored hash (the
    caller has checked it against a signed checkpoint)."""
    connection = session.connection()
    expected_prev = GENESIS
    if since:
        found = connection.execute(sa.select(_TABLE.c.hash).where(_TABLE.c.seq == since)).scalar()
        if found is None:
            return 0, [f"event {since} (the checkpoint) is missing"]
        expected_prev = found
    raw = connection.connection.dbapi_connection
    assert raw is not None
    return verify_chain(
        raw,
        connection.dialect.name,
        _worker_database(connection),
        lambda seq: _slow_match(connection, seq),
        since=since,
        expected_prev=expected_prev,
        batch=batch,
        workers=workers,
    )


def _worker_database(connection: sa.Connection) -> str | None:
    """What a worker connects to: SQLite's file (not an in-memory database) or PostgreSQL's conninfo."""
    return database_address(connection.engine.url.render_as_string(hide_password=False))


def matches_reference(engine: sa.Engine, seq: int) -> bool:
    """Event `seq` checked the reference way (`_digest` over the ORM's column types): for `audit verify`,
    which reads without the ORM and asks this only of an event its fast path did not reproduce."""
    with engine.connect() as connection:
        return _slow_match(connection, seq)


def _slow_match(connection: sa.Connection, seq: int) -> bool:
    """The reference check of one event, through the ORM's column types (`_digest` exactly)."""
    columns = [_TABLE.c[name] for name in (*_HASHED, "hash")]
    row = connection.execute(sa.select(*columns).where(_TABLE.c.seq == seq)).mappings().one()
    return bool(_digest(row) == row["hash"])  # type: ignore[arg-type]


def all_events(session: Session) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))))
