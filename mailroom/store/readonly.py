"""A read-only connection for the commands that only look (`queue`, `inbox`, `clocks`, `escalations`,
`case show`): plain DB-API, `sqlite3` or `psycopg`, without SQLAlchemy or the ORM models.

Why not the engine: importing SQLAlchemy, SQLModel and the models costs ~0.35 s of CPU in every process,
several times what a listing's queries cost (issue 13: a listing in 0.5 s; issue 12: answers in 2 s
beside a busy daemon on two cores). The services, which already hold an engine, read through the same
queries with `ReadOnly.of_engine`, so the CLI and the services cannot drift apart.

SQL is written once with `:name` parameters (sqlite3's named style); for psycopg they become
`%(name)s`. A read is one snapshot: on SQLite a deferred BEGIN (a reader in WAL mode takes no write lock,
so it never queues behind the daemon), on PostgreSQL a READ ONLY transaction.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailroom.core.errors import DatabaseUnavailable, StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

Row = dict[str, Any]
# The newest migration. Commands and the daemon check the schema against it without importing Alembic
# (~11 MB); tests/unit/store/test_store.py keeps it equal to the migrations folder's head.
SCHEMA_HEAD = "0006"
SQLITE_BUSY_TIMEOUT_S = 30.0
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def database_failure(exc: BaseException, hint: str | None = None) -> str:
    """`cannot use the database: <the driver's first line> (<the cause, if known>)`."""
    reason = (str(getattr(exc, "orig", None) or exc).splitlines() or ["no reason given"])[0][:200]
    hint = hint or next(iter(getattr(exc, "__notes__", ())), None)
    return f"cannot use the database: {reason}" + (f" ({hint})" if hint else "")


class ReadOnly:
    """One DB-API connection, used only to read. `rows` and `scalar` run inside `snapshot()`."""

    def __init__(
        self, connection: Any, dialect: str, path: Path | None = None, conninfo: str | None = None
    ) -> None:
        self._connection = connection
        self.dialect = dialect
        self._path = path  # the SQLite file, to say why it cannot be opened
        self._conninfo = conninfo
        self._errors: tuple[type[BaseException], ...] = _driver_errors(dialect)

    @property
    def connection(self) -> Any:
        """The DB-API connection itself, for a reader of its own (`audit verify`'s)."""
        return self._connection

    @property
    def database(self) -> str | None:
        """What another process opens to read the same database (the SQLite file, PostgreSQL's conninfo);
        None for one read through an engine."""
        return str(self._path) if self._path is not None else self._conninfo

    # -- opening ---------------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> ReadOnly | None:
        """A connection for `[store] url` without SQLAlchemy where the URL is a plain file or server;
        None for anything else (in-memory SQLite, another driver), which is read through an engine."""
        path = _sqlite_path(url)
        if path is not None:
            if not path.parent.is_dir():
                raise StoreError(f"database folder {path.parent} does not exist ([store] url)")
            if not path.exists():
                raise StoreError("the database is empty; run `mailroom db upgrade` first")
            import sqlite3

            try:
                connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
            except sqlite3.Error as exc:
                raise DatabaseUnavailable(database_failure(exc, file_write_problem(path))) from None
            return cls(connection, "sqlite", path)
        conninfo = _postgres_conninfo(url)
        if conninfo is not None:
            import psycopg

            try:
                return cls(psycopg.connect(conninfo), "postgresql", conninfo=conninfo)
            except psycopg.Error as exc:
                raise DatabaseUnavailable(database_failure(exc)) from None
        return None

    @classmethod
    def of_engine(cls, engine: Engine) -> ReadOnly:
        """The same reads over a connection from an engine's pool (the services' path); `close` gives
        it back to the pool."""
        return cls(engine.raw_connection(), engine.dialect.name)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ReadOnly:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[ReadOnly]:
        """One consistent view for the queries inside it; always rolled back (nothing is written).
        Every read runs inside one: psycopg would otherwise leave its implicit transaction open."""
        # SQLite (autocommit mode on both paths) needs the BEGIN; psycopg begins by itself, and SET
        # TRANSACTION as the first statement makes that transaction read-only.
        self._execute("BEGIN" if self.dialect == "sqlite" else "SET TRANSACTION READ ONLY", {})
        try:
            yield self
        finally:
            with suppress(*self._errors):  # a connection that is gone has nothing to undo
                self._connection.rollback()

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        cursor = self._execute(sql, params or {})
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        found = self._execute(sql, params or {}).fetchone()
        return None if found is None else found[0]

    def has_table(self, name: str) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = :name"
        else:
            sql = "SELECT count(*) FROM information_schema.tables WHERE table_name = :name"
        return bool(self.scalar(sql, {"name": name}))

    def _execute(self, sql: str, params: Mapping[str, Any]) -> Any:
        sql, values = expand(sql, params)
        if self.dialect != "sqlite":
            sql = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql, values)
        except self._errors as exc:
            hint = file_write_problem(self._path) if self._path is not None else None
            raise DatabaseUnavailable(database_failure(exc, hint)) from None
        return cursor


def expand(sql: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """`IN :name` with a sequence becomes `IN (:name_0, :name_1, ...)`: DB-API has no list parameter."""
    values: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, list | tuple):
            names = [f"{name}_{n}" for n in range(len(value))] or [f"{name}_none"]
            sql = re.sub(rf":{name}\b", "(" + ", ".join(f":{n}" for n in names) + ")", sql)
            values.update(zip(names, value, strict=False))
            if not value:
                values[f"{name}_none"] = None  # IN (NULL) matches nothing
        else:
            values[name] = value
    return sql, values


# -- what the drivers return, made the same ----------------------------------------------------------------


def when(value: Any) -> datetime | None:
    """A stored time, aware UTC: SQLite gives the text SQLAlchemy wrote, PostgreSQL a datetime."""
    if value is None:
        return None
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(value: Any) -> str | None:
    moment = when(value)
    return moment.isoformat() if moment else None


def from_json(value: Any) -> Any:
    """A JSON column: text on SQLite, already decoded by psycopg."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def flag(value: Any) -> bool:
    return bool(value)


def schema_revision(reader: ReadOnly) -> str | None:
    if not reader.has_table("alembic_version"):
        return None
    value = reader.scalar("SELECT version_num FROM alembic_version")
    return None if value is None else str(value)


def require_schema(reader: ReadOnly) -> None:
    check_revision(schema_revision(reader))


def check_revision(current: str | None) -> None:
    """Refuse a database that `mailroom db upgrade` has not brought up to date (both read paths ask)."""
    if current != SCHEMA_HEAD:
        state = "empty" if current is None else f"at revision {current}"
        raise StoreError(f"the database is {state}; run `mailroom db upgrade` first")


def file_write_problem(path: Path) -> str | None:
    """Why this process cannot write the SQLite database file at `path`, if the file system or the file
    modes say so: SQLite itself says only "unable to open database file" when its folder is read-only."""
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"{folder} is on a read-only file system"
    except OSError as exc:
        return f"{folder}: {exc.strerror}"
    # Root passes os.access whatever the modes say; for anyone else this is the file mode's answer.
    if path.exists() and not os.access(path, os.W_OK):
        return f"the database file {path} is read-only for this user"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the database folder {folder} is read-only for this user"
    return None


def database_address(url: str) -> str | None:
    """What another process opens to read the database at `url` (SQLite's file, PostgreSQL's conninfo);
    None for one only this process can reach (in-memory SQLite, another driver)."""
    path = _sqlite_path(url)
    return str(path) if path is not None else _postgres_conninfo(url)


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    database = url[len(prefix) :]
    return Path(database) if database and database != ":memory:" else None


def _postgres_conninfo(url: str) -> str | None:
    for scheme in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql://" + url[len(scheme) :]
    return None


def _driver_errors(dialect: str) -> tuple[type[BaseException], ...]:
    if dialect == "sqlite":
        import sqlite3

        return (sqlite3.Error,)
    import psycopg

    return (psycopg.Error,)
