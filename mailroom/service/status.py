"""`mailroom status`: the whole picture on one screen, read from the database (not from a pid file), so it
is right on any host that shares the database and after any crash.

Running means a daemon whose heartbeat is fresh (three beats, at least 45 s) and which has not said it
stopped; on its own host a process that is gone counts as not running at once, whatever its last beat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from mailroom.core.config import Settings
from mailroom.core.health import OutageSeen, problems
from mailroom.core.workdays import WorkCalendar
from mailroom.edges.process import ProcessIdentity, is_alive
from mailroom.store import overview
from mailroom.store.engine import current_revision
from mailroom.store.models import DaemonInstance


@dataclass(frozen=True)
class DaemonSeen:
    instance_id: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    running: bool
    note: str


@dataclass(frozen=True)
class StatusReport:
    now: datetime
    config: str
    schema: str | None
    daemons: list[DaemonSeen]
    last_send_at: datetime | None
    smtp_contact_at: datetime | None
    imap_contact_at: datetime | None
    outages: list[dict[str, Any]]
    queue: dict[str, int]
    notices: dict[str, int]
    review_waiting: int
    due_today: int
    due_soon: int
    days_ahead: int
    breached: int
    escalations_7d: int
    reminders_7d: int
    problems: tuple[str, ...] = field(default=())

    @property
    def running(self) -> bool:
        return any(d.running for d in self.daemons)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(running=self.running, healthy=self.healthy, problems=list(self.problems))
        return data


def read_status(
    engine: sa.Engine,
    settings: Settings,
    calendar: WorkCalendar,
    *,
    now: datetime,
    wall: datetime,
    config: str,
) -> StatusReport:
    """`now` is the programme's time (clocks); `wall` the real time (heartbeats), equal outside tests."""
    today = now.astimezone(calendar.tz).date()
    horizon = calendar.end_of_day(calendar.shift_working_days(today, settings.digest.days_ahead))
    # Before the session: on SQLite every transaction begins IMMEDIATE, so a second connection would wait.
    schema = current_revision(engine)
    with Session(engine) as session:
        instances = overview.recent_instances(session)
        daemons = [seen(row, wall, settings) for row in instances]
        running = [row for row, view in zip(instances, daemons, strict=True) if view.running]
        outages = [o for row in running for o in row.outages]
        due = overview.clocks_due_by(session, horizon)
        escalations = overview.escalations_by_kind(session, since=now - timedelta(days=7))
        report = StatusReport(
            now=now,
            config=config,
            schema=schema,
            daemons=daemons,
            last_send_at=overview.last_sent(session),
            smtp_contact_at=max((r.smtp_contact_at for r in instances if r.smtp_contact_at), default=None),
            imap_contact_at=max((r.imap_contact_at for r in instances if r.imap_contact_at), default=None),
            outages=outages,
            queue=overview.submissions_by_state(session),
            notices=overview.notices_by_state(session),
            review_waiting=overview.count_waiting_for_review(session),
            due_today=sum(1 for c in due if c.due_at.astimezone(calendar.tz).date() <= today),
            due_soon=len(due),
            days_ahead=settings.digest.days_ahead,
            breached=overview.count_breached_clocks(session),
            escalations_7d=escalations.get("escalation", 0),
            reminders_7d=escalations.get("reminder", 0),
        )
    found = problems(
        now=wall,
        running=report.running,
        last_heartbeat=max((d.heartbeat_at for d in daemons), default=None),
        outages=[OutageSeen(o["what"], datetime.fromisoformat(o["since"])) for o in outages],
        outage_limit=timedelta(minutes=settings.status.outage_minutes),
        review_waiting=report.review_waiting,
        breached=report.breached,
    )
    return replace(report, problems=found)


def stale_after(settings: Settings) -> timedelta:
    return timedelta(seconds=max(3 * settings.daemon.heartbeat_seconds, 45))


def seen(row: DaemonInstance, wall: datetime, settings: Settings) -> DaemonSeen:
    """Whether that daemon runs now, and why not: the one definition status and the metrics share."""
    identity = ProcessIdentity(row.id, row.host, row.boot_id, row.pid, row.process_started)
    if row.stopped_at is not None:
        running, note = False, "stopped"
    elif is_alive(identity) is False:
        running, note = False, "process gone without stopping (killed or crashed)"
    elif wall - row.heartbeat_at > stale_after(settings):
        running, note = False, "no heartbeat"
    else:
        running, note = True, "running"
    return DaemonSeen(
        row.id,
        row.host,
        row.pid,
        row.version,
        row.started_at,
        row.heartbeat_at,
        row.stopped_at,
        running,
        note,
    )
