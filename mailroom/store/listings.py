"""Keyset pages for the listings (`queue`, `inbox`, `clocks`, `escalations`) and the queries they run.

A page is the first `limit` rows after the key of the last row shown (`--after ID`), never an OFFSET, so
page 1,000 costs what page 1 costs; with it comes how many rows remain after it, counted in SQL. Each query
here is served by an index of migration 0004 (named in models.py), which tests/unit/store/test_indexes.py
checks with EXPLAIN on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from mailroom.core.deadlines import ClockState
from mailroom.store.models import Case, Clock, Escalation, InboundMessage, Notice, Submission

T = TypeVar("T")
ACTIVE_CLOCKS = (ClockState.RUNNING, ClockState.BREACHED, ClockState.ESCALATED)
CLOCK_ORDER = (col(Clock.due_at), col(Clock.id))


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    more: int  # rows after the last one in `rows`
    last: int | None  # the key to pass as `after` for the next page

    def map(self, view: Callable[[T], Any]) -> Page[Any]:
        return Page([view(row) for row in self.rows], self.more, self.last)


@dataclass(frozen=True)
class Listing:
    """The rows a listing shows (`query`, joins included) and the filter alone, to count what is left."""

    query: Any
    table: Any
    where: tuple[Any, ...] = ()

    def rows(self, *extra: Any) -> Any:
        return self.query.where(*self.where, *extra)

    def count(self, *extra: Any) -> Any:
        return select(func.count()).select_from(self.table).where(*self.where, *extra)


def submissions_listing(state: str | None) -> Listing:
    """`queue [--state S]`: submissions by id (PK), or one state's by id (ix_submissions_state_id)."""
    query = select(Submission, Case.case_ref).join(Case, col(Case.id) == col(Submission.case_id))
    return Listing(query, Submission, (Submission.state == state,) if state else ())


def inbound_listing(states: Sequence[str]) -> Listing:
    """`inbox [--state S]`: messages in these states by id (ix_inbound_messages_state_id)."""
    query = select(InboundMessage, Case.case_ref).join(
        Case, col(Case.id) == col(InboundMessage.case_id), isouter=True
    )
    return Listing(query, InboundMessage, (col(InboundMessage.state).in_(list(states)),))


def active_clocks_listing() -> Listing:
    """`clocks` and the sweep: running, breached and escalated clocks by due time (ix_clocks_state_due_at)."""
    query = select(Clock, Case).join(Case, col(Case.id) == col(Clock.case_id))
    return Listing(query, Clock, (col(Clock.state).in_(list(ACTIVE_CLOCKS)),))


def escalations_listing() -> Listing:
    """`escalations`: newest first by id (PK), with the clock, case and notice of each."""
    query = (
        select(Escalation, Clock, Case, Notice)
        .join(Clock, col(Clock.id) == col(Escalation.clock_id))
        .join(Case, col(Case.id) == col(Clock.case_id))
        .join(Notice, col(Notice.id) == col(Escalation.notice_id), isouter=True)
    )
    return Listing(query, Escalation)


def page_by_id(
    session: Session,
    listing: Listing,
    id_column: Any,
    *,
    after: int | None,
    limit: int,
    newest_first: bool = False,
) -> Page[Any]:
    """One page of the listing ordered by `id_column` (ascending, or descending with `newest_first`)."""

    def beyond(key: int) -> Any:
        return id_column < key if newest_first else id_column > key

    order = id_column.desc() if newest_first else id_column
    keyed = () if after is None else (beyond(after),)
    rows = list(session.exec(listing.rows(*keyed).order_by(order).limit(limit)).all())
    if not rows:
        return Page([], 0, None)
    last = _id_of(rows[-1])
    return Page(rows, _scalar(session, listing.count(beyond(last))), last)


def page_by_due(session: Session, listing: Listing, *, after: int | None, limit: int) -> Page[Any]:
    """One page of clocks ordered by (due_at, id): `after` is the id of the last clock shown."""
    keyed = () if after is None else (_after_clock(session, after),)
    query = listing.rows(*keyed).order_by(*CLOCK_ORDER).limit(limit)
    rows = list(session.exec(query).all())
    if not rows:
        return Page([], 0, None)
    last = _id_of(rows[-1])
    return Page(rows, _scalar(session, listing.count(_after_clock(session, last))), last)


def _after_clock(session: Session, clock_id: int) -> Any:
    due = session.exec(select(Clock.due_at).where(Clock.id == clock_id)).first()
    if due is None:
        return sa.false()
    return sa.or_(col(Clock.due_at) > due, sa.and_(col(Clock.due_at) == due, col(Clock.id) > clock_id))


def _id_of(row: Any) -> int:
    first = row[0] if isinstance(row, tuple | sa.Row) else row
    return int(first.id)


def _scalar(session: Session, query: Any) -> int:
    return int(session.exec(query).one())
