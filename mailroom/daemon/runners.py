"""The daemon's long-running loops. Each one survives every error in one item or one pass: the error is
logged (once per outage, not once per retry) and the loop goes on; the database keeps the truth.

Runners are async; every blocking call (SQL, gpg, IMAP) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mailroom.service.outage import OutageLog

log = logging.getLogger(__name__)


class Backoff:
    """Capped exponential backoff with jitter: 1 s, 2 s, 4 s ... up to 5 min by default.

    Each delay is drawn from [ceiling/2, ceiling] so that several daemons restarted together do not
    reconnect in step, yet no delay collapses to nothing. Pure: randomness comes from the given Random.
    """

    def __init__(self, rng: random.Random, *, initial: float = 1.0, cap: float = 300.0) -> None:
        if initial <= 0 or cap < initial:
            raise ValueError("backoff needs 0 < initial <= cap")
        self._rng = rng
        self.initial = initial
        self.cap = cap
        self.attempts = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; each call counts one more failure."""
        ceiling = min(self.cap, self.initial * 2 ** min(self.attempts, 32))
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """After a success: the next failure starts again from `initial`."""
        self.attempts = 0


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, but wake at once when `stop` is set; returns True when stopping."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0))
    except TimeoutError:
        return False
    return True


@dataclass
class Heartbeat:
    """When each runner last finished a pass: the systemd watchdog is fed only while all are alive."""

    beats: dict[str, float] = field(default_factory=dict)

    def beat(self, name: str) -> None:
        self.beats[name] = time.monotonic()

    def stale(self, max_age: float) -> list[str]:
        now = time.monotonic()
        return [name for name, at in self.beats.items() if now - at > max_age]


async def periodic(
    name: str,
    work: Callable[[], Awaitable[object]],
    *,
    stop: asyncio.Event,
    interval: float,
    heartbeat: Heartbeat,
) -> None:
    """Run `work` every `interval` seconds until stopped; a failing pass is logged and the loop goes on."""
    outage = OutageLog(name)
    backoff = Backoff(random.Random(), initial=interval, cap=max(interval, 300.0))
    while not stop.is_set():
        delay = interval
        try:
            if await work() is True:
                # A full batch: there is more waiting, so go again at once (stop is still honoured).
                delay = 0
            outage.recovered()
            backoff.reset()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad pass must not kill the daemon
            delay = backoff.next_delay()
            outage.failed(exc, retry_in=delay)
            log.debug("%s pass failed", name, exc_info=True)
        heartbeat.beat(name)
        if await sleep_or_stop(stop, delay):
            return
