"""The admin CLI (design.md §8). Thin: parse, call the service, print a table or JSON.

Exit codes: 0 ok, 1 failure, 2 usage, 78 configuration error. A user's mistake is one line on stderr,
never a traceback.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import Engine

from mailroom.clockwork import ClockKeeper
from mailroom.config import Settings, config_path, load_settings
from mailroom.errors import EX_FAILURE, EX_USAGE, InputError, MailroomError
from mailroom.inbound import Inbox
from mailroom.service import Mailroom, NewCase
from mailroom.wiring import system_now

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
        from mailroom.db import make_engine

        engine = make_engine(self.settings().store.url)
        self._engines.append(engine)
        return engine

    def mailroom(self) -> Mailroom:
        if self._mailroom is None:
            from mailroom.wiring import make_mailroom

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


# -- db ------------------------------------------------------------------------------------------------


@app.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@json_option
@pass_cli
def db_upgrade(cli: Cli, as_json: bool) -> None:
    """Create or migrate the schema to the latest revision (safe to run again)."""
    from mailroom.db import upgrade
    from mailroom.documents import ensure_private_dir

    settings = cli.settings()
    before, after = upgrade(cli.engine())
    ensure_private_dir(settings.store.documents_dir)
    if as_json:
        print_json({"from": before, "to": after, "changed": before != after})
    else:
        out.print(f"database at revision {after}" + ("" if before != after else " (already up to date)"))


# -- cases ---------------------------------------------------------------------------------------------


@app.group("case")
def case_group() -> None:
    """Customers' cases."""


@case_group.command("add")
@click.argument("case_ref")
@click.option("--atw-ref", help="DWP/AtW reference.")
@click.option("--prap-id", help="PRaP referral id.")
@click.option("--nino", help="NI number; only a keyed hash of it is stored.")
@click.option("--performance-manager", help="Override for this case's escalations (must be allow-listed).")
@click.option("--restricted", is_flag=True, help="Never send automatically; hide details in output.")
@click.option("--font-exception", is_flag=True, help="The customer needs another format than Arial 12.")
@click.option("--force", is_flag=True, help="Allow a second case for the same NI number.")
@json_option
@pass_cli
def case_add(
    cli: Cli,
    case_ref: str,
    atw_ref: str | None,
    prap_id: str | None,
    nino: str | None,
    performance_manager: str | None,
    restricted: bool,
    font_exception: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Add a case."""
    new = NewCase(case_ref, atw_ref, prap_id, nino, performance_manager, restricted, font_exception)
    case = cli.mailroom().add_case(new, actor=actor(), force=force)
    if as_json:
        print_json({"case_ref": case.case_ref, "id": case.id})
    else:
        out.print(f"case {case.case_ref} added")


@case_group.command("import")
@click.argument("csv_file", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Allow second cases for the same NI number.")
@json_option
@pass_cli
def case_import(cli: Cli, csv_file: Path, force: bool, as_json: bool) -> None:
    """Add cases from a CSV file (header: case_ref,atw_ref,prap_id,nino,...): all of them, or none."""
    mailroom = cli.mailroom()
    with Progress(console=err, transient=True, disable=as_json) as progress:
        task = progress.add_task("importing cases", total=None)
        count = mailroom.import_cases(
            csv_file, actor=actor(), force=force, progress=lambda n: progress.advance(task, n)
        )
    if as_json:
        print_json({"imported": count})
    else:
        out.print(f"{count} case(s) imported")


@case_group.command("show")
@click.argument("case_ref")
@json_option
@pass_cli
def case_show(cli: Cli, case_ref: str, as_json: bool) -> None:
    """A case with its submissions and their timelines, clocks and escalations."""
    view = cli.mailroom().case_view(case_ref)
    if as_json:
        print_json(view)
        return
    flags = " (restricted)" if view["restricted"] else ""
    out.print(f"[bold]{view['case_ref']}[/bold]{flags}")
    print_table(
        "Submissions",
        ["id", "type", "v", "state", "sent", "acknowledged", "rejected", "reasons"],
        [
            [
                s["id"],
                s["report_type"],
                s["version"],
                s["state"],
                s["sent_at"],
                s["acknowledged_at"],
                s["rejected_at"],
                ", ".join(s["rejection_reasons"]),
            ]
            for s in view["submissions"]
        ],
    )
    for s in view["submissions"]:
        if s.get("timeline"):
            print_table(
                f"Timeline of submission {s['id']}",
                ["at", "event", "from", "to", "by"],
                [[e["at"], e["action"], e["from"], e["to"], e["actor"]] for e in s["timeline"]],
            )
    if view["clocks"]:
        print_table(
            "Clocks",
            ["kind", "state", "started", "due", "submission", "calendar"],
            [
                [c["kind"], c["state"], c["started_at"], c["due_at"], c["submission_id"], c["calendar"]]
                for c in view["clocks"]
            ],
        )
    if view["escalations"]:
        print_table(
            "Escalations",
            ["level", "kind", "sent", "to"],
            [[e["level"], e["kind"], e["sent_at"], ", ".join(e["to"])] for e in view["escalations"]],
        )


# -- submissions and the queue -------------------------------------------------------------------------


@app.command("submit")
@click.argument("pdf", type=click.Path(path_type=Path))
@click.option("--case", "case_ref", required=True, help="Case reference.")
@click.option("--type", "report_type", required=True, help="Report type, e.g. support-plan.")
@click.option("--supersedes", type=int, help="Id of the submission this one replaces.")
@json_option
@pass_cli
def submit(
    cli: Cli, pdf: Path, case_ref: str, report_type: str, supersedes: int | None, as_json: bool
) -> None:
    """Store a report (encrypted) and queue it for sending."""
    submission = cli.mailroom().submit(
        pdf, case_ref=case_ref, report_type=report_type, actor=actor(), supersedes=supersedes
    )
    if as_json:
        print_json({"id": submission.id, "state": submission.state, "message_id": submission.message_id})
    else:
        out.print(f"submission {submission.id} {submission.state}")


@app.group("queue", invoke_without_command=True)
@click.option("--state", help="Only submissions in this state.")
@json_option
@click.pass_context
def queue_group(ctx: click.Context, state: str | None, as_json: bool) -> None:
    """Submissions and where they are; subcommands act on one."""
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.find_object(Cli).mailroom().queue(state=state)  # type: ignore[union-attr]
    if as_json:
        print_json(rows)
        return
    print_table(
        "Queue",
        ["id", "case", "type", "v", "state", "attempts", "next attempt", "last SMTP reply"],
        [
            [
                r["id"],
                r["case_ref"],
                r["report_type"],
                r["version"],
                r["state"],
                r["attempts"],
                r["next_attempt_at"],
                r["last_smtp"],
            ]
            for r in rows
        ],
    )


def _queue_action(name: str, verb: str, help_text: str) -> None:
    @queue_group.command(name, help=help_text)
    @click.argument("submission_id", type=int)
    @json_option
    @pass_cli
    def command(cli: Cli, submission_id: int, as_json: bool) -> None:
        submission = getattr(cli.mailroom(), name)(submission_id, actor=actor())
        if as_json:
            print_json({"id": submission.id, "state": submission.state})
        else:
            out.print(f"submission {submission.id} {verb}: now {submission.state}")


_queue_action("hold", "held", "Stop a submission going out until it is released.")
_queue_action("release", "released", "Queue a held submission (restricted cases go out only this way).")
_queue_action("retry", "queued again", "Send a failed or deferred submission again now, same Message-ID.")
_queue_action("cancel", "cancelled", "Never send this submission; its clocks stop too.")


# -- the daemon ------------------------------------------------------------------------------------------


@app.command("run")
@click.option("--once", is_flag=True, help="One pass of every runner, then exit.")
@click.option("--at", "at", metavar="ISO8601", help="Pretend it is this time ([daemon] test_mode only).")
@json_option
@pass_cli
def run_daemon(cli: Cli, once: bool, at: str | None, as_json: bool) -> None:
    """Run the daemon: intake, outbox, inbox and deadline runners."""
    import asyncio

    from mailroom.daemon import build, run_forever, run_once
    from mailroom.logs import configure

    settings = cli.settings()
    configure(settings.daemon.log_level)
    now = cli.now(at)
    parts = build(settings, now=now, engine=cli.engine())
    if once:
        report = asyncio.run(run_once(parts))
        if as_json:
            print_json(report)
        else:
            out.print(" ".join(f"{k}={v}" for k, v in report.items()))
        return
    asyncio.run(run_forever(parts))


# -- inbound mail --------------------------------------------------------------------------------------------


@app.command("parse")
@click.argument("eml", type=click.Path(path_type=Path))
@json_option
@pass_cli
def parse(cli: Cli, eml: Path, as_json: bool) -> None:
    """Classify a saved message offline and print what was found; changes nothing."""
    from mailroom.inbound import classify_policy, read_message, reading_view

    settings = cli.settings()
    view = reading_view(read_message(_read_file(eml), settings, classify_policy(settings)), settings)
    if as_json:
        print_json(view)
        return
    for key, value in view.items():
        out.print(f"{key:>18}: {value}", markup=False)


@app.command("ingest")
@click.argument("emls", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
@pass_cli
def ingest(cli: Cli, emls: tuple[Path, ...], as_json: bool) -> None:
    """Process saved messages as if they had arrived (the same pipeline as IMAP)."""
    inbox = cli.inbox()
    files = []
    for eml in emls:
        raw = _read_file(eml)
        reading = inbox.read(raw)
        # A file that is not mail at all is a wrong argument, refused before anything is stored; from
        # IMAP the same bytes would be quarantined, since nobody is there to be told.
        if reading.parsed is None:
            raise InputError(f"{eml}: {reading.problem or 'not an e-mail message'}")
        files.append((eml, raw, reading))
    results = []
    for eml, raw, reading in files:
        result = inbox.ingest(raw, mailbox="ingest", reading=reading)
        results.append(
            {
                "file": str(eml),
                "id": result.inbound_id,
                "kind": result.kind,
                "state": result.state,
                "duplicate": result.duplicate,
                "detail": result.detail,
            }
        )
    if as_json:
        print_json(results)
        return
    print_table(
        "Ingested",
        ["file", "message", "kind", "state", "note"],
        [
            [r["file"], r["id"], r["kind"], r["state"], "duplicate" if r["duplicate"] else r["detail"]]
            for r in results
        ],
    )


@app.group("inbox", invoke_without_command=True)
@click.option("--state", help="unmatched, quarantined, ... (default: both of those).")
@json_option
@click.pass_context
def inbox_group(ctx: click.Context, state: str | None, as_json: bool) -> None:
    """Inbound mail waiting for a person; subcommands decide about one."""
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.find_object(Cli).inbox().listing(state=state)  # type: ignore[union-attr]
    if as_json:
        print_json(rows)
        return
    print_table(
        "Inbox",
        ["id", "state", "kind", "trusted", "sender", "received", "why"],
        [
            [r["id"], r["state"], r["kind"], r["trusted"], r["sender"], r["received_at"], r["detail"]]
            for r in rows
        ],
    )


@inbox_group.command("assign")
@click.argument("message_id", type=int)
@click.argument("case_ref")
@click.option(
    "--submission", "submission_id", type=int, help="Which submission (default: the only sent one)."
)
@json_option
@pass_cli
def inbox_assign(cli: Cli, message_id: int, case_ref: str, submission_id: int | None, as_json: bool) -> None:
    """Say which case a message is about; its effects apply as if it had matched (audited as you)."""
    row = cli.inbox().assign(message_id, case_ref, submission_id=submission_id, actor=actor())
    if as_json:
        print_json({"id": row.id, "state": row.state, "submission_id": row.submission_id})
    else:
        out.print(f"message {row.id} assigned to submission {row.submission_id}")


@inbox_group.command("dismiss")
@click.argument("message_id", type=int)
@json_option
@pass_cli
def inbox_dismiss(cli: Cli, message_id: int, as_json: bool) -> None:
    """Take a message out of the review queue without any effect."""
    row = cli.inbox().dismiss(message_id, actor=actor())
    if as_json:
        print_json({"id": row.id, "state": row.state})
    else:
        out.print(f"message {row.id} dismissed")


# -- clocks, escalations, audit -----------------------------------------------------------------------------


@app.command("clocks")
@click.option("--as-of", "as_of", metavar="DATE", help="Show what would fire on this date (YYYY-MM-DD).")
@json_option
@pass_cli
def clocks(cli: Cli, as_of: str | None, as_json: bool) -> None:
    """Running clocks, and what would fire on a date: check a policy before it bites."""
    day = _date(as_of) if as_of else cli.now(None)().astimezone(cli.clocks().calendar.tz).date()
    rows = cli.clocks().preview(cli.mailroom().engine, day)
    if as_json:
        print_json({"as_of": day.isoformat(), "clocks": rows})
        return
    print_table(
        f"Clocks as of {day.isoformat()}",
        ["clock", "case", "submission", "kind", "state", "due", "fires"],
        [
            [
                r["clock_id"],
                r["case_ref"],
                r["submission_id"],
                r["kind"],
                r["state"],
                r["due_at"],
                ", ".join(f"{f['level']} ({f['action']})" for f in r["fires"]),
            ]
            for r in rows
        ],
    )


@app.command("escalations")
@json_option
@pass_cli
def escalations(cli: Cli, as_json: bool) -> None:
    """Reminders and escalations fired, newest first."""
    rows = cli.mailroom().escalations()
    if as_json:
        print_json(rows)
        return
    print_table(
        "Escalations",
        ["case", "submission", "clock", "level", "to", "created", "notice"],
        [
            [
                r["case_ref"],
                r["submission_id"],
                r["clock"],
                r["level"],
                ", ".join(r["to"]),
                r["created_at"],
                r["notice_state"],
            ]
            for r in rows
        ],
    )


@app.group("audit")
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("verify")
@json_option
@pass_cli
def audit_verify(cli: Cli, as_json: bool) -> None:
    """Check the hash chain: finds an edited, deleted or reordered event. Exit 1 if broken."""
    count, problems = cli.mailroom().verify_audit()
    if as_json:
        print_json({"events": count, "intact": not problems, "problems": problems})
    else:
        for problem in problems:
            err.print(f"mailroom: audit: {problem}", markup=False)
        out.print(f"{count} events, " + ("chain intact" if not problems else f"{len(problems)} problem(s)"))
    if problems:
        raise click.exceptions.Exit(EX_FAILURE)


@app.command("preflight")
@click.argument("pdf", type=click.Path(path_type=Path))
@click.option("--case", "case_ref", help="Case reference (checks the report names this case).")
@click.option("--type", "report_type", default="other", show_default=True, help="Report type.")
@json_option
@pass_cli
def preflight_command(cli: Cli, pdf: Path, case_ref: str | None, report_type: str, as_json: bool) -> None:
    """Run the checks `submit` runs on a PDF; changes nothing. Exit 1 if a blocking check fails."""
    report = cli.mailroom().preflight(pdf, case_ref=case_ref, report_type=report_type)
    if as_json:
        print_json(report.to_dict())
    else:
        print_table(
            f"Preflight of {pdf.name}: {'passes' if report.passed else 'BLOCKED'}",
            ["check", "outcome", "page", "detail", "blocks"],
            [
                [f["check"], f["outcome"], f["page"], f["detail"], "yes" if f["blocks"] else ""]
                for f in report.to_dict()["findings"]
            ],
        )
    if not report.passed:
        raise click.exceptions.Exit(EX_FAILURE)


@app.command("erase")
@click.argument("case_ref")
@click.option(
    "--request-ref", required=True, help="Reference of the erasure request (kept in the tombstone)."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_cli
def erase(cli: Cli, case_ref: str, request_ref: str, yes: bool, as_json: bool) -> None:
    """Erase a case's documents and personal data (memo 08 §8.33-8.49); keep a tombstone and the audit."""
    from mailroom.records import erase_case

    mailroom = cli.mailroom()
    if not yes and not as_json and sys.stdin.isatty():
        click.confirm(
            f"Erase {case_ref.upper()} and every document and message of it? This cannot be undone",
            abort=True,
            err=True,
        )
    result = erase_case(mailroom.engine, case_ref, request_ref=request_ref, actor=actor(), now=mailroom.now)
    view = {
        "erased": True,
        "documents": result.documents,
        "messages": result.messages,
        "cancelled_submissions": result.cancelled,
        "tombstone": result.case_ref_hash,
    }
    if as_json:
        print_json(view)
    else:
        out.print(
            f"erased: {result.documents} document(s), {result.messages} message(s), "
            f"{result.cancelled} submission(s) cancelled; tombstone kept"
        )


@app.command("purge")
@json_option
@pass_cli
def purge_command(cli: Cli, as_json: bool) -> None:
    """Delete stored documents and raw mail older than [retention] documents_days (ch.8)."""
    from mailroom.records import purge

    mailroom = cli.mailroom()
    with Progress(console=err, transient=True, disable=as_json) as progress:
        progress.add_task("purging", total=None)
        result = purge(
            mailroom.engine,
            retention_days=cli.settings().retention.documents_days,
            actor=actor(),
            now=mailroom.now,
        )
    view = {"documents": result.documents, "messages": result.messages, "cutoff": result.cutoff.isoformat()}
    if as_json:
        print_json(view)
    else:
        out.print(
            f"purged {result.documents} document(s) and {result.messages} message(s) older than "
            f"{result.cutoff.date().isoformat()}"
        )


@app.group("report")
def report_group() -> None:
    """Reports for people."""


@report_group.command("mi")
@click.option("--from", "start", metavar="DATE", help="First day (YYYY-MM-DD).")
@click.option("--to", "end", metavar="DATE", help="Last day (YYYY-MM-DD).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv"]), default="table", show_default=True)
@json_option
@pass_cli
def report_mi(cli: Cli, start: str | None, end: str | None, fmt: str, as_json: bool) -> None:
    """Submissions, acknowledgement times, rejections by reason: evidence for the monthly review."""
    import csv

    from mailroom.mi import to_csv_rows

    summary = cli.mailroom().management_information(
        _date(start) if start else None, _date(end) if end else None
    )
    if as_json:
        print_json(summary)
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["measure", "detail", "value"])
        writer.writerows(to_csv_rows(summary))
    else:
        print_table("Management information", ["measure", "detail", "value"], to_csv_rows(summary))


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"not a date like 2026-12-24: {value!r}") from None


# -- entry point -----------------------------------------------------------------------------------------


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code (tests call this; `main` exits with it)."""
    try:
        result = app.main(
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
    return result if isinstance(result, int) else 0


def main() -> NoReturn:
    sys.exit(run())


def _register_operator_commands() -> None:
    from mailroom.cli_ops import register

    register(app)


_register_operator_commands()
