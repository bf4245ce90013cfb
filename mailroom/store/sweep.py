"""Which open clocks the deadline sweep reads: only those that can have a level due by `now`.

A clock is skipped when its ladder's first step is still ahead (`first_step_bound`), or when every level
its kind can ever have is already recorded (an escalated clock past its last repeat, say): for those the
full scan's `due_actions` returns nothing, so skipping them fires exactly the same levels
(tests/unit/service/test_sweep_bound.py compares the two over random clocks and moments).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from mailroom.core.deadlines import (
    OPEN_STATES,
    ClockKind,
    ClockPolicy,
    ClockState,
    first_step_bound,
    ladder_levels,
)
from mailroom.core.workdays import CalendarRangeError, WorkCalendar
from mailroom.store.models import Case, Clock, Escalation

# The states in which `due_actions` acts on a clock of each kind (the decision clock only runs).
_ACTING = {
    ClockKind.ACKNOWLEDGEMENT: (ClockState.RUNNING, ClockState.BREACHED, ClockState.ESCALATED),
    ClockKind.DECISION: (ClockState.RUNNING,),
    ClockKind.CORRECTION: (ClockState.RUNNING, ClockState.BREACHED, ClockState.ESCALATED),
}


def open_clocks() -> Any:
    """Running, breached and escalated clocks with their cases (ix_clocks_state_due_at). Unordered: with
    `ORDER BY due_at` SQLite's planner walks every clock by due time (0.2 s at 592,000 clocks) instead of
    the few open ones by state; the caller orders the few it gets."""
    return (
        select(Clock, Case)
        .join(Case, col(Case.id) == col(Clock.case_id))
        .where(col(Clock.state).in_(list(OPEN_STATES)))
    )


def fired_levels(session: Session, clock_ids: Sequence[int]) -> dict[int, frozenset[str]]:
    """The levels already recorded for each of these clocks."""
    fired: dict[int, set[str]] = {}
    for start in range(0, len(clock_ids), 2000):
        chunk = list(clock_ids[start : start + 2000])
        for clock_id, level in session.exec(
            select(Escalation.clock_id, Escalation.level).where(col(Escalation.clock_id).in_(chunk))
        ).all():
            fired.setdefault(clock_id, set()).add(level)
    return {clock_id: frozenset(levels) for clock_id, levels in fired.items()}


def could_fire(policy: ClockPolicy, calendar: WorkCalendar, now: datetime) -> Any:
    """A WHERE clause on `clocks`: the clocks `due_actions` could return a level for at `now`."""
    branches = []
    bounds: list[datetime] = []
    for kind, states in _ACTING.items():
        levels = ladder_levels(kind, policy)
        complete = (
            select(Escalation.clock_id)
            .where(col(Escalation.level).in_(levels))
            .group_by(col(Escalation.clock_id))
            .having(func.count() == len(levels))
        )
        condition = [
            col(Clock.kind) == kind,
            col(Clock.state).in_(list(states)),
            col(Clock.id).not_in(complete),
        ]
        # beyond the calendar's years: read them all, as before, and let the sweep say why
        with contextlib.suppress(CalendarRangeError):
            bounds.append(first_step_bound(kind, now, calendar, policy))
            condition.append(col(Clock.due_at) <= bounds[-1])
        branches.append(sa.and_(*condition))
    if len(bounds) < len(_ACTING):
        return sa.or_(*branches)
    # The latest bound once more outside the branches: with it SQLite reads ix_clocks_state_due_at
    # (open states, due by then) instead of weighing each branch's OR.
    return sa.and_(col(Clock.due_at) <= max(bounds), sa.or_(*branches))
