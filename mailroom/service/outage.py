"""One log line when an outage starts and one when it ends, however many retries lie between.

The outbox (a use case) and the daemon's runners both watch the world outside through it.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class OutageLog:
    """Logs an outage once when it starts (WARNING) and once when it ends (INFO); repeats go to DEBUG."""

    def __init__(self, what: str, logger: logging.Logger | None = None) -> None:
        self.what = what
        self.failures = 0
        self._log = logger or log

    @property
    def in_outage(self) -> bool:
        return self.failures > 0

    def failed(self, error: BaseException, *, retry_in: float | None = None) -> None:
        """Record one failed attempt; `error` text must already be free of secrets (ours always is)."""
        self.failures += 1
        when = f"; retrying in {retry_in:.0f} s" if retry_in is not None else ""
        level = logging.WARNING if self.failures == 1 else logging.DEBUG
        self._log.log(level, "%s unavailable: %s%s", self.what, error, when)

    def recovered(self) -> None:
        """Record a success; logs the recovery only if there was an outage."""
        if self.failures:
            self._log.info("%s available again after %d failed attempts", self.what, self.failures)
        self.failures = 0
