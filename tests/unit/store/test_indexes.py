"""Migration 0005: each index is used by the query it was made for (EXPLAIN), and a database made with
the schema before it (0004), rows in it, upgrades without losing any.
tests/integration/test_postgres_indexes.py runs the same plans on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from mailroom.core.states import WAITING
from mailroom.store import listings
from mailroom.store.engine import SCHEMA_HEAD, _alembic_config, make_engine, transaction, upgrade
from mailroom.store.models import AuditEvent, Case, Document, Escalation, InboundMessage, Notice, Submission
from mailroom.store.readonly import ReadOnly, expand

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=30)


def _plans() -> list[tuple[str, Callable[[], Any]]]:
    """(index, the query it serves): the same statements the store runs (listings, claim, MI, timeline)."""
    sendable = ["queued", "deferred"]
    return [
        (
            "ix_submissions_state_id",
            lambda: listed(listings.submissions_listing("deferred"), ["s.id > :after"], "s.id", after=10),
        ),
        (
            "ix_submissions_state_next_attempt_at",
            lambda: (
                select(Submission)
                .where(col(Submission.state).in_(sendable), col(Submission.next_attempt_at) <= T0)
                .order_by(col(Submission.next_attempt_at), col(Submission.id))
                .limit(25)
            ),
        ),
        (
            "ix_submissions_created_at",
            lambda: (
                select(Submission.state, func.count())
                .where(col(Submission.created_at) >= T0, col(Submission.created_at) < LATER)
                .group_by(Submission.state)
            ),
        ),
        (
            "ix_notices_state_next_attempt_at",
            lambda: (
                select(Notice)
                .where(col(Notice.state).in_(sendable), col(Notice.next_attempt_at) <= T0)
                .order_by(col(Notice.next_attempt_at), col(Notice.id))
                .limit(25)
            ),
        ),
        (
            "ix_inbound_messages_state_id",
            # `inbox` runs one page per waiting state and merges them (views.inbox_page)
            lambda: listed(listings.inbound_listing(["needs_review"]), ["m.id > :after"], "m.id", after=10),
        ),
        (
            "ix_inbound_messages_received_at",
            lambda: select(InboundMessage.state, InboundMessage.applied_as).where(
                col(InboundMessage.review).is_not(None),
                col(InboundMessage.received_at) >= T0,
                col(InboundMessage.received_at) < LATER,
            ),
        ),
        (
            "ix_clocks_state_due_at",
            lambda: listed(listings.active_clocks_listing(), [], "k.due_at, k.id"),
        ),
        (
            "ix_escalations_created_at",
            lambda: (
                select(Escalation.kind, func.count())
                .where(col(Escalation.created_at) >= T0)
                .group_by(Escalation.kind)
            ),
        ),
        (
            "ix_audit_events_entity_entity_id_seq",
            lambda: (
                select(AuditEvent)
                .where(AuditEvent.entity == "submission", AuditEvent.entity_id == 7)
                .order_by(col(AuditEvent.seq))
            ),
        ),
    ]


def listed(listing: listings.Listing, extra: list[str], order: str, **params: Any) -> sa.TextClause:
    """A listing's page query as the CLI runs it (plain SQL, lists expanded), for SQLAlchemy to EXPLAIN."""
    sql, values = expand(listing.select(extra, order, 50), {**listing.params, **params})
    return sa.text(sql).bindparams(**values)


PLANS = _plans()


@contextmanager
def explaining(engine: Engine) -> Iterator[sa.Connection]:
    """A connection whose statements are EXPLAINed instead of run (the plan comes back as rows)."""
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "

    def explain(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> Any:
        return prefix + statement, parameters

    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            # Tiny test tables: without this the planner reads them whole, whatever the indexes.
            connection.exec_driver_sql("SET enable_seqscan = off")
        event.listen(connection, "before_cursor_execute", explain, retval=True)
        try:
            yield connection
        finally:
            event.remove(connection, "before_cursor_execute", explain)


def plan_of(connection: sa.Connection, query: Any) -> str:
    result = connection.execute(query)
    return "\n".join(" ".join(str(v) for v in row) for row in result.cursor.fetchall())  # type: ignore[attr-defined]


@pytest.mark.parametrize(("index", "query"), PLANS, ids=[name for name, _ in PLANS])
def test_each_index_serves_its_query_on_sqlite(engine: Engine, index: str, query: Callable[[], Any]) -> None:
    with explaining(engine) as connection:
        plan = plan_of(connection, query())
    assert index in plan, plan


def test_every_index_of_migration_0005_has_a_plan_checked() -> None:
    names = {name for name, _ in PLANS}
    assert names == set(_migration_0005().INDEXES_BY_NAME)


def _migration_0005() -> Any:
    import importlib.util

    path = Path(__file__).parents[3] / "mailroom/store/migrations/versions/0005_scale_indexes.py"
    spec = importlib.util.spec_from_file_location("migration_0005", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.INDEXES_BY_NAME = {name: (table, cols) for name, table, cols in module.INDEXES}
    return module


def fill_at_the_previous_schema(engine: Engine) -> None:
    """A few rows of every kind the listings read, written while the schema is at 0004."""
    with transaction(engine) as session:
        case = Case(case_ref="MH-100001", created_at=T0)
        session.add(case)
        session.flush()
        assert case.id is not None
        doc = Document(case_id=case.id, sha256="0" * 64, size=1, stored_path="/x", created_at=T0)
        session.add(doc)
        session.flush()
        assert doc.id is not None
        for n in range(3):
            session.add(
                Submission(
                    case_id=case.id,
                    document_id=doc.id,
                    report_type="support-plan",
                    state="deferred",
                    message_id=f"<{n}@x>",
                    next_attempt_at=T0,
                    created_at=T0,
                )
            )
        session.add(
            InboundMessage(
                mailbox="ingest",
                message_id="<m@x>",
                raw_sha256="1" * 64,
                state="needs_review",
                kind="other",
                review="why",
                case_id=case.id,
                received_at=T0,
            )
        )


def check_upgrade_from_the_previous_schema(engine: Engine) -> None:
    """Make the schema the one before (0004), put rows in, upgrade to the head: rows kept, indexes used."""
    command.upgrade(_alembic_config(engine), "0004")
    fill_at_the_previous_schema(engine)
    before, after = upgrade(engine)
    assert (before, after) == ("0004", SCHEMA_HEAD)
    inspector = sa.inspect(engine)
    found = {ix["name"] for table in inspector.get_table_names() for ix in inspector.get_indexes(table)}
    assert set(_migration_0005().INDEXES_BY_NAME) <= found
    with ReadOnly.of_engine(engine) as reader, reader.snapshot():
        page = listings.page_by_id(reader, listings.submissions_listing("deferred"), after=None, limit=2)
        assert [row["case_ref"] for row in page.rows] == ["MH-100001", "MH-100001"] and page.more == 1
        waiting = listings.page_by_id(reader, listings.inbound_listing(sorted(WAITING)), after=None, limit=50)
        assert len(waiting.rows) == 1 and waiting.more == 0
    command.downgrade(_alembic_config(engine), "0004")  # and back, for an operator who must roll back
    assert not set(_migration_0005().INDEXES_BY_NAME) & {
        ix["name"]
        for table in sa.inspect(engine).get_table_names()
        for ix in sa.inspect(engine).get_indexes(table)
    }


def test_a_database_made_with_the_previous_schema_upgrades_with_its_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    try:
        check_upgrade_from_the_previous_schema(engine)
    finally:
        engine.dispose()
