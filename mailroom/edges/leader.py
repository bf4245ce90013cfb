"""Exactly one daemon does a singleton job (the IMAP watcher) when several share a PostgreSQL database.

A PostgreSQL session-level advisory lock, held on its own connection for as long as the job runs; if that
daemon dies, its connection drops and the lock passes to another. SQLite means one server: always leader.
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from sqlalchemy.engine import Engine

# The first key of every instance lock (two-key advisory locks are a lock space apart from Leadership's).
INSTANCE_LOCK_CLASS = 0x6D61696C  # "mail"


def instance_lock_key(instance_id: str) -> int:
    """The second key: the instance id's CRC-32 as a signed 32-bit integer, as PostgreSQL's int4 wants."""
    key = zlib.crc32(instance_id.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


class _SessionLock:
    """A PostgreSQL session advisory lock held on a connection of its own until released or the process
    dies (its connection drops, and the lock with it). On SQLite (one server) it is always held."""

    keys = ":k"  # the lock function's arguments; two keys are a lock space apart from one

    def __init__(self, engine: Engine, params: dict[str, int]) -> None:
        self.engine = engine
        self.params = params
        self._connection: sa.Connection | None = None

    def acquire(self) -> bool:
        """True when this process now holds (or already held) the lock; never blocks."""
        if self.engine.dialect.name != "postgresql" or self._connection is not None:
            return True
        connection = self.engine.connect()
        query = sa.text(f"SELECT pg_try_advisory_lock({self.keys})")
        held = bool(connection.execute(query, self.params).scalar())
        connection.commit()
        if held:
            self._connection = connection
        else:
            connection.close()
        return held

    def release(self) -> None:
        if self._connection is not None:
            try:
                # Unlock explicitly: close() only hands the connection back to the pool, session and all.
                self._connection.execute(sa.text(f"SELECT pg_advisory_unlock({self.keys})"), self.params)
                self._connection.commit()
            finally:
                self._connection.close()
                self._connection = None


class InstanceLock(_SessionLock):
    """A daemon's proof of life on PostgreSQL: a lock on its own instance id, held while it runs. When the
    process dies the lock is free, so another daemon, on any host, can tell at once that the claims it
    left are orphans (`instance_lock_free`)."""

    keys = ":c, :k"

    def __init__(self, engine: Engine, instance_id: str) -> None:
        super().__init__(engine, {"c": INSTANCE_LOCK_CLASS, "k": instance_lock_key(instance_id)})


def instance_lock_free(connection: sa.Connection, instance_id: str) -> bool:
    """On PostgreSQL: True when no session holds that instance's lock, i.e. the instance is gone."""
    params = {"c": INSTANCE_LOCK_CLASS, "k": instance_lock_key(instance_id)}
    taken = bool(connection.execute(sa.text("SELECT pg_try_advisory_lock(:c, :k)"), params).scalar())
    if taken:
        connection.execute(sa.text("SELECT pg_advisory_unlock(:c, :k)"), params)
    return taken


class Leadership(_SessionLock):
    """Exactly one daemon holds `job` (the IMAP watcher for one mailbox) at a time."""

    def __init__(self, engine: Engine, job: str) -> None:
        super().__init__(engine, {"k": zlib.crc32(f"mailroom:{job}".encode())})
