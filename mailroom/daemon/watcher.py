"""The IMAP watcher: catch up by UID, then wait on IDLE as a doorbell, reconnecting with backoff.

Correctness comes from the stored cursor (UIDVALIDITY + last UID), never from IDLE: every wake-up, and
every reconnect, runs the same catch-up. The IMAP client lives in one worker thread at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from mailroom.daemon.catchup_workers import CatchUpWorkers
from mailroom.daemon.runners import Backoff, Heartbeat, sleep_or_stop
from mailroom.edges.imap import (
    FetchedMessage,
    MailboxAuthError,
    MailboxError,
    MailboxUnavailable,
    MailboxUntrusted,
)
from mailroom.edges.leader import Leadership
from mailroom.edges.mailbox import Mailbox
from mailroom.service.inbound import Arrival, Disposition, Inbox, cursor_for
from mailroom.service.outage import OutageLog
from mailroom.service.reading import Reading
from mailroom.store.documents import StoredFile
from mailroom.store.engine import transaction
from outbox.errors import CryptoError

log = logging.getLogger(__name__)
AUTH_RETRY_SECONDS = 600.0
STANDBY_SECONDS = 30.0


FILE_BATCH = 50  # messages moved per IMAP command during a catch-up
STORE_GROUP = 50  # raw messages encrypted per gpg run during a catch-up
AHEAD = 1  # groups fetched, stored and read while one is ingested (2 measured no faster)
AHEAD_IN_WORKERS = "reading and storing ahead in worker processes"
JOURNALS = AHEAD + 1  # groups whose files may wait for a commit at once, each named in its own journal


@dataclass(frozen=True)
class _Ahead:
    """A fetched group on its way: its files being stored (in a thread, or in a worker process), its
    Readings being made (or None)."""

    group: list[FetchedMessage]
    storing: Future[list[StoredFile]]
    reading: Future[list[Reading]] | None
    in_worker: bool


class InboxWatcher:
    def __init__(
        self, mailbox: Mailbox, inbox: Inbox, engine: Engine, *, backoff: Backoff | None = None
    ) -> None:
        self.mailbox = mailbox
        self.inbox = inbox
        self.engine = engine
        # Reconnect delays: 1 s doubling to 5 min by default; the fault tests pass a shorter one.
        self.backoff = backoff if backoff is not None else Backoff(random.Random())
        o = mailbox.options
        self.folder = o.inbox_folder
        self.key = f"imap:{o.username}@{o.host}:{o.port}/{o.inbox_folder}"
        # Called after each committed group: `run` beats the inbox heartbeat there, so a long catch-up
        # (tens of thousands of messages) counts as progress and does not starve the systemd watchdog.
        self.progress: Callable[[], None] = lambda: None

    def catch_up(self) -> int:
        """Process every message after the cursor; returns how many were new. Blocking: run in a thread."""
        reconnected = not self.mailbox.connected
        if reconnected:
            self.mailbox.connect()
        uidvalidity = self.mailbox.uidvalidity(self.folder)
        with transaction(self.engine) as session:
            cursor = cursor_for(session, self.key)
            last_uid = cursor.last_uid if cursor and cursor.uidvalidity == uidvalidity else 0
            if cursor and cursor.uidvalidity != uidvalidity:
                log.warning(
                    "%s: UIDVALIDITY changed; re-reading the folder (nothing is applied twice)", self.key
                )
        if reconnected:
            self.refile(uidvalidity, last_uid)
        # A group cut off by a crash (or rolled back) left raw files no row names: delete them first.
        reclaimed = sum(self.inbox.reclaim_raw(self._journal(turn)) for turn in range(JOURNALS))
        if reclaimed:
            log.info("%s: removed %d raw file(s) of a group that did not commit", self.key, reclaimed)
        # Moves go out a batch at a time, after the commits they follow; if the connection drops first,
        # `refile` on the next connection finishes them.
        filing: dict[Disposition, list[int]] = {}
        fetching = self.mailbox.fetch_since(self.folder, last_uid, expect_uidvalidity=uidvalidity)
        count = self._ingest_groups(fetching, filing)
        self._file(filing)
        return count

    def _ingest_groups(self, fetching: Iterator[FetchedMessage], filing: dict[Disposition, list[int]]) -> int:
        """The catch-up's groups of STORE_GROUP, each ingested in one transaction (a savepoint per message,
        the cursor with it); returns how many messages were new.

        While a group is ingested, the next AHEAD are fetched and stored (one gpg run a group encrypts it,
        its files are written and fsynced): in a thread, or in a long catch-up in a worker process, where
        the next group is also read (`CatchUpWorkers`): gpg, the fsyncs and the reading take the other core
        and leave the daemon's interpreter to ingest. So up to AHEAD + 1 groups' files may wait for a
        commit at once, each group's named first in a journal of its own (JOURNALS, in turn), which
        `reclaim_raw` empties before the next catch-up."""
        count = 0
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailroom-store") as storer,
            ExitStack() as stack,
        ):
            pool: CatchUpWorkers | None = None
            waiting: deque[_Ahead] = deque()
            fetched = 0
            for number in itertools.count():
                while len(waiting) <= AHEAD:
                    group = list(itertools.islice(fetching, STORE_GROUP))
                    if not group:
                        break
                    if pool is None and fetched and len(group) == STORE_GROUP:  # long: pays for workers
                        log.info("%s: a long catch-up; %s", self.key, AHEAD_IN_WORKERS)
                        pool = stack.enter_context(CatchUpWorkers(self.inbox.settings))
                    raws = [f.raw for f in group]
                    reading = pool.submit(raws) if pool else None
                    in_worker = pool.store(raws, self._journal(fetched)) if pool else None
                    storing = in_worker or self._store(storer, raws, fetched)
                    waiting.append(_Ahead(group, storing, reading, in_worker is not None))
                    fetched += 1
                if not waiting:
                    break
                ahead = waiting.popleft()
                stored = self._stored(ahead, number, pool)
                readings = pool.readings(ahead.reading, len(ahead.group)) if pool else None
                arrivals = [Arrival(f.raw, f.uidvalidity, f.uid, f.internaldate) for f in ahead.group]
                outcomes = self.inbox.ingest_group(arrivals, stored, mailbox=self.key, readings=readings)
                self.inbox.documents.close_journal(self._journal(number))
                for message, (disposition, new) in zip(ahead.group, outcomes, strict=True):
                    count += new
                    filing.setdefault(disposition, []).append(message.uid)
                if sum(map(len, filing.values())) >= FILE_BATCH:
                    self._file(filing)
                self.progress()
        return count

    def _stored(self, ahead: _Ahead, number: int, pool: CatchUpWorkers | None) -> list[StoredFile]:
        """Group `number`'s files. If the worker storing it died, whatever it wrote goes (no row names
        it yet) and the group is stored here, under the same journal."""
        if not ahead.in_worker or pool is None:
            return ahead.storing.result()
        stored = pool.stored(ahead.storing)
        if stored is None:
            self.inbox.reclaim_raw(self._journal(number))
            stored = self.inbox.store_raw([f.raw for f in ahead.group], journal=self._journal(number))
        return stored

    def _store(self, storer: ThreadPoolExecutor, raws: list[bytes], number: int) -> Future[list[StoredFile]]:
        return storer.submit(self.inbox.store_raw, raws, journal=self._journal(number))

    def _journal(self, number: int) -> str:
        """Group `number`'s journal: a catch-up's JOURNALS, in turn (the first keeps the mailbox's name)."""
        turn = number % JOURNALS
        return self.key if turn == 0 else f"{self.key}#{turn + 1}"

    def refile(self, uidvalidity: int, last_uid: int) -> int:
        """File messages that were processed but are still in the folder: the daemon stopped (or the
        connection dropped) between committing a message's effects and moving it. Runs once per connection;
        messages left for people to read (out-of-office, bulletins) stay where they are."""
        uids = self.mailbox.uids_through(self.folder, last_uid)
        where = self.inbox.filing(self.key, uidvalidity, uids) if uids else {}
        filing: dict[Disposition, list[int]] = {}
        for uid, disposition in where.items():
            filing.setdefault(disposition, []).append(uid)
        filed = self._file(filing)
        if filed:
            log.info("%s: filed %d message(s) whose move had been cut off", self.key, filed)
        return filed

    def _file(self, filing: dict[Disposition, list[int]]) -> int:
        """Move what is pending, one command per destination; messages left for people stay. Empties
        `filing` and returns how many were moved."""
        o = self.mailbox.options
        destinations = {
            Disposition.PROCESSED: o.processed_folder,
            Disposition.QUARANTINE: o.quarantine_folder,
        }
        moved = 0
        for disposition, destination in destinations.items():
            uids = sorted(filing.pop(disposition, []))
            if uids:
                self.mailbox.move(self.folder, uids, destination)
                moved += len(uids)
        filing.clear()
        return moved

    async def run(self, stop: asyncio.Event, heartbeat: Heartbeat) -> None:
        outage = OutageLog(f"IMAP {self.mailbox.options.where}", channel="imap")
        # A certificate that stops verifying is only ever met on a reconnect, that is in an outage that
        # began as a dropped connection; in `outage` it would be a DEBUG line behind that one WARNING, and
        # a replaced (perhaps forged) certificate must not go unseen. So it is an outage of its own.
        trust = OutageLog(f"IMAP {self.mailbox.options.where} certificate verification", channel="imap")
        storage = OutageLog("encrypted storage of inbound mail (gpg)", channel="gpg")
        backoff = self.backoff
        renew = self.mailbox.options.idle_renew_minutes * 60.0
        leader = Leadership(self.engine, f"imap-watcher:{self.key}")
        self.progress = lambda: heartbeat.beat("inbox")
        while not stop.is_set():
            if not await asyncio.to_thread(leader.acquire):
                # Another daemon on this database reads the mailbox; stand by in case it goes away.
                heartbeat.beat("inbox")
                if await sleep_or_stop(stop, STANDBY_SECONDS):
                    break
                continue
            try:
                await asyncio.to_thread(self.catch_up)
                outage.recovered()
                trust.recovered()
                storage.recovered()
                backoff.reset()
                heartbeat.beat("inbox")
                await asyncio.to_thread(self.mailbox.wait_for_change, self.folder, min(renew, 30.0))
                heartbeat.beat("inbox")
                continue
            except MailboxAuthError as exc:
                # A wrong password is an operator matter, not a bug: one line, no traceback.
                log.error("IMAP login refused (%s); check [imap] username and password_file", exc)  # noqa: TRY400
                delay = AUTH_RETRY_SECONDS
            except MailboxUntrusted as exc:
                delay = backoff.next_delay()
                trust.failed(exc, retry_in=delay)
            except (MailboxUnavailable, MailboxError, OSError) as exc:
                delay = backoff.next_delay()
                outage.failed(exc, retry_in=delay)
            except CryptoError as exc:
                # Nothing can be stored (a key or the gpg home went away), so nothing is read: the mail
                # waits on the server, the cursor where it was, until `mailroom doctor` says gpg is fine.
                delay = backoff.next_delay()
                storage.failed(exc, retry_in=delay)
            await asyncio.to_thread(self.mailbox.close)
            heartbeat.beat("inbox")
            if await sleep_or_stop(stop, delay):
                break
        await asyncio.to_thread(self.mailbox.close)
        await asyncio.to_thread(leader.release)

    def stop(self) -> None:
        self.mailbox.stop()
