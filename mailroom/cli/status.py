"""`mailroom status [--json]`: is it alive, what is waiting, what needs a person; and `mailroom completion`.

Exit 0 when healthy and 1 when something needs a person, so a Nagios or Icinga check can run it as it is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from mailroom.cli.frame import Cli, json_option, out, pass_cli, print_json, system_now
from mailroom.core.errors import EX_FAILURE
from mailroom.core.health import age
from mailroom.edges.configfile import config_path

if TYPE_CHECKING:  # loaded when the command runs: `mailroom --help` imports no SQLAlchemy
    from mailroom.service.status import StatusReport

# In the order a report travels, so the line reads like the pipeline.
QUEUE_ORDER = (
    "received",
    "preflight_failed",
    "held",
    "queued",
    "sending",
    "deferred",
    "sent",
    "acknowledged",
    "rejected",
    "accepted",
    "superseded",
    "failed",
    "cancelled",
)


@click.command("status")
@json_option
@pass_cli
def status(cli: Cli, as_json: bool) -> int:
    """One screen: the daemon, SMTP and IMAP contact, outages, queue, review, clocks, escalations.

    Exit 0 when healthy, 1 when something needs a person (the daemon not running, an outage longer than
    [status] outage_minutes, mail waiting for review, a breached clock).
    """
    from mailroom.service.status import read_status

    settings = cli.settings()
    engine = cli.checked_engine()
    report = read_status(
        engine,
        settings,
        cli.calendar(),
        now=cli.now(None)(),
        wall=system_now(),
        config=str(config_path(cli.config)),
    )
    commands = command_server(settings.daemon.command_socket)
    if as_json:
        print_json(report.as_json() | {"command_server": commands})
    else:
        for line in render(report, cli.calendar().tz, commands):
            out.print(line, markup=False, highlight=False)
    return 0 if report.healthy else EX_FAILURE


def command_server(path: Path | None) -> dict[str, Any]:
    """Whether the daemon's command server answers at `[daemon] command_socket` (an accelerator: it
    never makes status exit 1; without it, commands run in their own processes)."""
    from mailroom.cli.wire import connect

    if path is None:
        return {"socket": None, "listening": False}
    answer = connect(path)
    if answer is not None:
        answer.close()
    return {"socket": str(path), "listening": answer is not None}


def render(report: StatusReport, tz: ZoneInfo, commands: dict[str, Any] | None = None) -> list[str]:
    def when(value: datetime | None) -> str:
        if value is None:
            return "never"
        stamp = f"{value.astimezone(tz):%Y-%m-%d %H:%M}"
        if value > report.now + timedelta(minutes=1):
            return f"{stamp} (later than now: written under `run --at` time travel)"
        return f"{stamp} ({age(report.now, value)} ago)"

    running = [d for d in report.daemons if d.running]
    shown = running or report.daemons[:1]
    lines = [f"mailroom status: {'healthy' if report.healthy else 'needs a person'}"]
    if not shown:
        lines.append("  daemon:      never run against this database")
    for d in shown:
        state = "running" if d.running else f"not running ({d.note})"
        lines.append(
            f"  daemon:      {state} on {d.host}, pid {d.pid}, started {when(d.started_at)}, "
            f"heartbeat {when(d.heartbeat_at)}"
        )
    lines += [
        f"  smtp:        last send {when(report.last_send_at)}; relay contact {when(report.smtp_contact_at)}",
        f"  imap:        last contact {when(report.imap_contact_at)}",
        "  outages:     "
        + (
            "; ".join(
                f"{o['what']} since {when(datetime.fromisoformat(o['since']))}: {o['error']}"
                for o in report.outages
            )
            or "none"
        ),
        "  queue:       " + _counts(report.queue, QUEUE_ORDER),
        "  notices:     " + _counts(report.notices, ("queued", "sending", "deferred", "sent", "failed")),
        f"  review:      {report.review_waiting} message(s) waiting",
        f"  clocks:      {report.due_today} due today, {report.due_soon} due in the next "
        f"{report.days_ahead} working days, {report.breached} breached",
        f"  escalations: {report.escalations_7d} in the last 7 days; reminders: {report.reminders_7d}",
        f"  config:      {report.config} (schema {report.schema or 'none'}, "
        f"mailroom {package_version('mhss-mailroom')})",
    ]
    if commands and commands["socket"]:
        state = (
            "answering" if commands["listening"] else "not answering (commands run in their own processes)"
        )
        lines.insert(-1, f"  commands:    command server at {commands['socket']} {state}")
    if report.problems:
        lines += ["", "Needs a person:", *(f"  - {p}" for p in report.problems)]
    return lines


def _counts(counts: dict[str, int], order: tuple[str, ...]) -> str:
    known = [f"{state} {counts[state]}" for state in order if counts.get(state)]
    other = [f"{state} {n}" for state, n in sorted(counts.items()) if state not in order and n]
    return ", ".join(known + other) or "empty"


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: `eval "$(mailroom completion bash)"` in ~/.bashrc."""
    from click.shell_completion import get_completion_class

    from mailroom.cli.frame import app

    completer = get_completion_class(shell)
    assert completer is not None  # the Choice above lists only shells click knows
    out.file.write(completer(app, {}, "mailroom", "_MAILROOM_COMPLETE").source())


COMMANDS: tuple[click.Command, ...] = (status, completion)
