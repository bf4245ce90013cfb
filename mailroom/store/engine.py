"""Engine and sessions, built from settings at start-up (never at import), and schema migration.

SQLite for one server: WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE so two writers queue for the
lock instead of failing half-way through a read-then-write. PostgreSQL when one server is not enough: the
same code, chosen by the URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailroom.core.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration. The daemon checks the schema against it without importing Alembic (~11 MB);
# tests/unit/test_store.py keeps it equal to the migrations folder's head.
SCHEMA_HEAD = "0004"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_engine(url: str) -> Engine:
    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        folder = Path(database).parent
        if not folder.is_dir():
            raise StoreError(f"database folder {folder} does not exist ([store] url)")
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see the "begin" hook below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=FULL")
        # Deleted values are overwritten, not left in free pages: erasure requests must really erase.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any error. Objects stay usable after commit."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the latest revision; idempotent. Returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    command.upgrade(_alembic_config(engine), "head")
    return before, head_revision()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot open the database: {_short(exc)}") from None


def head_revision() -> str:
    """The migrations folder's head, read by Alembic (for `db upgrade` and the test of SCHEMA_HEAD)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(sa.create_engine("sqlite://"))).get_current_head()
    assert head is not None
    return str(head)


def require_current_schema(engine: Engine) -> None:
    """Refuse to run against a database that `mailroom db upgrade` has not brought up to date."""
    current = current_revision(engine)
    if current != SCHEMA_HEAD:
        state = "empty" if current is None else f"at revision {current}"
        raise StoreError(f"the database is {state}; run `mailroom db upgrade` first")


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]
