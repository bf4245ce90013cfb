"""Clocks: when each one is due, and which reminder, escalation or acceptance is owed at a given moment.

Pure: `now` is always a parameter and nothing is written here. The caller stores one row per (clock, level)
under a unique constraint and passes the levels already written back in `ClockSnapshot.fired_levels`, so a
level is returned until it is recorded and never after. Definitions and worked examples: docs/clocks.md.

Every clock has a *ladder* of levels in time order:

    reminder-2, reminder-1        (correction clock by default: working days before the due time)
    escalation-1 .. escalation-M  (acknowledgement and correction clocks: at the due time, then every N
                                   working days while the clock stays breached)
    breach                        (decision clock only: the window closed with no rejection -> "accept")

At any moment only the latest level whose time has come is acted on; earlier levels that were never recorded
(the daemon was down, say) come back as `skipped`, so nobody is told "2 working days left" after the deadline
and the performance manager gets one message per sweep, not a burst.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Final

from mailroom.core.workdays import WorkCalendar


class ClockKind(StrEnum):
    ACKNOWLEDGEMENT = "acknowledgement"  # DWP's automated response expected after sending
    DECISION = "decision"  # window in which a rejection may still arrive
    CORRECTION = "correction"  # time to resubmit after a rejection


class ClockState(StrEnum):
    RUNNING = "running"
    MET = "met"
    BREACHED = "breached"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"


class ActionKind(StrEnum):
    REMINDER = "reminder"  # to the provider team
    ESCALATION = "escalation"  # to the performance manager (and the provider team)
    ACCEPT = "accept"  # decision window closed: the submission is "accepted" (no rejection received)
    SKIPPED = "skipped"  # a level whose moment passed unrecorded; record it, send nothing


C = ClockState

# design.md §3: running -> met | breached -> escalated, or cancelled. A clock that is met late (a resubmission
# after the breach) goes to `met` from `breached` or `escalated`, which stops the repeat escalations.
CLOCK_MOVES: Final[Mapping[ClockState, frozenset[ClockState]]] = {
    C.RUNNING: frozenset({C.MET, C.BREACHED, C.CANCELLED}),
    C.BREACHED: frozenset({C.ESCALATED, C.MET, C.CANCELLED}),
    C.ESCALATED: frozenset({C.MET, C.CANCELLED}),
    C.MET: frozenset(),
    C.CANCELLED: frozenset(),
}

# Not yet met or cancelled: what `clocks` lists and the sweep looks at.
OPEN_STATES: Final = (C.RUNNING, C.BREACHED, C.ESCALATED)

# The decision clock only ever closes; the others keep escalating after the breach.
_ACTIVE_STATES: Final[Mapping[ClockKind, frozenset[ClockState]]] = {
    ClockKind.ACKNOWLEDGEMENT: frozenset({C.RUNNING, C.BREACHED, C.ESCALATED}),
    ClockKind.DECISION: frozenset({C.RUNNING}),
    ClockKind.CORRECTION: frozenset({C.RUNNING, C.BREACHED, C.ESCALATED}),
}

LEVEL_BREACH: Final = "breach"


def reminder_level(days_before: int) -> str:
    return f"reminder-{days_before}"


def escalation_level(number: int) -> str:
    return f"escalation-{number}"


def can_move(current: ClockState, target: ClockState) -> bool:
    return target in CLOCK_MOVES[current]


def state_moves(current: ClockState, action: ActionKind) -> tuple[ClockState, ...]:
    """The states to write, in order, when `action` is applied to a clock in `current` (may be none)."""
    if action == ActionKind.ACCEPT:
        return (C.MET,) if current == C.RUNNING else ()
    if action == ActionKind.ESCALATION:
        path = {C.RUNNING: (C.BREACHED, C.ESCALATED), C.BREACHED: (C.ESCALATED,)}
        return path.get(current, ())
    return ()


@dataclass(frozen=True)
class ClockPolicy:
    """Clock lengths, reminders and the escalation ladder in working days ([clocks], [escalation] config)."""

    acknowledgement_days: int = 1
    decision_days: int = 5
    correction_days: int = 5
    acknowledgement_reminders: tuple[int, ...] = ()
    correction_reminders: tuple[int, ...] = (2, 1)
    repeat_every_days: int = 2
    max_escalations: int = 3
    count_event_day: bool = False

    def __post_init__(self) -> None:
        for name in ("acknowledgement_days", "decision_days", "correction_days", "repeat_every_days"):
            _require_at_least(name, getattr(self, name), 1)
        _require_at_least("max_escalations", self.max_escalations, 1)
        for kind in (ClockKind.ACKNOWLEDGEMENT, ClockKind.CORRECTION):
            self._check_reminders(kind)

    def _check_reminders(self, kind: ClockKind) -> None:
        name = f"{kind}_reminders"
        offsets: tuple[int, ...] = getattr(self, name)
        if len(set(offsets)) != len(offsets):
            raise ValueError(f"clock policy: {name} lists a day twice: {list(offsets)}")
        # Beyond the clock's length a reminder would fall before the clock starts.
        longest = self.length(kind) - (1 if self.count_event_day else 0)
        for offset in offsets:
            if not 1 <= offset <= longest:
                raise ValueError(
                    f"clock policy: {name} must be between 1 and {longest} working days, got {offset}"
                )

    @classmethod
    def default(cls) -> ClockPolicy:
        return cls()

    def length(self, kind: ClockKind) -> int:
        lengths = {
            ClockKind.ACKNOWLEDGEMENT: self.acknowledgement_days,
            ClockKind.DECISION: self.decision_days,
            ClockKind.CORRECTION: self.correction_days,
        }
        return lengths[kind]

    def reminders(self, kind: ClockKind) -> tuple[int, ...]:
        """Reminder offsets, earliest reminder first; the decision window is DWP's, so it has none."""
        offsets = {
            ClockKind.ACKNOWLEDGEMENT: self.acknowledgement_reminders,
            ClockKind.CORRECTION: self.correction_reminders,
        }.get(kind, ())
        return tuple(sorted(offsets, reverse=True))


def _require_at_least(name: str, value: int, lowest: int) -> None:
    if value < lowest:
        raise ValueError(f"clock policy: {name} must be at least {lowest}, got {value}")


@dataclass(frozen=True)
class ClockPlan:
    """A clock about to start: what the store writes, including the calendar the due time came from."""

    kind: ClockKind
    started_at: datetime
    due_at: datetime
    calendar_name: str
    holidays_version: str


def start_clock(
    kind: ClockKind, started_at: datetime, policy: ClockPolicy, calendar: WorkCalendar
) -> ClockPlan:
    due_at = calendar.add_working_days(
        started_at, policy.length(kind), count_event_day=policy.count_event_day
    )
    return ClockPlan(kind, started_at, due_at, calendar.name, calendar.holidays_version)


@dataclass(frozen=True)
class ClockSnapshot:
    """A stored clock as the sweep sees it; `fired_levels` are the levels already recorded for it."""

    id: int
    kind: ClockKind
    state: ClockState
    started_at: datetime
    due_at: datetime
    submission_id: int
    case_ref: str
    fired_levels: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class LadderStep:
    level: str
    action: ActionKind
    at: datetime


@dataclass(frozen=True)
class DueAction:
    """One level owed now: send it (reminder, escalation), apply it (accept) or just record it (skipped)."""

    clock_id: int
    level: str
    kind: ActionKind
    due_at: datetime  # when this level became due, not when it was noticed


def ladder(
    kind: ClockKind, started_at: datetime, due_at: datetime, calendar: WorkCalendar, policy: ClockPolicy
) -> tuple[LadderStep, ...]:
    """Every level of one clock with the moment it becomes due, in time order."""
    steps = [
        LadderStep(reminder_level(offset), ActionKind.REMINDER, at)
        for offset in policy.reminders(kind)
        if (at := calendar.subtract_working_days(due_at, offset)) > started_at
    ]
    if kind == ClockKind.DECISION:
        return (*steps, LadderStep(LEVEL_BREACH, ActionKind.ACCEPT, due_at))
    steps.append(LadderStep(escalation_level(1), ActionKind.ESCALATION, due_at))
    for number in range(2, policy.max_escalations + 1):
        day = calendar.shift_working_days(due_at, (number - 1) * policy.repeat_every_days)
        steps.append(LadderStep(escalation_level(number), ActionKind.ESCALATION, calendar.end_of_day(day)))
    return tuple(steps)


def ladder_levels(kind: ClockKind, policy: ClockPolicy) -> tuple[str, ...]:
    """Every level name a clock of `kind` can ever have (a reminder before the start is left out of its
    ladder, but named here): once all of them are recorded, nothing can fire for the clock again."""
    reminders = tuple(reminder_level(offset) for offset in policy.reminders(kind))
    if kind == ClockKind.DECISION:
        return (*reminders, LEVEL_BREACH)
    return (*reminders, *(escalation_level(n) for n in range(1, policy.max_escalations + 1)))


def first_step_bound(kind: ClockKind, now: datetime, calendar: WorkCalendar, policy: ClockPolicy) -> datetime:
    """A due time such that no clock of `kind` due after it has a level due at `now` yet.

    A ladder's earliest step is its earliest reminder (R working days before the due day, at day_end) or
    the due time itself; later steps are later. If that reminder's day X is on or before `now`'s day, the
    due day D has R-1 working days between X and it, so D is at most the R-th working day after X, which
    is at most the R-th working day after `now`'s day: every clock due by that day's end is read.
    """
    offsets = policy.reminders(kind)
    if not offsets:
        return now
    last_day = calendar.shift_working_days(calendar.local_date(now), max(offsets))
    return datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=calendar.tz)


def _clock_actions(
    clock: ClockSnapshot, now: datetime, calendar: WorkCalendar, policy: ClockPolicy
) -> list[DueAction]:
    if clock.state not in _ACTIVE_STATES[clock.kind]:
        return []
    reached = [s for s in ladder(clock.kind, clock.started_at, clock.due_at, calendar, policy) if s.at <= now]
    if not reached:
        return []
    *earlier, latest = reached
    actions = [
        DueAction(clock.id, s.level, ActionKind.SKIPPED, s.at)
        for s in earlier
        if s.level not in clock.fired_levels
    ]
    if latest.level not in clock.fired_levels:
        # A reminder is only worth sending while the clock still runs.
        stale = latest.action == ActionKind.REMINDER and clock.state != C.RUNNING
        actions.append(
            DueAction(clock.id, latest.level, ActionKind.SKIPPED if stale else latest.action, latest.at)
        )
    return actions


def due_actions(
    clocks: Iterable[ClockSnapshot], now: datetime, calendar: WorkCalendar, policy: ClockPolicy
) -> list[DueAction]:
    """Every level owed at `now`, oldest first; levels in a clock's `fired_levels` are never returned."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"deadline sweep: now must be timezone-aware, got naive {now.isoformat()}")
    actions = [a for clock in clocks for a in _clock_actions(clock, now, calendar, policy)]
    # Stable sort: levels of one clock due at the same moment keep their ladder order.
    return sorted(actions, key=lambda a: (a.due_at, a.clock_id))


def preview(
    clocks: Iterable[ClockSnapshot], as_of: date, calendar: WorkCalendar, policy: ClockPolicy
) -> list[DueAction]:
    """What would fire on the calendar day `as_of`, assuming every earlier level fired on time.

    For `mailroom clocks --as-of DATE`: an operator checks a policy against a date before it bites.
    """
    day_start = datetime.combine(as_of, time.min, tzinfo=calendar.tz)
    day_end = datetime.combine(as_of, time.max, tzinfo=calendar.tz)
    assumed: list[ClockSnapshot] = []
    for clock in clocks:
        steps = ladder(clock.kind, clock.started_at, clock.due_at, calendar, policy)
        earlier = frozenset(s.level for s in steps if s.at < day_start)
        assumed.append(replace(clock, fired_levels=clock.fired_levels | earlier))
    return due_actions(assumed, day_end, calendar, policy)
