"""A throwaway PostgreSQL cluster on 127.0.0.1 for integration tests and benches (shared/harness.md §8).

`initdb` into a short temp folder, `pg_ctl start` on a free port with durability switched off (fsync,
synchronous_commit, full_page_writes: a test cluster is never worth an fsync), trust authentication for
the `postgres` role, and `pg_ctl stop -m immediate` at the end. As root every server command runs as the
system user `postgres` (PostgreSQL refuses to run as root); as a normal user it runs as that user.

    with Postgres() as pg:
        engine = create_engine(pg.url)                       # postgresql+psycopg://postgres@127.0.0.1:PORT/mailroom_test
        other = create_engine(pg.create_database("two"))    # an isolated database in the same cluster
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import sql
from sqlalchemy.engine import Engine

from mailroom.store.engine import make_engine, upgrade
from tests.support.dovecot import HOST, ServerUnavailable, free_ports, short_temp_dir

PG_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "mailroom_test"
INSTALL_HINT = "apt-get install postgresql"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=50")


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/N/bin holding initdb, pg_ctl and postgres."""
    candidates = sorted(
        (p for p in PG_ROOT.glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
        reverse=True,
    )
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise ServerUnavailable(f"PostgreSQL server binaries not found under {PG_ROOT}: {INSTALL_HINT}")


class Postgres:
    """One throwaway cluster with one database ready. Use as a context manager, or start()/stop()."""

    def __init__(self, database: str = DEFAULT_DATABASE) -> None:
        self.bindir = find_bindir()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            _require_server_user()
        self.database = _checked_name(database)
        self.host = HOST
        (self.port,) = free_ports(1)
        self.root = short_temp_dir("pg-")
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log_file = self.root / "postgres.log"
        self._running = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ready database."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str | None = None) -> str:
        """libpq connection string, for psycopg directly."""
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname={database or self.database}"

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """initdb (first time only), start the server and create the database."""
        if self._running:
            return
        self.sockets.mkdir(exist_ok=True)
        if self._as_root:
            shutil.chown(self.root, SERVER_USER, SERVER_USER)
            shutil.chown(self.sockets, SERVER_USER, SERVER_USER)
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses={self.host}"
        options += "".join(f" -c {setting}" for setting in _SETTINGS)
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", "30", "-o", options, "start"
        )
        self._running = True
        if self.database not in self.databases():
            self.create_database(self.database)

    def stop(self) -> None:
        """Stop at once (`-m immediate`): no checkpoint, since the data is thrown away."""
        if not self._running:
            return
        self._running = False
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def close(self) -> None:
        """Stop and delete the cluster's files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- databases -------------------------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create an empty database (from template1) and return its SQLAlchemy URL."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_checked_name(name))))
        return self.url_for(name)

    @contextmanager
    def upgraded(self, name: str) -> Iterator[Engine]:
        """A fresh database of this name at the newest schema, for the block; dropped afterwards."""
        engine = make_engine(self.create_database(name))
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()
            self.drop_database(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(statement.format(sql.Identifier(_checked_name(name))))

    def databases(self) -> set[str]:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            rows = connection.execute("SELECT datname FROM pg_database WHERE NOT datistemplate").fetchall()
        return {row[0] for row in rows}

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return " | ".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    # -- internals -------------------------------------------------------------------------------------------

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",  # nothing here needs to survive a power cut
            "--no-instructions",
        )

    def _run(self, tool: str, *args: str) -> None:
        """Run a server binary, as `postgres` when we are root; ServerUnavailable with the log on failure."""
        # As root, drop to `postgres` in the child itself: like `su postgres -c`, without a shell or PAM.
        identity: dict[str, Any] = (
            {"user": SERVER_USER, "group": SERVER_USER, "extra_groups": []} if self._as_root else {}
        )
        # Output goes to a file, never a pipe: the server would inherit a pipe and keep the caller waiting.
        output = self.root / f"{tool}.out"
        with output.open("wb") as sink:
            done = subprocess.run(
                [str(self.bindir / tool), *args],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                check=False,
                **identity,
            )
        if done.returncode != 0:
            said = output.read_text(errors="replace").strip().replace("\n", " | ")
            raise ServerUnavailable(f"{tool} failed ({done.returncode}): {said}; log: {self.log_tail(5)}")


def _checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name


def _require_server_user() -> None:
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ServerUnavailable(
            f"no system user {SERVER_USER} to run PostgreSQL as: {INSTALL_HINT}"
        ) from None
