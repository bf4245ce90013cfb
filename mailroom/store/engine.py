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

from mailroom.core.errors import DatabaseUnavailable, StoreError
from mailroom.store.readonly import (
    SCHEMA_HEAD as SCHEMA_HEAD,
)  # re-exported: migrations and tests read it here
from mailroom.store.readonly import check_revision, database_failure, file_write_problem

MIGRATIONS = Path(__file__).with_name("migrations")
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

    @event.listens_for(engine, "handle_error")
    def _on_error(context: sa.engine.ExceptionContext) -> None:
        # SQLite says "unable to open database file" or "attempt to write a readonly database" and no
        # more; the note names the cause (read-only file system, file mode) for the CLI's one line.
        wrapped = context.sqlalchemy_exception
        if isinstance(wrapped, sa.exc.OperationalError) and not getattr(wrapped, "__notes__", None):
            hint = sqlite_write_problem(engine)
            if hint:
                wrapped.add_note(hint)

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
        raise DatabaseUnavailable(describe_failure(engine, exc)) from None


def head_revision() -> str:
    """The migrations folder's head, read by Alembic (for `db upgrade` and the test of SCHEMA_HEAD)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(sa.create_engine("sqlite://"))).get_current_head()
    assert head is not None
    return str(head)


def require_current_schema(engine: Engine) -> None:
    """Refuse to run against a database that `mailroom db upgrade` has not brought up to date."""
    check_revision(current_revision(engine))


def probe_write(engine: Engine) -> None:
    """A write that changes nothing: DatabaseUnavailable if the database opens but refuses writes."""
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM alembic_version WHERE 1 = 0"))
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailable(describe_failure(engine, exc)) from None


def describe_failure(engine: Engine, exc: Exception) -> str:
    """One line for an error the database gave: its own words, and for SQLite the likely cause, since
    SQLite says only "unable to open database file" when its folder is on a read-only file system."""
    return database_failure(exc, sqlite_write_problem(engine))


def sqlite_write_problem(engine: Engine) -> str | None:
    """Why this process cannot write the SQLite database, if the file system or file modes say so."""
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return None
    return file_write_problem(Path(engine.url.database))
