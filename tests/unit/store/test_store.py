"""Store rules: state moves are checked and audited together; the audit chain finds tampering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from mailroom.core.errors import InvalidTransition
from mailroom.core.states import SUBMISSION_MOVES, SubmissionState
from mailroom.store import audit, queries
from mailroom.store.engine import SCHEMA_HEAD, head_revision, transaction
from mailroom.store.models import AuditEvent, Case, Document, Submission

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _submission(engine: Engine) -> int:
    with transaction(engine) as session:
        case = Case(case_ref="MH-100001", created_at=T0)
        session.add(case)
        session.flush()
        assert case.id is not None
        doc = Document(case_id=case.id, sha256="0" * 64, size=1, stored_path="/x", created_at=T0)
        session.add(doc)
        session.flush()
        assert doc.id is not None
        sub = Submission(
            case_id=case.id,
            document_id=doc.id,
            report_type="support-plan",
            state=SubmissionState.QUEUED,
            created_at=T0,
        )
        session.add(sub)
        session.flush()
        assert sub.id is not None
        return sub.id


def test_the_schema_head_the_daemon_checks_is_the_newest_migration() -> None:
    assert head_revision() == SCHEMA_HEAD


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == []


def test_a_move_writes_its_audit_event_in_the_same_transaction(engine: Engine) -> None:
    sub_id = _submission(engine)
    with transaction(engine) as session:
        sub = queries.get_submission(session, sub_id)
        queries.move_submission(session, sub, SubmissionState.SENDING, now=T0, actor="test", action="claimed")
    with transaction(engine) as session:
        events = audit.all_events(session)
        assert [(e.action, e.from_state, e.to_state) for e in events] == [("claimed", "queued", "sending")]


def test_a_failed_transaction_leaves_neither_state_nor_event(engine: Engine) -> None:
    sub_id = _submission(engine)
    with pytest.raises(RuntimeError), transaction(engine) as session:
        sub = queries.get_submission(session, sub_id)
        queries.move_submission(session, sub, SubmissionState.SENDING, now=T0, actor="t", action="claimed")
        raise RuntimeError("crash before commit")
    with transaction(engine) as session:
        assert queries.get_submission(session, sub_id).state == "queued"
        assert audit.all_events(session) == []


def test_moves_outside_the_table_are_refused(engine: Engine) -> None:
    sub_id = _submission(engine)
    expected = "submission 1 is queued; it cannot become acknowledged"
    with pytest.raises(InvalidTransition, match=expected), transaction(engine) as session:
        sub = queries.get_submission(session, sub_id)
        queries.move_submission(session, sub, SubmissionState.ACKNOWLEDGED, now=T0, actor="t", action="x")


def test_every_state_has_a_row_in_the_move_table() -> None:
    assert set(SUBMISSION_MOVES) == set(SubmissionState)
    assert SUBMISSION_MOVES[SubmissionState.CANCELLED] == frozenset()


def _events(engine: Engine, count: int) -> None:
    with transaction(engine) as session:
        for i in range(count):
            audit.record(
                session,
                at=T0 + timedelta(seconds=i),
                actor="t",
                entity="case",
                entity_id=i,
                action="case-added",
                detail={"n": i},
            )


def test_audit_chain_verifies_and_finds_edits_and_deletions(engine: Engine) -> None:
    _events(engine, 5)
    with transaction(engine) as session:
        assert audit.verify(audit.all_events(session)) == []
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    with transaction(engine) as session:
        assert audit.verify(audit.all_events(session)) == ["event 3 was changed after it was written"]
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_events SET actor = 't' WHERE seq = 3"))
        connection.execute(sa.text("DELETE FROM audit_events WHERE seq = 2"))
    with transaction(engine) as session:
        problems = audit.verify(audit.all_events(session))
    assert "event 2 is missing (next found is 3)" in problems
    assert "event 3 does not follow the event before it" in problems


def test_the_streamed_verify_finds_what_the_whole_list_finds_across_batches(engine: Engine) -> None:
    _events(engine, 7)
    with transaction(engine) as session:
        assert audit.verify_stream(session, batch=2) == (7, [])
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
        connection.execute(sa.text("DELETE FROM audit_events WHERE seq = 5"))
    with transaction(engine) as session:
        whole = audit.verify(audit.all_events(session))
        assert audit.verify_stream(session, batch=2) == (6, whole)
        assert audit.verify_stream(session, batch=3) == (6, whole)
    assert (
        "event 3 was changed after it was written" in whole
        and "event 5 is missing (next found is 6)" in whole
    )


def test_times_come_back_aware_in_utc(engine: Engine) -> None:
    _events(engine, 1)
    with transaction(engine) as session:
        event = session.exec(select(AuditEvent)).one()
    assert event.at == T0 and event.at.tzinfo is not None


def test_naive_times_are_refused(engine: Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), transaction(engine) as session:
        session.add(Case(case_ref="MH-100002", created_at=datetime(2026, 1, 1)))
        session.flush()
