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
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mailroom.config import Settings, config_path, load_settings
from mailroom.errors import EX_FAILURE, EX_USAGE, MailroomError
from mailroom.service import Mailroom, NewCase

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Cli:
    """What every command needs, built lazily so `--help` works without a config file."""

    config: str | None = None
    _settings: Settings | None = field(default=None, repr=False)
    _mailroom: Mailroom | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(config_path(self.config))
        return self._settings

    def mailroom(self) -> Mailroom:
        if self._mailroom is None:
            from mailroom.wiring import make_mailroom

            self._mailroom = make_mailroom(self.settings())
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


# -- db ------------------------------------------------------------------------------------------------


@app.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@json_option
@pass_cli
def db_upgrade(cli: Cli, as_json: bool) -> None:
    """Create or migrate the schema to the latest revision (safe to run again)."""
    from mailroom.db import make_engine, upgrade
    from mailroom.documents import ensure_private_dir

    settings = cli.settings()
    before, after = upgrade(make_engine(settings.store.url))
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
