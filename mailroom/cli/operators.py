"""Operator commands: `db upgrade`, `run` (the daemon), `doctor`, `harness` and `demo`.

    mailroom db upgrade                              create or migrate the schema
    mailroom run [--once] [--at ISO8601]             the daemon

    mailroom doctor [--skip GROUP] [--json]          is this installation fit to send reports?
    mailroom harness [--dir DIR] [--scenario FILE] [--no-daemon] [--json]
    mailroom harness deliver FILE.eml... [--dir DIR]  a message into the harness mailbox, by LMTP
    mailroom harness reject N --reason CODE [--dir DIR]   DWP returns report N for rework
    mailroom demo                                     the guided tour (what `bash .ci/demo` runs)

The harness subcommands find the harness from --dir, else from the folder of the config file in use (the
harness writes its mailroom.toml at the top of its folder).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from mailroom.cli.doctor import CHECKS, Diagnosis, Status, diagnose
from mailroom.cli.frame import Cli, invoke, json_option, out, pass_cli, print_json
from mailroom.core.errors import InputError, MailroomError, NotFound
from mailroom.edges.configfile import config_path, load_settings

HARNESS_MODULES = ("aiosmtpd", "trustme", "reportlab")
STATUS_STYLE = {
    Status.PASS: "[green]pass[/green]",
    Status.WARN: "[yellow]warn[/yellow]",
    Status.FAIL: "[bold red]FAIL[/bold red]",
    Status.SKIP: "[dim]skip[/dim]",
}


# -- doctor ----------------------------------------------------------------------------------------------


@click.command("doctor")
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(sorted(CHECKS)),
    help="Leave out a group of checks (repeatable), e.g. smtp and imap away from the network.",
)
@json_option
@pass_cli
def doctor(cli: Cli, skip: tuple[str, ...], as_json: bool) -> None:
    """Check config, permissions, database, gpg keys and TLS logins; exit 1 if anything fails."""
    diagnosis = diagnose(config_path(cli.config), skip=skip)
    if as_json:
        print_json(diagnosis.to_dict())
    else:
        _print_diagnosis(diagnosis)
    if diagnosis.exit_code:
        raise click.exceptions.Exit(diagnosis.exit_code)


def _print_diagnosis(diagnosis: Diagnosis) -> None:
    table = Table(title=f"mailroom doctor: {diagnosis.config}", title_justify="left")
    for column in ("", "check", "detail", "fix"):
        table.add_column(column)
    for check in diagnosis.checks:
        table.add_row(STATUS_STYLE[check.status], escape(check.name), escape(check.detail), escape(check.fix))
    out.print(table)
    failures = sum(c.status is Status.FAIL for c in diagnosis.checks)
    warnings = sum(c.status is Status.WARN for c in diagnosis.checks)
    verdict = "all checks passed" if not failures else f"{failures} check(s) FAILED"
    out.print(verdict + (f", {warnings} warning(s)" if warnings else ""), markup=False)


# -- harness ---------------------------------------------------------------------------------------------


@click.group("harness", invoke_without_command=True)
@click.option(
    "--dir",
    "root",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for everything, new or empty, kept on exit (default: a new one in /tmp, removed on exit).",
)
@click.option(
    "--scenario",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="What the DWP simulator does with each report (default: DIR/scenario.toml, written for you).",
)
@click.option("--no-daemon", is_flag=True, help="Start the servers only; run the daemon yourself.")
@json_option
@click.pass_context
def harness_group(
    ctx: click.Context, root: Path | None, scenario: Path | None, no_daemon: bool, as_json: bool
) -> None:
    """Stand-ins for DWP, the relay and the mailbox on 127.0.0.1, with a ready config; Ctrl-C stops it."""
    if ctx.invoked_subcommand is not None:
        return
    _require_harness_extra()
    from mailroom.harness.dovecot import ServerUnavailable
    from mailroom.harness.session import HarnessOptions, run_harness

    options = HarnessOptions(
        root=root.absolute() if root else None,
        scenario=scenario.absolute() if scenario else None,
        daemon=not no_daemon,
        as_json=as_json,
    )
    try:
        code = run_harness(options, out)
    except ServerUnavailable as exc:
        raise MailroomError(f"the harness cannot start: {exc}") from None
    if code:
        raise click.exceptions.Exit(code)


_dir_option = click.option(
    "--dir",
    "root",
    type=click.Path(path_type=Path, file_okay=False),
    help="The harness folder (default: the folder of the config file in use).",
)


@harness_group.command("deliver")
@click.argument("emls", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@_dir_option
@json_option
@pass_cli
def harness_deliver(cli: Cli, emls: tuple[Path, ...], root: Path | None, as_json: bool) -> None:
    """Put saved messages into the harness mailbox by LMTP, as if they had just arrived."""
    _require_harness_extra()
    from mailroom.harness.world import HarnessInfo, deliver_to_mailbox

    info = HarnessInfo.read(root or config_path(cli.config).parent)
    for eml in emls:
        deliver_to_mailbox(info, _read(eml))
    if as_json:
        print_json({"delivered": [str(e) for e in emls], "mailbox": info.mailbox})
    else:
        out.print(f"{len(emls)} message(s) delivered to {info.mailbox}; `mailroom run --once` reads them")


@harness_group.command("reject")
@click.argument("report", type=int)
@click.option("--reason", "reasons", multiple=True, required=True, help="Annex F reason code (repeatable).")
@_dir_option
@json_option
@pass_cli
def harness_reject(cli: Cli, report: int, reasons: tuple[str, ...], root: Path | None, as_json: bool) -> None:
    """Have DWP return report N (as the simulator numbered it) for rework, now."""
    _require_harness_extra()
    from mailroom.harness.configfile import AUTHSERV_ID
    from mailroom.harness.simulator import rejection_for
    from mailroom.harness.world import HarnessInfo, deliver_to_mailbox

    info = HarnessInfo.read(root or config_path(cli.config).parent)
    settings = load_settings(info.config)
    unknown = [r for r in reasons if r not in settings.rejection_reasons]
    if unknown:
        known = ", ".join(settings.rejection_reasons)
        raise InputError(f"unknown reason(s) {', '.join(unknown)} (known: {known})")
    report_file = info.dwp_mail / f"{report:03d}-report.eml"
    if not report_file.is_file():
        raise NotFound(f"the DWP simulator has no report {report} (see {info.dwp_mail})")
    raw = rejection_for(report_file, reasons, settings=settings, authserv_id=AUTHSERV_ID, now=cli.now(None)())
    deliver_to_mailbox(info, raw)
    if as_json:
        print_json({"report": report, "reasons": list(reasons), "mailbox": info.mailbox})
    else:
        out.print(f"rejection of report {report} ({', '.join(reasons)}) delivered to {info.mailbox}")


def _require_harness_extra() -> None:
    """The harness's servers come from an optional extra; say so in one line instead of a traceback."""
    missing = [name for name in HARNESS_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MailroomError(f"the harness needs {', '.join(missing)}: pip install 'mhss-mailroom[harness]'")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


# -- demo ------------------------------------------------------------------------------------------------


@click.command("demo")
def demo() -> None:
    """Walk sample reports through a throwaway harness: sent, acknowledged, rejected, reminded, escalated."""
    from mailroom.cli.demo import main

    root = click.get_current_context().find_root().command
    assert isinstance(root, click.Group)
    raise click.exceptions.Exit(main(lambda argv: invoke(root, argv)))


# -- schema and daemon ------------------------------------------------------------------------------------


@click.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@json_option
@pass_cli
def db_upgrade(cli: Cli, as_json: bool) -> None:
    """Create or migrate the schema to the latest revision (safe to run again)."""
    from mailroom.store.documents import ensure_private_dir
    from mailroom.store.engine import upgrade

    settings = cli.settings()
    before, after = upgrade(cli.engine())
    ensure_private_dir(settings.store.documents_dir)
    if as_json:
        print_json({"from": before, "to": after, "changed": before != after})
    else:
        out.print(f"database at revision {after}" + ("" if before != after else " (already up to date)"))


@click.command("run")
@click.option("--once", is_flag=True, help="One pass of every runner, then exit.")
@click.option("--at", "at", metavar="ISO8601", help="Pretend it is this time ([daemon] test_mode only).")
@json_option
@pass_cli
def run_daemon(cli: Cli, once: bool, at: str | None, as_json: bool) -> None:
    """Run the daemon: intake, outbox, inbox and deadline runners."""
    import asyncio

    from mailroom.daemon.app import build, run_forever, run_once, wait_for_database
    from mailroom.edges.logs import configure

    settings = cli.settings()
    configure(settings.daemon.log_level)
    now = cli.now(at)
    engine = cli.engine()
    if not once:
        wait_for_database(settings, engine)
    parts = build(settings, now=now, engine=engine)
    if once:
        report = asyncio.run(run_once(parts))
        if as_json:
            print_json(report)
        else:
            out.print(" ".join(f"{k}={v}" for k, v in report.items()))
        return
    asyncio.run(run_forever(parts))


COMMANDS: tuple[click.Command, ...] = (db_group, run_daemon, doctor, harness_group, demo)
