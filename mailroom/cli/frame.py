"""The CLI's frame (design.md §8): the root group, what every command needs (`Cli`), output helpers, and
`invoke`, which turns errors into exit codes. The commands live one module per group; `main` adds them.

Exit codes: 0 ok, 1 failure, 2 usage, 78 configuration error. A user's mistake is one line on stderr,
never a traceback.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from mailroom.core.config import Settings
from mailroom.core.errors import EX_FAILURE, EX_USAGE, InputError, MailroomError
from mailroom.edges.configfile import config_path, load_settings

if TYPE_CHECKING:  # imported by the commands that use them: `mailroom --help` loads no SQLAlchemy (issue 13)
    from sqlalchemy.engine import Engine

    from mailroom.core.workdays import WorkCalendar
    from mailroom.service.clocks import ClockKeeper
    from mailroom.service.inbound import Inbox
    from mailroom.service.mailroom import Mailroom
    from mailroom.store.readonly import ReadOnly

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def system_now() -> datetime:
    """The wall clock, aware UTC (the same as `mailroom.daemon.wiring.system_now`, without its imports)."""
    return datetime.now(UTC)


@dataclass
class Cli:
    """What every command needs, built lazily so `--help` works without a config file."""

    config: str | None = None
    _now: Callable[[], datetime] = field(default=system_now, repr=False)
    _settings: Settings | None = field(default=None, repr=False)
    _mailroom: Mailroom | None = field(default=None, repr=False)
    _clocks: ClockKeeper | None = field(default=None, repr=False)
    _engines: list[Engine] = field(default_factory=list, repr=False)
    _reader: ReadOnly | None = field(default=None, repr=False)
    _checked: Engine | None = field(default=None, repr=False)
    _calendar: WorkCalendar | None = field(default=None, repr=False)

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
        from mailroom.service.inbound import Inbox

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
            from mailroom.service.clocks import ClockKeeper

            self._clocks = ClockKeeper(self.settings())
        return self._clocks

    def close(self) -> None:
        """Give the database connections back when the command ends (PostgreSQL counts them)."""
        if self._mailroom is not None:
            self._mailroom.engine.dispose()
        for engine in self._engines:
            engine.dispose()
        if self._reader is not None:
            self._reader.close()

    def engine(self) -> Engine:
        from mailroom.store.engine import make_engine

        engine = make_engine(self.settings().store.url)
        self._engines.append(engine)
        return engine

    def reader(self) -> ReadOnly:
        """The connection for a command that only looks (a listing, `case show`): the schema checked and
        nothing else built. Plain sqlite3 or psycopg, so it loads no SQLAlchemy, no models, no daemon
        wiring and no gpg (issue 13), and on SQLite it never waits for the daemon's write lock."""
        if self._reader is None:
            from mailroom.store.readonly import ReadOnly, require_schema

            reader = ReadOnly.open(self.settings().store.url) or ReadOnly.of_engine(self.engine())
            try:
                with reader.snapshot():
                    require_schema(reader)
            except BaseException:
                reader.close()
                raise
            self._reader = reader
        return self._reader

    def checked_engine(self) -> Engine:
        """An engine with the schema checked and nothing else built (no daemon wiring, no gpg): for the
        commands that go through the ORM but need no service of the daemon's (`status`, `erase`, `report
        mi`, `audit checkpoint`, `audit verify`'s reference check)."""
        if self._checked is None:
            from mailroom.store.engine import require_current_schema

            engine = self.engine()
            require_current_schema(engine)
            self._checked = engine
        return self._checked

    def calendar(self) -> WorkCalendar:
        """The work calendar alone, for the commands that count working days but send nothing."""
        if self._clocks is not None:
            return self._clocks.calendar
        if self._calendar is None:
            from mailroom.service.views import work_calendar

            self._calendar = work_calendar(self.settings())
        return self._calendar

    def mailroom(self) -> Mailroom:
        if self._mailroom is None:
            from mailroom.daemon.wiring import make_mailroom

            self._mailroom = make_mailroom(self.settings(), now=self._now)
        return self._mailroom


pass_cli = click.make_pass_decorator(Cli)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


DEFAULT_LIMIT = 50  # rows a listing shows unless --limit says otherwise: one screen, then a footer
JSON_PAGE = 1000  # rows fetched at a time while JSON is streamed


def page_options(func: F) -> F:
    """`--limit N` and `--after ID` for a listing (keyset pages: `--after` is the last id shown)."""
    func = click.option(
        "--after", type=int, metavar="ID", help="Start after this id (the last one shown on the page before)."
    )(func)
    return click.option(
        "--limit",
        type=click.IntRange(min=1),
        help=f"Rows to show (default {DEFAULT_LIMIT}; with --json, every row, streamed).",
    )(func)


def pages(fetch: Callable[[int | None, int], Any], after: int | None, limit: int | None) -> Iterator[Any]:
    """Every row from `after` on (up to `limit`), fetched a keyset page at a time: memory stays flat."""
    left = limit
    while left is None or left > 0:
        size = JSON_PAGE if left is None else min(left, JSON_PAGE)
        page = fetch(after, size)
        yield from page.rows
        if left is not None:
            left -= len(page.rows)
        if not page.more or page.last is None:
            return
        after = page.last


def stream_json(rows: Iterable[Any], *, head: str = "[", tail: str = "]") -> None:
    """A JSON array written one row per line as the rows arrive, never held whole in memory."""
    click.echo(head)
    for number, row in enumerate(rows):
        click.echo(("  " if number == 0 else ", ") + json.dumps(row, default=str))
    click.echo(tail)


def print_footer(page: Any, limit: int | None) -> None:
    if page.more:
        shown = limit or DEFAULT_LIMIT
        out.print(f"{page.more:,} more; next page: --after {page.last} (showing {shown} a page; --limit N)")


def actor() -> str:
    """Who did it, for the audit trail: the operating-system user running the command."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid={os.getuid()}"


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

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
@click.version_option(package_name="mhss-mailroom", prog_name="mailroom")
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
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        line = fault_line(exc)
        if line is None:
            raise  # a bug: the traceback is the report
        err.print(f"mailroom: error: {line}", markup=False)
        return EX_FAILURE
    return result if isinstance(result, int) else 0


def fault_line(exc: BaseException) -> str | None:
    """One line for a fault of the machine (the database refused, gpg failed, a file could not be read
    or written), or None for anything else. The modules are looked up, not imported: an error of a kind
    whose module no command has loaded cannot have been raised, and `--help` must stay light."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError):
        # Read-only, locked past the busy timeout, a server gone; the transaction was rolled back.
        from mailroom.store.readonly import database_failure

        return database_failure(exc)
    crypto = sys.modules.get("outbox.errors")
    if crypto is not None and isinstance(exc, crypto.CryptoError):
        return str(exc)
    if isinstance(exc, OSError):
        # A file the command needed could not be read or written (a full or read-only disk).
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return None
