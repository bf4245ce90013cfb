"""The sweep reads only clocks that can fire (mailroom.store.sweep.could_fire) and still fires exactly what a
full scan of every open clock would: random clocks, random recorded levels, many sweep moments."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from mailroom.core.deadlines import (
    ClockKind,
    ClockState,
    DueAction,
    due_actions,
    ladder,
    ladder_levels,
    start_clock,
)
from mailroom.edges.configfile import load_settings
from mailroom.service.clocks import ClockKeeper
from mailroom.store.engine import make_engine, transaction
from mailroom.store.models import Clock, Escalation
from tests.conftest import Env
from tests.support import rows

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _fill(keeper: ClockKeeper, session: Session, rng: random.Random, n: int) -> None:
    policy, calendar = keeper.policy, keeper.calendar
    for number in range(1, n + 1):
        sub = rows.add_report(session, case_ref=f"MH-{number:06d}", number=number)
        kind = rng.choice(list(ClockKind))
        # started at any minute over ~10 weeks, around weekends, Christmas and clock changes
        started = START + timedelta(minutes=rng.randrange(0, 70 * 24 * 60))
        plan = start_clock(kind, started, policy, calendar)
        clock = Clock(
            kind=kind,
            state=rng.choice(list(ClockState)),
            case_id=sub.case_id,
            submission_id=sub.id or 0,
            started_at=started,
            due_at=plan.due_at,
            calendar=plan.calendar_name,
            holidays_version=plan.holidays_version,
        )
        session.add(clock)
        session.flush()
        steps = [s.level for s in ladder(kind, started, plan.due_at, calendar, policy)]
        names = list(ladder_levels(kind, policy))
        recorded = rng.choice(
            [
                [],
                steps[: rng.randrange(len(steps) + 1)],  # as a sweep leaves it: a prefix of the ladder
                steps,
                names,  # every level, even a reminder that fell before the start
                rng.sample(names, rng.randrange(len(names) + 1)),  # any subset at all
                [*steps, "escalation-99"],  # a level of an older policy
            ]
        )
        for level in recorded:
            session.add(Escalation(clock_id=clock.id or 0, level=level, kind="skipped", created_at=started))


def test_the_bounded_sweep_fires_what_a_full_scan_fires(make_env: Callable[..., Env]) -> None:
    env = make_env(clocks={"acknowledgement_reminders": [1]}, escalation={"max_escalations": 3})
    assert env.run("db", "upgrade").code == 0
    settings = load_settings(env.config)
    keeper = ClockKeeper(settings)
    engine = make_engine(settings.store.url)
    rng = random.Random(20261204)
    with transaction(engine) as session:
        _fill(keeper, session, rng, 400)

    def fired(now: datetime, *, bounded: bool) -> list[DueAction]:
        with transaction(engine) as session:
            clocks = keeper._active(session, lock=False, now=now if bounded else None)
        return due_actions([snap for snap, _, _ in clocks.values()], now, keeper.calendar, keeper.policy)

    read_fewer = firing = 0
    for _ in range(80):
        now = START + timedelta(minutes=rng.randrange(0, 100 * 24 * 60))
        full, bounded = fired(now, bounded=False), fired(now, bounded=True)
        assert bounded == full, now
        firing += bool(full)
        with transaction(engine) as session:
            read_fewer += len(keeper._active(session, lock=False, now=now)) < len(
                keeper._active(session, lock=False)
            )
    assert firing >= 40 and read_fewer >= 40  # the moments really fire levels, and the bound really cuts
