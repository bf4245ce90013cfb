"""The CLI's frame (design.md §8): the root group, what every command needs (`Cli`), output helpers, and
`invoke`, which turns errors into exit codes. The commands live one module per group; `main` adds them.

Exit codes: 0 ok, 1 failure, 2 usage, 78 configuration error. A user's mistake is one line on stderr,
never a traceback.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from mailroom.core.config import Settings
from mailroom.core.errors import EX_FAILURE, EX_USAGE, InputError, MailroomError
from mailroom.daemon.wiring import system_now
from mailroom.edges.configfile import config_path, load_settings
from mailroom.service.clocks import ClockKeeper
from mailroom.service.inbound import Inbox
from mailroom.service.mailroom import Mailroom
from outbox.errors import CryptoError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Cli:
    """What every command needs, built lazily so `--help` works without a config file."""

    config: str | None = None
    _now: Callable[[], datetime] = field(default=system_now, repr=False)
    _settings: Settings | None = field(default=None, repr=False)
    _mailroom: Mailroom | None = field(default=None, repr=False)
    _clocks: ClockKeeper | None = field(default=None, repr=False)
    _engines: list[Engine] = field(default_factory=list, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(config_path(self.config))
        return self._settings

    def now(self, at: str | None) -> Callable[[], datetime]:
        """The clock for this command: the real one, or a moved one with --at (test_mode only)."""
        if at is None:
            return system_now
        if not self.settings().daemon.test_mode:
            raise InputError("--at (time travel) needs [daemon] test_mode = true; never on a live system")
        try:
            start = datetime.fromisoformat(at)
        except ValueError:
            raise InputError(f"--at: not an ISO 8601 time like 2026-12-01T10:00:00+00:00: {at!r}") from None
        if start.tzinfo is None:
            raise InputError("--at: give a time zone, e.g. 2026-12-01T10:00:00+00:00")
        offset = start - system_now()
        return lambda: system_now() + offset

    def inbox(self) -> Inbox:
        mailroom = self.mailroom()
        return Inbox(
            self.settings(),
            mailroom.engine,
            mailroom.documents,
            mailroom.now,
            self.clocks(),
            mailroom.nino_key,
        )

    def clocks(self) -> ClockKeeper:
        if self._clocks is None:
            self._clocks = ClockKeeper(self.settings())
        return self._clocks

    def close(self) -> None:
        """Give the database connections back when the command ends (PostgreSQL counts them)."""
        if self._mailroom is not None:
            self._mailroom.engine.dispose()
        for engine in self._engines:
            engine.dispose()

    def engine(self) -> Engine:
        from mailroom.store.engine import make_engine

        engine = make_engine(self.settings().store.url)
        self._engines.append(engine)
        return engine

    def mailroom(self) -> Mailroom:
        if self._mailroom is None:
            from mailroom.daemon.wiring import make_mailroom

            self._mailroom = make_mailroom(self.settings(), now=self._now)
        return self._mailroom


pass_cli = click.make_pass_decorator(Cli)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


def actor() -> str:
    """Who did it, for the audit trail: the operating-system user running the command."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid={os.getuid()}"


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    metavar="PATH",
    help="Config file (default: $MAILROOM_CONFIG, then /etc/mailroom/mailroom.toml).",
)
@click.version_option(package_version("mhss-mailroom"), prog_name="mailroom")
@click.pass_context
def app(ctx: click.Context, config: str | None) -> None:
    """Send AtW MHSS reports to DWP, read DWP's replies, run the clocks, escalate."""
    ctx.obj = Cli(config=config)
    ctx.call_on_close(ctx.obj.close)


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"not a date like 2026-12-24: {value!r}") from None


# -- entry point -----------------------------------------------------------------------------------------


def invoke(group: click.Group, argv: Sequence[str] | None = None) -> int:
    """Run `group` and return the exit code: a user's mistake is one line on stderr, never a traceback."""
    try:
        result = group.main(
            args=list(argv) if argv is not None else None, prog_name="mailroom", standalone_mode=False
        )
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return EX_USAGE
    except click.UsageError as exc:
        exc.show()
        return EX_USAGE
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        err.print("mailroom: aborted")
        return EX_FAILURE
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except MailroomError as exc:
        err.print(f"mailroom: error: {exc}", markup=False)
        return exc.exit_code
    except sa_exc.DBAPIError as exc:
        # The database refused (read-only, locked past the busy timeout, a server gone): one line that
        # says so, not a traceback; the transaction was rolled back, so nothing changed.
        from mailroom.store.engine import database_failure

        err.print(f"mailroom: error: {database_failure(exc)}", markup=False)
        return EX_FAILURE
    except CryptoError as exc:
        err.print(f"mailroom: error: {exc}", markup=False)
        return EX_FAILURE
    except OSError as exc:
        # A file the command needed could not be read or written (a full or read-only disk).
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"mailroom: error: {exc.strerror or exc}{where}", markup=False)
        return EX_FAILURE
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0
