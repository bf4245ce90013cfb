"""Keyset pages for the listings (`queue`, `inbox`, `clocks`, `escalations`) and the queries they run,
as plain SQL over a `ReadOnly` connection (no ORM: see readonly.py for why).

A page is the first `limit` rows after the key of the last row shown (`--after ID`), never an OFFSET, so
page 1,000 costs what page 1 costs; with it comes how many rows remain after it, counted in SQL. Each query
here is served by an index of migration 0005 (named in models.py), which tests/unit/store/test_indexes.py
checks with EXPLAIN on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mailroom.core.deadlines import OPEN_STATES
from mailroom.store.readonly import ReadOnly, Row

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    more: int  # rows after the last one in `rows`
    last: int | None  # the key to pass as `after` for the next page

    def map(self, view: Callable[[T], Any]) -> Page[Any]:
        return Page([view(row) for row in self.rows], self.more, self.last)


@dataclass(frozen=True)
class Listing:
    """The rows a listing shows (`columns` from `joined`) and the filter alone on `table`, to count
    what is left after a page without the joins."""

    columns: str
    joined: str  # FROM clause: the listed table as `alias`, and its joins
    table: str  # the listed table as `alias`, alone
    alias: str
    where: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    def select(self, extra: Sequence[str], order: str, limit: int) -> str:
        where = _where(self.where, extra)
        return f"SELECT {self.columns} FROM {self.joined}{where} ORDER BY {order} LIMIT {limit:d}"

    def count(self, extra: Sequence[str]) -> str:
        return f"SELECT count(*) FROM {self.table}{_where(self.where, extra)}"


def submissions_listing(state: str | None) -> Listing:
    """`queue [--state S]`: submissions by id (PK), or one state's by id (ix_submissions_state_id)."""
    return Listing(
        columns="s.id, c.case_ref, s.report_type, s.version, s.state, s.attempts, s.next_attempt_at, "
        "s.last_smtp_code, s.last_smtp_text, s.message_id",
        joined="submissions s JOIN cases c ON c.id = s.case_id",
        table="submissions s",
        alias="s",
        where=("s.state = :state",) if state else (),
        params={"state": state} if state else {},
    )


def inbound_listing(states: Sequence[str]) -> Listing:
    """`inbox [--state S]`: messages in these states by id (ix_inbound_messages_state_id)."""
    return Listing(
        columns="m.id, m.state, m.kind, m.trusted, m.sender, m.received_at, c.case_ref, m.match_method, "
        "m.submission_id, m.rules, m.cues, m.reasons, m.review, m.applied_as, m.detail",
        joined="inbound_messages m LEFT JOIN cases c ON c.id = m.case_id",
        table="inbound_messages m",
        alias="m",
        where=("m.state IN :states",),
        params={"states": list(states)},
    )


def active_clocks_listing() -> Listing:
    """`clocks`: running, breached and escalated clocks by due time (ix_clocks_state_due_at)."""
    return Listing(
        columns="k.id, k.kind, k.state, k.started_at, k.due_at, k.submission_id, k.calendar, c.case_ref",
        joined="clocks k JOIN cases c ON c.id = k.case_id",
        table="clocks k",
        alias="k",
        where=("k.state IN :active",),
        params={"active": [s.value for s in OPEN_STATES]},
    )


def escalations_listing() -> Listing:
    """`escalations`: newest first by id (PK), with the clock, case and notice of each."""
    return Listing(
        columns="e.id, c.case_ref, k.submission_id, k.kind AS clock, e.level, e.kind, e.recipients, "
        "e.created_at, n.state AS notice_state, n.sent_at",
        joined="escalations e JOIN clocks k ON k.id = e.clock_id JOIN cases c ON c.id = k.case_id "
        "LEFT JOIN notices n ON n.id = e.notice_id",
        table="escalations e",
        alias="e",
    )


def page_by_id(
    reader: ReadOnly, listing: Listing, *, after: int | None, limit: int, newest_first: bool = False
) -> Page[Row]:
    """One page of the listing ordered by its id (ascending, or descending with `newest_first`)."""
    key = f"{listing.alias}.id"
    beyond = f"{key} < :after" if newest_first else f"{key} > :after"
    order = f"{key} DESC" if newest_first else key
    keyed = () if after is None else (beyond,)
    rows = reader.rows(listing.select(keyed, order, limit), {**listing.params, "after": after})
    if not rows:
        return Page([], 0, None)
    last = int(rows[-1]["id"])
    more = reader.scalar(listing.count((beyond,)), {**listing.params, "after": last})
    return Page(rows, int(more), last)


def merge_pages(pages: Sequence[Page[Row]], limit: int) -> Page[Row]:
    """Pages of disjoint listings by ascending id, all after the same key, as one page of the union."""
    if len(pages) == 1:
        return pages[0]
    rows = sorted((row for page in pages for row in page.rows), key=lambda row: int(row["id"]))[:limit]
    if not rows:
        return Page([], 0, None)
    last = int(rows[-1]["id"])
    # A listing's rows after `last`: those it fetched beyond it, and all it counted after its own page
    # (a listing with rows still to count had a full page, so its last row is at or beyond `last`).
    more = sum(sum(int(row["id"]) > last for row in page.rows) + page.more for page in pages)
    return Page(rows, more, last)


def page_by_due(reader: ReadOnly, listing: Listing, *, after: int | None, limit: int) -> Page[Row]:
    """One page of clocks ordered by (due_at, id): `after` is the id of the last clock shown."""
    a = listing.alias
    beyond = f"({a}.due_at > :due OR ({a}.due_at = :due AND {a}.id > :after))"
    order = f"{a}.due_at, {a}.id"
    keyed: tuple[str, ...] = ()
    params = dict(listing.params)
    if after is not None:
        # The stored value as the driver gave it back: on SQLite, text compared as text.
        due = reader.scalar("SELECT due_at FROM clocks WHERE id = :id", {"id": after})
        if due is None:
            return Page([], 0, None)
        keyed, params = (beyond,), {**params, "due": due, "after": after}
    rows = reader.rows(listing.select(keyed, order, limit), params)
    if not rows:
        return Page([], 0, None)
    last = rows[-1]
    more = reader.scalar(listing.count((beyond,)), {**params, "due": last["due_at"], "after": last["id"]})
    return Page(rows, int(more), int(last["id"]))


def _where(base: Sequence[str], extra: Sequence[str]) -> str:
    conditions = [*base, *extra]
    return " WHERE " + " AND ".join(conditions) if conditions else ""
