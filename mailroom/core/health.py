"""Whether the mailroom needs a person now: the verdict behind `mailroom status`'s exit code. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class OutageSeen:
    what: str
    since: datetime


def problems(
    *,
    now: datetime,
    running: bool,
    last_heartbeat: datetime | None,
    outages: Sequence[OutageSeen],
    outage_limit: timedelta,
    review_waiting: int,
    breached: int,
) -> tuple[str, ...]:
    """Each thing a person must look at, in one line; empty when all is well."""
    found = []
    if not running:
        found.append(
            "no daemon has written a heartbeat to this database"
            if last_heartbeat is None
            else f"the daemon is not running (last heartbeat {age(now, last_heartbeat)} ago)"
        )
    for outage in outages:
        if now - outage.since > outage_limit:
            found.append(f"{outage.what} unavailable for {age(now, outage.since)}")
    if review_waiting:
        found.append(f"{review_waiting} message(s) wait for review (`mailroom inbox --state needs_review`)")
    if breached:
        found.append(f"{breached} clock(s) breached (`mailroom clocks`)")
    return tuple(found)


def age(now: datetime, then: datetime) -> str:
    """A short human age: 42 s, 7 min, 3 h 5 min, 2 d 4 h."""
    seconds = max(int((now - then).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
