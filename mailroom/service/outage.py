"""One log line when an outage starts and one when it ends, however many retries lie between.

The outbox (a use case) and the daemon's runners both watch the world outside through it. Each log also
remembers when its outage began and when its channel last worked; the daemon's heartbeat copies that into
the database (`current_outages`, `last_contact`), which is how `mailroom status` and the metrics see it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outage:
    what: str
    channel: str
    since: datetime
    failures: int
    error: str


class OutageBoard:
    """What is out now and when each channel last worked, for one process (or one test)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, OutageLog] = {}
        self._contacts: dict[str, datetime] = {}

    def register(self, outage: OutageLog) -> None:
        # The latest log made for a `what` is the one that counts: a rebuilt part replaces its old log.
        with self._lock:
            self._logs[outage.what] = outage

    def outages(self) -> list[Outage]:
        """Every outage now, oldest first."""
        with self._lock:
            logs = list(self._logs.values())
        found = [
            Outage(o.what, o.channel, o.since, o.failures, o.error) for o in logs if o.failures and o.since
        ]
        return sorted(found, key=lambda o: o.since)

    def contact(self, channel: str, at: datetime | None = None) -> None:
        with self._lock:
            self._contacts[channel] = at or datetime.now(UTC)

    def last_contact(self, channel: str) -> datetime | None:
        with self._lock:
            return self._contacts.get(channel)


BOARD = OutageBoard()  # the daemon's; tests of status give their own


class OutageLog:
    """Logs an outage once when it starts (WARNING) and once when it ends (INFO); repeats go to DEBUG.

    `channel` ("smtp", "imap", "gpg", a runner's name) is what `mailroom status` and the metrics name.
    """

    def __init__(
        self,
        what: str,
        logger: logging.Logger | None = None,
        *,
        channel: str = "",
        board: OutageBoard = BOARD,
    ) -> None:
        self.what = what
        self.channel = channel or what
        self.failures = 0
        self.since: datetime | None = None
        self.error = ""
        self._log = logger or log
        self._board = board
        board.register(self)

    @property
    def in_outage(self) -> bool:
        return self.failures > 0

    def failed(self, error: BaseException, *, retry_in: float | None = None) -> None:
        """Record one failed attempt; `error` text must already be free of secrets (ours always is)."""
        self.failures += 1
        self.error = str(error)[:300]
        if self.since is None:
            self.since = datetime.now(UTC)
        when = f"; retrying in {retry_in:.0f} s" if retry_in is not None else ""
        level = logging.WARNING if self.failures == 1 else logging.DEBUG
        self._log.log(level, "%s unavailable: %s%s", self.what, error, when)

    def recovered(self) -> None:
        """Record a success; logs the recovery only if there was an outage."""
        if self.failures:
            self._log.info("%s available again after %d failed attempts", self.what, self.failures)
        self.failures = 0
        self.since = None
        self.error = ""
        self._board.contact(self.channel)


def current_outages() -> list[Outage]:
    """Every outage in this process now, oldest first."""
    return BOARD.outages()


def record_contact(channel: str) -> None:
    """Something on `channel` worked just now (an OutageLog's recovery says so by itself)."""
    BOARD.contact(channel)


def last_contact(channel: str) -> datetime | None:
    """When anything on `channel` last worked in this process, or None."""
    return BOARD.last_contact(channel)
