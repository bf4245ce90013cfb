"""Case commands: `case add|import|show`, `submit` and `preflight`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mailroom.cli.frame import (
    Cli,
    actor,
    err,
    json_option,
    out,
    pass_cli,
    print_json,
    print_table,
)
from mailroom.core.errors import EX_FAILURE


@click.group("case")
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
    from mailroom.service.cases import NewCase

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
    from rich.progress import Progress

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


# A case's newest reports on screen; one with hundreds would fill pages of the terminal (--json has all).
SUBMISSIONS_SHOWN = 50
TIMELINES_SHOWN = 10


@case_group.command("show")
@click.argument("case_ref")
@click.option(
    "--timelines",
    type=click.IntRange(min=0),
    default=TIMELINES_SHOWN,
    show_default=True,
    help="Timelines of the newest N submissions on screen.",
)
@click.option("--all", "show_all", is_flag=True, help="Every submission, timeline and clock on screen.")
@json_option
@pass_cli
def case_show(cli: Cli, case_ref: str, timelines: int, show_all: bool, as_json: bool) -> None:
    """A case with its submissions and their timelines, clocks and escalations: the newest on screen,
    everything with --all or --json."""
    from mailroom.service.views import case_view

    view = case_view(cli.reader(), case_ref, timelines=None if as_json or show_all else timelines)
    if as_json:
        print_json(view)
        return
    flags = " (restricted)" if view["restricted"] else ""
    out.print(f"[bold]{view['case_ref']}[/bold]{flags}")
    submissions = view["submissions"] if show_all else view["submissions"][-SUBMISSIONS_SHOWN:]
    listed = {s["id"] for s in submissions}
    clocks = [c for c in view["clocks"] if c["submission_id"] in listed]
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
            for s in submissions
        ],
    )
    for s in submissions:
        if s.get("timeline"):
            print_table(
                f"Timeline of submission {s['id']}",
                ["at", "event", "from", "to", "by"],
                [[e["at"], e["action"], e["from"], e["to"], e["actor"]] for e in s["timeline"]],
            )
    if clocks:
        print_table(
            "Clocks",
            ["kind", "state", "started", "due", "submission", "calendar"],
            [
                [c["kind"], c["state"], c["started_at"], c["due_at"], c["submission_id"], c["calendar"]]
                for c in clocks
            ],
        )
    if view["escalations"]:
        print_table(
            "Escalations",
            ["level", "kind", "sent", "to"],
            [[e["level"], e["kind"], e["sent_at"], ", ".join(e["to"])] for e in view["escalations"]],
        )
    _say_what_is_not_shown(view, submissions, listed)


def _say_what_is_not_shown(view: dict[str, Any], submissions: list[Any], listed: set[int]) -> None:
    older = len(view["submissions"]) - len(submissions)
    untold = 0 if view["restricted"] else sum("timeline" not in s for s in submissions)
    hidden = [c for c in view["clocks"] if c["submission_id"] not in listed]
    from mailroom.core.deadlines import OPEN_STATES

    still_open = sum(c["state"] in OPEN_STATES for c in hidden)
    parts = [
        f"{older} older submission(s)" if older else "",
        f"{untold} timeline(s)" if untold else "",
        f"{len(hidden)} clock(s) of older submissions" if hidden else "",
    ]
    if still_open:
        parts.append(f"`mailroom clocks` lists every open clock ({still_open} on this case)")
    if any(parts):
        what = ", ".join(p for p in parts if p)
        out.print(f"[dim]not shown: {what}; --timelines N, --all or --json show them[/dim]")


@click.command("submit")
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


@click.command("preflight")
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


COMMANDS: tuple[click.Command, ...] = (case_group, submit, preflight_command)
