"""A long catch-up reads and stores its messages in worker processes (issue 13, part 4).

Parsing, classifying and judging the trust of a message (`mailroom.service.reading.read_message`) is
pure: bytes and settings in, a `Reading` out. Storing a group (`DocumentStore.put_many`: its names
journaled, one gpg run, its files written and fsynced) touches only the documents folder. During a
catch-up of hundreds of messages the daemon hands both for the next group to two worker processes while
it ingests the group before: reading, gpg and a hundred file operations a group take the other core, and
no longer take the daemon's interpreter lock from its ingest (a store in a thread of the daemon made
ingest ~10 % slower).

Workers are started with `spawn` (the daemon has threads; it is never forked), only for a catch-up long
enough to pay for their start (~0.3 s of imports), and shut down at the end of it. Nothing depends on
them: a group they cannot read (a worker died, or reading raised) is read in the daemon's own process as
before; a group whose store a dead worker left is reclaimed and stored by the daemon (`InboxWatcher`);
once a worker has died the rest of the catch-up does without them. A store that fails in a worker (gpg
refused the key, the disk is full) raises in the daemon as it would have there. A side effect: a parser
that crashes a worker on hostile input no longer takes the daemon with it.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any, TypeVar

from mailroom.core.config import Settings
from mailroom.core.errors import ConfigError
from mailroom.service.reading import Reading, classify_policy, read_message
from mailroom.store.documents import DocumentStore, StoredFile
from outbox.errors import CryptoError
from parsers.types import ClassifyPolicy

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# The worker's settings and classify policy, set once when it starts; its document store, at its first
# store (so a worker that only reads never runs gpg).
_worker: tuple[Settings, ClassifyPolicy] | None = None
_documents: DocumentStore | None = None
WORKERS = 2  # one reads the next group while the other stores it


def _start_worker(settings: Settings) -> None:
    global _worker
    _worker = (settings, classify_policy(settings))


def _read_group(raws: Sequence[bytes]) -> list[Reading]:
    assert _worker is not None, "the catch-up worker was not started"
    settings, policy = _worker
    return [read_message(raw, settings, policy) for raw in raws]


def _store_group(raws: Sequence[bytes], journal: str) -> list[StoredFile]:
    global _documents
    assert _worker is not None, "the catch-up worker was not started"
    if _documents is None:
        from mailroom.daemon.wiring import make_documents  # here: a worker that only reads need not load it

        try:
            _documents = make_documents(_worker[0])
        except ConfigError as exc:  # as the daemon's own store would say it: a storage outage
            raise CryptoError(str(exc)) from None
    return _documents.put_many(raws, kind="inbound", journal=journal)


class CatchUpWorkers:
    """`submit` a group's raw messages; `readings` gives their Readings, or None (read them here).
    `store` a group's raw messages; `stored` gives their files, or None (a worker died: the caller
    reclaims the group's journal and stores it itself)."""

    def __init__(self, settings: Settings) -> None:
        self._executor: ProcessPoolExecutor | None = None
        try:
            self._executor = ProcessPoolExecutor(
                max_workers=WORKERS,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(settings,),
            )
        except (OSError, ImportError) as exc:  # no POSIX semaphores here (a sandbox without /dev/shm)
            log.warning(
                "catch-up worker: cannot start one (%s); this catch-up is read and stored in the daemon", exc
            )

    def submit(self, raws: Sequence[bytes]) -> Future[list[Reading]] | None:
        return self._submit(_read_group, list(raws)) if raws else None

    def readings(self, future: Future[list[Reading]] | None, count: int) -> list[Reading] | None:
        """The group's Readings, in order; None if the worker could not read it (then the caller does)."""
        if future is None:
            return None
        try:
            readings = self._result(future)
        except Exception as exc:  # a fault in reading: the daemon's own reading quarantines the message
            log.warning(
                "catch-up worker: could not read a group (%s); reading it in the daemon", type(exc).__name__
            )
            return None
        return readings if readings is not None and len(readings) == count else None

    def store(self, raws: Sequence[bytes], journal: str) -> Future[list[StoredFile]] | None:
        return self._submit(_store_group, list(raws), journal) if raws else None

    def stored(self, future: Future[list[StoredFile]]) -> list[StoredFile] | None:
        """The group's files; None if the worker died on the way. Any other failure (CryptoError, an
        OSError of the documents folder) is raised here, as a store in the daemon would raise it."""
        return self._result(future)

    def _submit(self, work: Callable[..., _T], *args: Any) -> Future[_T] | None:
        if self._executor is None:
            return None
        try:
            return self._executor.submit(work, *args)
        except (BrokenProcessPool, RuntimeError, OSError):  # OSError: the worker process could not start
            self._give_up("it stopped, or could not start")
            return None

    def _result(self, future: Future[_T]) -> _T | None:
        """The work's result; None if the pool died under it (or was given up, cancelling it)."""
        try:
            return future.result()
        except (BrokenProcessPool, CancelledError):
            self._give_up("it died")
            return None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> CatchUpWorkers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _give_up(self, why: str) -> None:
        if self._executor is None:  # given up already (a dead pool is found by a reading and a store)
            return
        log.warning("catch-up worker: %s; the rest of this catch-up is read and stored in the daemon", why)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None
