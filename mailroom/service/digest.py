"""The daily digest to the provider team: what is due, what waits for review, what failed or escalated.

Sent on working days (the clocks' calendar: bank holidays and `[calendar] extra_closures` are not),
at or after `[digest] at` local time, exactly once per day however many daemons run and however often
they restart: the day's row in `digests` is written in the same transaction as the notice, and the day
is its primary key, so a second writer's insert fails and its notice is rolled back with it. A daemon
that starts after the hour still sends that day's digest; a day with no daemon running gets none later.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from mailroom.core.config import Settings
from mailroom.core.workdays import WorkCalendar
from mailroom.service.notices import queue_notice
from mailroom.service.wording import Wording
from mailroom.store import overview
from mailroom.store.models import Digest

log = logging.getLogger(__name__)


def digest_day(settings: Settings, calendar: WorkCalendar, now: datetime) -> date | None:
    """The working day whose digest may go out at `now`, or None (off, a closed day, before the hour)."""
    if not settings.digest.enabled:
        return None
    local = now.astimezone(calendar.tz)
    if not calendar.is_working_day(local.date()) or local.time() < settings.digest.at:
        return None
    return local.date()


def send_digest_if_due(
    engine: sa.Engine, settings: Settings, calendar: WorkCalendar, wording: Wording, now: datetime
) -> bool:
    """Queue today's digest if it is due and not yet queued; True when this call queued it."""
    day = digest_day(settings, calendar, now)
    if day is None:
        return False
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            if session.get(Digest, day) is not None:
                return False
            _queue(session, settings, calendar, wording, day=day, now=now)
    except sa.exc.IntegrityError:
        return False  # another daemon queued today's digest between our check and our insert
    log.info("daily digest for %s queued", day.isoformat())
    return True


def _queue(
    session: Session,
    settings: Settings,
    calendar: WorkCalendar,
    wording: Wording,
    *,
    day: date,
    now: datetime,
) -> None:
    previous = overview.last_digest(session)
    since = previous.created_at if previous else now - timedelta(days=1)
    horizon = calendar.end_of_day(calendar.shift_working_days(day, settings.digest.days_ahead))
    happened = sorted(
        [*overview.failed_between(session, since, now), *overview.escalated_between(session, since, now)],
        key=lambda h: h.at,
    )
    words = wording.digest(
        day=day,
        since=since,
        due=overview.clocks_due_by(session, horizon),
        review=overview.waiting_for_review(session),
        happened=happened,
    )
    notice = queue_notice(
        session,
        settings=settings,
        now=now,
        kind="digest",
        recipients=(settings.provider.team_address,),
        subject=words.subject,
        body=words.body,
    )
    session.flush()
    assert notice.id is not None
    session.add(Digest(day=day, notice_id=notice.id, created_at=now))
    session.flush()
