"""The audit chain across savepoints: a catch-up applies a group of messages in one transaction with a
SAVEPOINT each. The chain's head is read once a transaction, the events of all its savepoints are written
at the commit (one INSERT), a rolled-back savepoint takes its events with it and the next event takes its
seq, events pending when it opened survive its rollback even if a query in it wrote them, and a query
that reads the trail sees the events still pending. On PostgreSQL the same checks run in
tests/integration/test_postgres_audit_savepoint.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from mailroom.store import audit
from mailroom.store.engine import transaction
from mailroom.store.models import AuditEvent, Case
from tests.support.sql import statements

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class Boom(Exception):
    pass


def _event(session: Session, n: int) -> None:
    audit.record(session, at=T0, actor="test", entity="case", entity_id=n, action=f"step-{n}")


def check_a_group_reads_the_head_once_and_writes_its_events_once(engine: Engine) -> None:
    with statements(engine) as seen, transaction(engine) as session:
        for n in range(1, 6):
            with audit.savepoint(session):
                _event(session, n)
                session.exec(select(Case).where(Case.id == n)).all()  # reads no events: writes nothing
                _event(session, n * 10)
    assert seen["SELECT AUDIT_EVENTS.SEQ,"] == 1, seen
    assert seen["INSERT INTO"] == 1, seen
    with Session(engine) as session:
        assert audit.verify(audit.all_events(session)) == []
        assert len(audit.all_events(session)) == 10


def check_a_rolled_back_savepoint_takes_its_events_and_keeps_the_others(engine: Engine) -> None:
    with transaction(engine) as session:
        _event(session, 1)  # pending outside any savepoint when the first one opens
        with audit.savepoint(session):
            _event(session, 2)
        with pytest.raises(Boom), audit.savepoint(session):
            _event(session, 3)
            session.exec(select(func.count()).select_from(AuditEvent)).one()  # written inside it
            _event(session, 4)
            raise Boom
        _event(session, 5)
    with Session(engine) as session:
        events = audit.all_events(session)
    assert [(e.seq, e.entity_id) for e in events] == [(1, 1), (2, 2), (3, 5)]
    assert audit.verify(events) == []


def check_events_pending_before_a_savepoint_survive_its_rollback(engine: Engine) -> None:
    with transaction(engine) as session:
        with audit.savepoint(session):
            _event(session, 1)  # released: still pending, not yet in the table
        with pytest.raises(Boom), audit.savepoint(session):
            _event(session, 2)
            session.exec(select(func.count()).select_from(AuditEvent)).one()  # writes 1 and 2 in here
            raise Boom  # takes 1 and 2 out of the table again: 1 must be pending once more
        _event(session, 3)
    with Session(engine) as session:
        events = audit.all_events(session)
    assert [(e.seq, e.entity_id) for e in events] == [(1, 1), (2, 3)]
    assert audit.verify(events) == []


def check_a_query_on_the_trail_sees_the_pending_events(engine: Engine) -> None:
    with transaction(engine) as session:
        _event(session, 1)
        _event(session, 2)
        with audit.savepoint(session):
            _event(session, 3)
            in_a_subquery = select(select(func.count()).select_from(AuditEvent).scalar_subquery())
            assert session.exec(in_a_subquery).one() == 3
            assert session.exec(select(func.count()).select_from(AuditEvent)).one() == 3
        assert session.execute(sa.text("SELECT count(*) FROM audit_events")).scalar() == 3
    with Session(engine) as session:
        assert audit.verify(audit.all_events(session)) == []


def check_the_next_transaction_reads_the_head_again(engine: Engine) -> None:
    with transaction(engine) as session, audit.savepoint(session):
        _event(session, 1)
    with pytest.raises(Boom), transaction(engine) as session:
        _event(session, 2)
        raise Boom
    with statements(engine) as seen, transaction(engine) as session:
        _event(session, 3)
    assert seen["SELECT AUDIT_EVENTS.SEQ,"] == 1, seen
    with Session(engine) as session:
        events = audit.all_events(session)
    assert [(e.seq, e.entity_id) for e in events] == [(1, 1), (2, 3)]
    assert audit.verify(events) == []


CHECKS = [
    check_a_group_reads_the_head_once_and_writes_its_events_once,
    check_a_rolled_back_savepoint_takes_its_events_and_keeps_the_others,
    check_events_pending_before_a_savepoint_survive_its_rollback,
    check_a_query_on_the_trail_sees_the_pending_events,
    check_the_next_transaction_reads_the_head_again,
]


@pytest.mark.parametrize("check", CHECKS, ids=[check.__name__[6:] for check in CHECKS])
def test_the_chain_across_savepoints_on_sqlite(engine: Engine, check: Callable[[Engine], None]) -> None:
    check(engine)
