"""Exactly one daemon does a singleton job (the IMAP watcher) when several share a PostgreSQL database.

A PostgreSQL session-level advisory lock, held on its own connection for as long as the job runs; if that
daemon dies, its connection drops and the lock passes to another. SQLite means one server: always leader.
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from sqlalchemy.engine import Engine


class Leadership:
    def __init__(self, engine: Engine, job: str) -> None:
        self.engine = engine
        self.key = zlib.crc32(f"mailroom:{job}".encode())
        self._connection: sa.Connection | None = None

    def acquire(self) -> bool:
        """True when this process now holds (or already held) the job; never blocks."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self._connection is not None:
            return True
        connection = self.engine.connect()
        held = bool(connection.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        connection.commit()
        if held:
            self._connection = connection
        else:
            connection.close()
        return held

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._connection.commit()
            finally:
                self._connection.close()
                self._connection = None
