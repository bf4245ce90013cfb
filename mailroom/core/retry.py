"""When to try a temporary SMTP failure again, and when to give up. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    initial: timedelta = timedelta(minutes=5)
    maximum: timedelta = timedelta(hours=1)
    lifetime: timedelta = timedelta(days=5)

    def delay(self, attempts: int) -> timedelta:
        """Delay after the `attempts`-th failed attempt: initial, doubling, capped at maximum."""
        if attempts < 1:
            return timedelta(0)
        # Cap the exponent first so a long outage cannot overflow timedelta.
        factor = 2 ** min(attempts - 1, 32)
        delay: timedelta = min(self.initial * factor, self.maximum)
        return delay

    def next_attempt(self, *, attempts: int, queued_at: datetime, now: datetime) -> datetime | None:
        """When to try again, or None when the queue lifetime would be exceeded: then it has failed."""
        when = now + self.delay(attempts)
        if when - queued_at > self.lifetime:
            return None
        return when
