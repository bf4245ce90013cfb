"""The daemon's heartbeat in the database: who runs, when it last worked, what is out.

One row per daemon process (store.models.DaemonInstance), written at start, every `[daemon]
heartbeat_seconds` and at a clean stop. Liveness is wall-clock time even under `run --at` time travel:
it is about the process, not the programme's calendar.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col

from mailroom.edges.process import ProcessIdentity
from mailroom.service.outage import BOARD, OutageBoard
from mailroom.store.engine import transaction
from mailroom.store.models import DaemonInstance

log = logging.getLogger(__name__)
KEEP_STOPPED = timedelta(days=31)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class HeartbeatRecorder:
    def __init__(
        self,
        engine: sa.Engine,
        me: ProcessIdentity,
        *,
        version: str,
        config: str,
        clock: Callable[[], datetime] = wall_clock,
        board: OutageBoard = BOARD,
    ) -> None:
        self.engine = engine
        self.me = me
        self.version = version
        self.config = config
        self.clock = clock
        self.board = board

    def start(self) -> None:
        now = self.clock()
        with transaction(self.engine) as session:
            # A row per start adds up over years of restarts; a month of history is plenty for status.
            session.execute(
                sa.delete(DaemonInstance).where(col(DaemonInstance.heartbeat_at) < now - KEEP_STOPPED)
            )
            known = session.get(DaemonInstance, self.me.instance_id)
            if known is not None:  # the same parts run again (`run_once` in a loop): alive again
                known.heartbeat_at, known.stopped_at = now, None
                session.add(known)
                return
            session.add(
                DaemonInstance(
                    id=self.me.instance_id,
                    host=self.me.host[:255],
                    boot_id=self.me.boot_id,
                    pid=self.me.pid,
                    process_started=self.me.started,
                    version=self.version[:32],
                    config=self.config[:1024],
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def beat(self, *, stopping: bool = False) -> None:
        """Write what this process knows now; a failure is logged and the daemon goes on."""
        now = self.clock()
        try:
            with transaction(self.engine) as session:
                row = session.get(DaemonInstance, self.me.instance_id)
                if row is None:
                    return
                row.heartbeat_at = now
                row.smtp_contact_at = self.board.last_contact("smtp") or row.smtp_contact_at
                row.imap_contact_at = self.board.last_contact("imap") or row.imap_contact_at
                row.outages = [{**asdict(o), "since": o.since.isoformat()} for o in self.board.outages()]
                if stopping:
                    row.stopped_at = now
                session.add(row)
        except sa.exc.SQLAlchemyError as exc:
            # The database being away is itself an outage the runners log; this says only what it missed.
            log.debug("heartbeat not written: %s", exc)
