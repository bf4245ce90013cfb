"""The daily digest: once per working day at `[digest] at`, never on a bank holiday or a weekend, never
twice however many daemons run, case references only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from mailroom.core.deadlines import ClockState
from mailroom.core.states import InboundState, SubmissionState
from mailroom.edges.configfile import load_settings
from mailroom.service.clocks import ClockKeeper
from mailroom.service.digest import digest_day, send_digest_if_due
from mailroom.store.engine import make_engine
from mailroom.store.models import Clock, Digest, InboundMessage, Notice
from tests.conftest import Env
from tests.support import rows

START = datetime(2026, 12, 18, 0, 0, tzinfo=UTC)  # Friday; Europe/London is UTC in winter


@pytest.fixture
def digest_env(make_env: Callable[..., Env]) -> Env:
    env = make_env(digest={"enabled": True, "at": "08:30"})
    assert env.run("db", "upgrade").code == 0
    return env


def seed(env: Env) -> None:
    """A running correction clock due soon, a failed report, and a message waiting for review."""
    with Session(make_engine(f"sqlite:///{env.db_path}")) as session:
        rows.add_report(session, case_ref="MH-100001", number=1, state=SubmissionState.REJECTED, at=START)
        rows.add_report(
            session,
            case_ref="MH-100002",
            number=2,
            state=SubmissionState.FAILED,
            at=START,
            report_type="exit-report",
            failed_at=START + timedelta(days=3, hours=10),
        )
        session.flush()
        session.add(
            Clock(
                kind="correction",
                state=ClockState.RUNNING,
                case_id=1,
                submission_id=1,
                started_at=START,
                due_at=datetime(2026, 12, 30, 17, 0, tzinfo=UTC),  # the 5th working day after Mon 21st
                calendar="england-and-wales",
                holidays_version="test",
            )
        )
        session.add(
            InboundMessage(
                mailbox="ingest",
                message_id="<review.7@dwp.gov.uk>",
                raw_sha256="7" * 64,
                state=InboundState.NEEDS_REVIEW,
                kind="other",
                case_id=1,
                received_at=START,
            )
        )
        session.commit()


def test_one_digest_each_working_day_over_christmas_and_new_year(digest_env: Env) -> None:
    seed(digest_env)
    settings = load_settings(digest_env.config)
    keeper = ClockKeeper(settings)
    engines = [make_engine(settings.store.url) for _ in range(2)]  # two daemons on one database
    queued = []
    moment = START
    while moment < datetime(2027, 1, 6, tzinfo=UTC):
        for engine in engines:
            if send_digest_if_due(engine, settings, keeper.calendar, keeper.wording, moment):
                queued.append(moment)
        moment += timedelta(minutes=20)
    with Session(engines[0]) as session:
        days = [d.day for d in session.exec(select(Digest).order_by(Digest.day)).all()]  # type: ignore[arg-type]
        notices = session.exec(select(Notice).where(Notice.kind == "digest")).all()
    # Christmas Day (Fri), Boxing Day's substitute (Mon 28th), New Year's Day (Fri), and weekends: none.
    expected = [
        date(2026, 12, 18),
        date(2026, 12, 21),
        date(2026, 12, 22),
        date(2026, 12, 23),
        date(2026, 12, 24),
        date(2026, 12, 29),
        date(2026, 12, 30),
        date(2026, 12, 31),
        date(2027, 1, 4),
        date(2027, 1, 5),
    ]
    assert days == expected
    assert len(notices) == len(expected) == len(queued)
    assert all(m.hour == 8 and m.minute == 40 for m in queued)  # the first sweep at or after 08:30
    assert {tuple(n.recipients) for n in notices} == {("team@provider.example",)}


def test_the_digest_says_what_is_due_waiting_and_failed_with_case_references_only(digest_env: Env) -> None:
    seed(digest_env)
    settings = load_settings(digest_env.config)
    keeper = ClockKeeper(settings)
    engine = make_engine(settings.store.url)
    monday = datetime(2026, 12, 21, 9, 0, tzinfo=UTC)
    assert send_digest_if_due(engine, settings, keeper.calendar, keeper.wording, monday)
    with Session(engine) as session:
        notice = session.exec(select(Notice).where(Notice.kind == "digest")).one()
    assert notice.subject == "MHSS daily digest - MHSS provider - Mon 21 Dec 2026"
    body = notice.body
    assert "MH-100001  correction clock, S-000001, due Wed 30 Dec 2026 17:00" in body
    assert "message 1 (other) about MH-100001" in body
    assert "MH-100002  S-000002 failed Mon 21 Dec 2026 10:00 GMT" not in body  # failed at 10:00, after 09:00
    tuesday = datetime(2026, 12, 22, 9, 0, tzinfo=UTC)
    assert send_digest_if_due(engine, settings, keeper.calendar, keeper.wording, tuesday)
    with Session(engine) as session:
        digests = session.exec(select(Notice).where(Notice.kind == "digest")).all()
    latest = max(digests, key=lambda n: n.id or 0)
    assert latest is not None and "MH-100002  S-000002 failed Mon 21 Dec 2026 10:00 GMT" in latest.body
    assert "@" not in body.replace("team@provider.example", "")


def test_an_erased_case_leaves_no_reference_in_a_digest(digest_env: Env) -> None:
    seed(digest_env)
    settings = load_settings(digest_env.config)
    keeper = ClockKeeper(settings)
    engine = make_engine(settings.store.url)
    assert send_digest_if_due(
        engine, settings, keeper.calendar, keeper.wording, datetime(2026, 12, 21, 9, 0, tzinfo=UTC)
    )
    result = digest_env.run("erase", "MH-100001", "--request-ref", "SAR-1", "--yes")
    assert result.code == 0, result.err
    with Session(engine) as session:
        notice = session.exec(select(Notice).where(Notice.kind == "digest")).one()
    assert "MH-100001" not in notice.body and "ERASED-000001" in notice.body


def test_off_by_default_and_not_before_the_hour(make_env: Callable[..., Env]) -> None:
    settings = load_settings(make_env().config)
    calendar = ClockKeeper(settings).calendar
    assert digest_day(settings, calendar, datetime(2026, 12, 21, 9, 0, tzinfo=UTC)) is None
    on = load_settings(make_env(digest={"enabled": True, "at": "08:30"}).config)
    assert digest_day(on, calendar, datetime(2026, 12, 21, 8, 29, tzinfo=UTC)) is None
    assert digest_day(on, calendar, datetime(2026, 12, 21, 8, 30, tzinfo=UTC)) == date(2026, 12, 21)
    # British Summer Time: 08:30 in London is 07:30 UTC.
    assert digest_day(on, calendar, datetime(2026, 6, 1, 7, 30, tzinfo=UTC)) == date(2026, 6, 1)
