"""A long catch-up reads its messages in a worker process (issue 13, part 4).

Parsing, classifying and judging the trust of a message (`mailroom.service.reading.read_message`) is
pure: bytes and settings in, a `Reading` out. During a catch-up of hundreds of messages the daemon reads
the next group in one worker process while it stores and ingests the group before, so reading takes the
other core (beside the gpg run that encrypts that group) instead of the daemon's.

One worker, started with `spawn` (the daemon has threads; it is never forked), only for a catch-up long
enough to pay for its start (~0.3 s of imports), and shut down at the end of it. Nothing depends on the
worker: a group it cannot read (it died, or raised) is read in the daemon's own process as before, and
once it has died the rest of the catch-up does without it. A side effect: a parser that crashes the
worker process on hostile input no longer takes the daemon with it.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType

from mailroom.core.config import Settings
from mailroom.service.reading import Reading, classify_policy, read_message
from parsers.types import ClassifyPolicy

log = logging.getLogger(__name__)

# The worker's settings and classify policy, set once when it starts.
_worker: tuple[Settings, ClassifyPolicy] | None = None


def _start_worker(settings: Settings) -> None:
    global _worker
    _worker = (settings, classify_policy(settings))


def _read_group(raws: Sequence[bytes]) -> list[Reading]:
    assert _worker is not None, "the reading worker was not started"
    settings, policy = _worker
    return [read_message(raw, settings, policy) for raw in raws]


class ReadingPool:
    """`submit` a group's raw messages; `readings` gives their Readings, or None (read them here)."""

    def __init__(self, settings: Settings) -> None:
        self._executor: ProcessPoolExecutor | None = None
        try:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(settings,),
            )
        except (OSError, ImportError) as exc:  # no POSIX semaphores here (a sandbox without /dev/shm)
            log.warning("reading worker: cannot start one (%s); this catch-up is read in the daemon", exc)

    def submit(self, raws: Sequence[bytes]) -> Future[list[Reading]] | None:
        if self._executor is None or not raws:
            return None
        try:
            return self._executor.submit(_read_group, list(raws))
        except (BrokenProcessPool, RuntimeError, OSError):  # OSError: the worker process could not start
            self._give_up("it stopped, or could not start")
            return None

    def readings(self, future: Future[list[Reading]] | None, count: int) -> list[Reading] | None:
        """The group's Readings, in order; None if the worker could not read it (then the caller does)."""
        if future is None:
            return None
        try:
            readings = future.result()
        except BrokenProcessPool:
            self._give_up("it died")
            return None
        except Exception as exc:  # a fault in reading: the daemon's own reading quarantines the message
            log.warning(
                "reading worker: could not read a group (%s); reading it in the daemon", type(exc).__name__
            )
            return None
        return readings if len(readings) == count else None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> ReadingPool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _give_up(self, why: str) -> None:
        log.warning("reading worker: %s; the rest of this catch-up is read in the daemon", why)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
