"""Clock evaluation: every level of the ladder, idempotence, stale reminders and the --as-of preview.

The reference clock is a correction clock started by a rejection notice on Monday 3 March 2025 at 10:00
(England & Wales): due Monday 10 March 17:00, reminders Thursday 6 and Friday 7 March at 17:00, escalations
Monday 10, Wednesday 12 and Friday 14 March at 17:00. docs/clocks.md walks through the same example.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.core.deadlines import (
    CLOCK_MOVES,
    ActionKind,
    ClockKind,
    ClockPolicy,
    ClockSnapshot,
    ClockState,
    DueAction,
    can_move,
    due_actions,
    ladder,
    preview,
    start_clock,
    state_moves,
)
from mailroom.core.workdays import WorkCalendar

LONDON = ZoneInfo("Europe/London")
ENG = WorkCalendar.for_division("england-and-wales")
POLICY = ClockPolicy.default()
K, S, A = ClockKind, ClockState, ActionKind


def london(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def clock(
    kind: ClockKind = K.CORRECTION,
    state: ClockState = S.RUNNING,
    fired: tuple[str, ...] = (),
    started: str = "2025-03-03 10:00",
    clock_id: int = 7,
) -> ClockSnapshot:
    plan = start_clock(kind, london(started), POLICY, ENG)
    return ClockSnapshot(
        id=clock_id,
        kind=kind,
        state=state,
        started_at=plan.started_at,
        due_at=plan.due_at,
        submission_id=41,
        case_ref="MH-000123",
        fired_levels=frozenset(fired),
    )


def owed(snapshot: ClockSnapshot, now: str) -> list[tuple[str, str]]:
    return [(a.level, a.kind.value) for a in due_actions([snapshot], london(now), ENG, POLICY)]


def test_start_clock_records_due_time_and_calendar() -> None:
    plan = start_clock(K.CORRECTION, london("2025-03-03 10:00"), POLICY, ENG)
    assert plan.due_at == london("2025-03-10 17:00")
    assert (plan.kind, plan.calendar_name, plan.holidays_version) == (
        K.CORRECTION,
        "england-and-wales",
        ENG.holidays_version,
    )


@pytest.mark.parametrize(
    ("kind", "started", "due"),
    [
        (K.ACKNOWLEDGEMENT, "2025-03-03 10:00", "2025-03-04 17:00"),  # 1 working day after sending
        (K.ACKNOWLEDGEMENT, "2025-03-07 17:30", "2025-03-11 17:00"),  # sent Friday evening
        (K.DECISION, "2025-03-03 10:00", "2025-03-10 17:00"),  # 5 working days after sending
        (K.CORRECTION, "2025-04-17 12:00", "2025-04-28 17:00"),  # rejection before Easter
    ],
)
def test_default_clock_lengths(kind: ClockKind, started: str, due: str) -> None:
    assert start_clock(kind, london(started), POLICY, ENG).due_at == london(due)


def test_count_event_day_policy_shortens_every_clock_by_one_day() -> None:
    policy = ClockPolicy(count_event_day=True)
    assert start_clock(K.CORRECTION, london("2025-03-03 10:00"), policy, ENG).due_at == london(
        "2025-03-07 17:00"
    )


@pytest.mark.parametrize(
    ("kind", "levels"),
    [
        (K.CORRECTION, ["reminder-2", "reminder-1", "escalation-1", "escalation-2", "escalation-3"]),
        (K.ACKNOWLEDGEMENT, ["escalation-1", "escalation-2", "escalation-3"]),
        (K.DECISION, ["breach"]),
    ],
)
def test_level_names_are_stable(kind: ClockKind, levels: list[str]) -> None:
    c = clock(kind)
    assert [s.level for s in ladder(c.kind, c.started_at, c.due_at, ENG, POLICY)] == levels


def test_ladder_moments_skip_weekends_and_bank_holidays() -> None:
    due = london("2025-04-17 17:00")  # Thursday before Easter
    steps = ladder(K.CORRECTION, london("2025-04-10 09:00"), due, ENG, POLICY)
    assert [(s.level, s.action, s.at) for s in steps] == [
        ("reminder-2", A.REMINDER, london("2025-04-15 17:00")),
        ("reminder-1", A.REMINDER, london("2025-04-16 17:00")),
        ("escalation-1", A.ESCALATION, due),
        ("escalation-2", A.ESCALATION, london("2025-04-23 17:00")),  # over Good Friday and Easter Monday
        ("escalation-3", A.ESCALATION, london("2025-04-25 17:00")),
    ]


def test_reminders_that_would_fall_before_the_clock_started_are_left_out() -> None:
    # A clock started under a 2-day policy, evaluated after the reminders were lengthened to 5 and 4 days.
    started = london("2025-03-03 10:00")
    due = start_clock(
        K.CORRECTION, started, ClockPolicy(correction_days=2, correction_reminders=(1,)), ENG
    ).due_at
    longer = ClockPolicy(correction_reminders=(5, 4, 1))
    assert [s.level for s in ladder(K.CORRECTION, started, due, ENG, longer)][:2] == [
        "reminder-1",
        "escalation-1",
    ]


R2, R1, E1, E2, E3 = "reminder-2", "reminder-1", "escalation-1", "escalation-2", "escalation-3"

# (already recorded levels, clock state, now, expected (level, action) in order)
CORRECTION_CASES = [
    ((), S.RUNNING, "2025-03-06 16:59", []),
    ((), S.RUNNING, "2025-03-06 17:00", [(R2, "reminder")]),
    ((R2,), S.RUNNING, "2025-03-07 09:00", []),
    ((R2,), S.RUNNING, "2025-03-07 17:00", [(R1, "reminder")]),
    ((), S.RUNNING, "2025-03-07 18:00", [(R2, "skipped"), (R1, "reminder")]),  # 2-days reminder came too late
    ((R2, R1), S.RUNNING, "2025-03-10 16:59", []),
    ((R2, R1), S.RUNNING, "2025-03-10 17:00", [(E1, "escalation")]),
    ((), S.RUNNING, "2025-03-11 09:00", [(R2, "skipped"), (R1, "skipped"), (E1, "escalation")]),
    ((R2, R1), S.BREACHED, "2025-03-10 17:30", [(E1, "escalation")]),
    ((R2, R1, E1), S.ESCALATED, "2025-03-12 16:59", []),
    ((R2, R1, E1), S.ESCALATED, "2025-03-12 17:00", [(E2, "escalation")]),
    ((R2, R1, E1), S.ESCALATED, "2025-03-20 12:00", [(E2, "skipped"), (E3, "escalation")]),
    ((R2, R1, E1, E2), S.ESCALATED, "2025-03-14 17:00", [(E3, "escalation")]),
    ((R2, R1, E1, E2, E3), S.ESCALATED, "2026-03-14 17:00", []),  # the ladder ends at max_escalations
    ((E1,), S.ESCALATED, "2025-03-11 09:00", [(R2, "skipped"), (R1, "skipped")]),  # never a reminder late
    ((), S.BREACHED, "2025-03-06 17:00", [(R2, "skipped")]),  # reminders only while the clock runs
    ((), S.MET, "2025-03-20 12:00", []),
    ((R2, R1, E1), S.MET, "2025-03-20 12:00", []),  # met late: the repeats stop
    ((), S.CANCELLED, "2025-03-20 12:00", []),
]


@pytest.mark.parametrize(("fired", "state", "now", "expected"), CORRECTION_CASES)
def test_correction_clock_levels(
    fired: tuple[str, ...], state: ClockState, now: str, expected: list[tuple[str, str]]
) -> None:
    assert owed(clock(K.CORRECTION, state, fired), now) == expected


@pytest.mark.parametrize(
    ("fired", "state", "now", "expected"),
    [
        ((), S.RUNNING, "2025-03-04 16:59", []),
        ((), S.RUNNING, "2025-03-04 17:00", [(E1, "escalation")]),
        ((E1,), S.ESCALATED, "2025-03-06 17:00", [(E2, "escalation")]),
        ((E1, E2), S.ESCALATED, "2025-03-10 17:00", [(E3, "escalation")]),
        ((), S.MET, "2025-03-10 17:00", []),
    ],
)
def test_acknowledgement_clock_levels(
    fired: tuple[str, ...], state: ClockState, now: str, expected: list[tuple[str, str]]
) -> None:
    assert owed(clock(K.ACKNOWLEDGEMENT, state, fired), now) == expected


@pytest.mark.parametrize(
    ("fired", "state", "now", "expected"),
    [
        ((), S.RUNNING, "2025-03-10 16:59", []),
        ((), S.RUNNING, "2025-03-10 17:00", [("breach", "accept")]),
        ((), S.RUNNING, "2025-06-30 12:00", [("breach", "accept")]),  # never an escalation
        (("breach",), S.MET, "2025-03-11 12:00", []),
        (("breach",), S.RUNNING, "2025-03-11 12:00", []),  # recorded but state not yet written: still once
        ((), S.CANCELLED, "2025-03-11 12:00", []),  # held, cancelled or erased
    ],
)
def test_decision_clock_closes_with_accept(
    fired: tuple[str, ...], state: ClockState, now: str, expected: list[tuple[str, str]]
) -> None:
    assert owed(clock(K.DECISION, state, fired), now) == expected


def test_due_action_carries_the_moment_the_level_became_due() -> None:
    [action] = due_actions([clock(fired=(R2, R1))], london("2025-03-11 09:15"), ENG, POLICY)
    assert action == DueAction(clock_id=7, level=E1, kind=A.ESCALATION, due_at=london("2025-03-10 17:00"))


def test_actions_of_several_clocks_come_oldest_first() -> None:
    clocks = [
        clock(K.CORRECTION, clock_id=1, fired=(R2, R1)),
        clock(K.ACKNOWLEDGEMENT, clock_id=2),
        clock(K.DECISION, clock_id=3),
    ]
    actions = due_actions(clocks, london("2025-03-10 17:00"), ENG, POLICY)
    assert [(a.clock_id, a.level, a.kind) for a in actions] == [
        (2, E1, A.SKIPPED),
        (2, E2, A.SKIPPED),
        (1, E1, A.ESCALATION),
        (2, E3, A.ESCALATION),
        (3, "breach", A.ACCEPT),
    ]


def apply(snapshot: ClockSnapshot, actions: list[DueAction]) -> ClockSnapshot:
    """What the caller does with the actions: record each level and write the state moves."""
    state = snapshot.state
    for action in actions:
        for target in state_moves(state, action.kind):
            assert can_move(state, target)
            state = target
    return replace(snapshot, state=state, fired_levels=snapshot.fired_levels | {a.level for a in actions})


def sweep(
    snapshot: ClockSnapshot, times: list[datetime]
) -> tuple[ClockSnapshot, list[tuple[datetime, DueAction]]]:
    log: list[tuple[datetime, DueAction]] = []
    for now in times:
        actions = due_actions([snapshot], now, ENG, POLICY)
        log.extend((now, a) for a in actions)
        snapshot = apply(snapshot, actions)
    return snapshot, log


def test_a_daemon_sweeping_every_five_minutes_sends_each_level_once_at_its_moment() -> None:
    start = london("2025-03-03 10:00")
    minutes = [start + timedelta(minutes=m) for m in range(0, 20 * 24 * 60, 5)]
    final, log = sweep(clock(), minutes)
    sent = [(a.level, a.kind, now) for now, a in log]
    assert sent == [
        (R2, A.REMINDER, london("2025-03-06 17:00")),
        (R1, A.REMINDER, london("2025-03-07 17:00")),
        (E1, A.ESCALATION, london("2025-03-10 17:00")),
        (E2, A.ESCALATION, london("2025-03-12 17:00")),
        (E3, A.ESCALATION, london("2025-03-14 17:00")),
    ]
    assert final.state is S.ESCALATED
    assert due_actions([final], london("2025-12-31 12:00"), ENG, POLICY) == []


def test_meeting_the_clock_after_the_first_escalation_stops_the_ladder() -> None:
    escalated, _ = sweep(clock(), [london("2025-03-10 17:05")])
    assert escalated.state is S.ESCALATED
    assert can_move(escalated.state, S.MET)
    met = replace(escalated, state=S.MET)
    assert due_actions([met], london("2025-03-31 12:00"), ENG, POLICY) == []


def test_a_second_sweep_at_the_same_moment_returns_nothing() -> None:
    now = london("2025-03-11 09:00")
    first = due_actions([clock()], now, ENG, POLICY)
    assert first
    assert due_actions([apply(clock(), first)], now, ENG, POLICY) == []


sweep_offsets = st.lists(st.integers(min_value=0, max_value=30 * 24 * 60), min_size=1, max_size=40)


@given(offsets=sweep_offsets, kind=st.sampled_from(list(ClockKind)))
def test_sweeps_at_any_moments_fire_each_level_at_most_once(offsets: list[int], kind: ClockKind) -> None:
    start = clock(kind)
    times = sorted(start.started_at + timedelta(minutes=m) for m in offsets)
    final, log = sweep(start, times)
    levels = [a.level for _, a in log]
    assert len(levels) == len(set(levels))
    for now, action in log:
        assert action.due_at <= now
        if action.kind is A.REMINDER:
            assert now < start.due_at
    assert sum(a.kind is A.ESCALATION for _, a in log) <= POLICY.max_escalations
    # Every level whose moment came was either sent or recorded as skipped.
    steps = ladder(kind, start.started_at, start.due_at, ENG, POLICY)
    assert final.fired_levels == {s.level for s in steps if s.at <= times[-1]}


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (date(2025, 3, 5), []),
        (date(2025, 3, 6), [(R2, "reminder")]),
        (date(2025, 3, 7), [(R1, "reminder")]),
        (date(2025, 3, 8), []),  # Saturday
        (date(2025, 3, 10), [(E1, "escalation")]),
        (date(2025, 3, 12), [(E2, "escalation")]),
        (date(2025, 3, 14), [(E3, "escalation")]),
        (date(2025, 3, 17), []),
    ],
)
def test_preview_shows_what_fires_on_a_date(as_of: date, expected: list[tuple[str, str]]) -> None:
    actions = preview([clock()], as_of, ENG, POLICY)
    assert [(a.level, a.kind.value) for a in actions] == expected


def test_preview_does_not_repeat_what_already_fired() -> None:
    assert preview([clock(fired=(R2,))], date(2025, 3, 6), ENG, POLICY) == []


@pytest.mark.parametrize(
    ("state", "action", "moves"),
    [
        (S.RUNNING, A.ESCALATION, (S.BREACHED, S.ESCALATED)),
        (S.BREACHED, A.ESCALATION, (S.ESCALATED,)),
        (S.ESCALATED, A.ESCALATION, ()),
        (S.RUNNING, A.ACCEPT, (S.MET,)),
        (S.RUNNING, A.REMINDER, ()),
        (S.RUNNING, A.SKIPPED, ()),
        (S.ESCALATED, A.SKIPPED, ()),
    ],
)
def test_state_moves_follow_the_clock_state_machine(
    state: ClockState, action: ActionKind, moves: tuple[ClockState, ...]
) -> None:
    assert state_moves(state, action) == moves
    path = (state, *moves)
    assert all(can_move(a, b) for a, b in pairwise(path))


def test_met_and_cancelled_are_final() -> None:
    assert set(CLOCK_MOVES) == set(ClockState)
    assert CLOCK_MOVES[S.MET] == CLOCK_MOVES[S.CANCELLED] == frozenset()
    assert not can_move(S.RUNNING, S.ESCALATED)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"correction_days": 0}, "correction_days must be at least 1"),
        ({"repeat_every_days": 0}, "repeat_every_days must be at least 1"),
        ({"max_escalations": 0}, "max_escalations must be at least 1"),
        ({"correction_reminders": (2, 2)}, "lists a day twice"),
        ({"correction_reminders": (6,)}, "between 1 and 5"),
        ({"correction_reminders": (5,), "count_event_day": True}, "between 1 and 4"),
        ({"acknowledgement_reminders": (0,)}, "acknowledgement_reminders must be between 1 and 1"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClockPolicy(**kwargs)  # type: ignore[arg-type]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_actions([clock()], datetime(2025, 3, 10, 17), ENG, POLICY)


def test_now_in_utc_is_the_same_instant() -> None:
    # 17:00 BST is 16:00 UTC: the summer deadline is reached at 16:00 UTC, not 17:00 UTC.
    summer = clock(started="2025-06-02 10:00", fired=(R2, R1))
    assert due_actions([summer], datetime(2025, 6, 9, 15, 59, tzinfo=UTC), ENG, POLICY) == []
    [action] = due_actions([summer], datetime(2025, 6, 9, 16, 0, tzinfo=UTC), ENG, POLICY)
    assert action.level == E1


def test_plain_strings_from_the_database_behave_like_the_enums() -> None:
    # Rows come back as str; StrEnum members compare equal to them, and so must every rule.
    stored = replace(clock(K.DECISION), kind="decision", state="running")  # type: ignore[arg-type]
    assert owed(stored, "2025-03-10 17:00") == [("breach", "accept")]
    assert state_moves("running", "escalation") == (S.BREACHED, S.ESCALATED)  # type: ignore[arg-type]
