"""Records: `audit verify [--since]`, `audit checkpoint`, `erase`, `purge` and `report mi`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from mailroom.cli.frame import (
    Cli,
    actor,
    err,
    json_option,
    out,
    parse_date,
    pass_cli,
    print_json,
    print_table,
)
from mailroom.core.errors import EX_FAILURE

if TYPE_CHECKING:
    from mailroom.service.audit_checkpoints import AuditCheckpoints


@click.group("audit")
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("verify")
@click.option(
    "--since",
    "since",
    is_flag=True,
    help="Start at the newest signed checkpoint (`audit checkpoint`): check it, then only what came after.",
)
@json_option
@pass_cli
def audit_verify(cli: Cli, since: bool, as_json: bool) -> None:
    """Check the hash chain: finds an edited, deleted or reordered event. Exit 1 if broken."""
    extra: dict[str, object] = {}
    if since:
        checked = _checkpoints(cli).verify_since()
        count, problems = checked.events, checked.problems
        extra = {"since_event": checked.checkpoint_seq, "checkpoint_at": checked.checkpoint_at.isoformat()}
    else:
        count, problems = _verify_whole_chain(cli)
    if as_json:
        print_json({"events": count, "intact": not problems, "problems": problems, **extra})
    else:
        for problem in problems:
            err.print(f"mailroom: audit: {problem}", markup=False)
        after = f" after the checkpoint at event {extra['since_event']}" if extra else ""
        verdict = "chain intact" if not problems else f"{len(problems)} problem(s)"
        out.print(f"{count} events{after}, {verdict}")
    if problems:
        raise click.exceptions.Exit(EX_FAILURE)


@audit_group.command("checkpoint")
@json_option
@pass_cli
def audit_checkpoint(cli: Cli, as_json: bool) -> None:
    """Verify the whole chain and sign where it ends, so `audit verify --since` can start there."""
    checkpoint = _checkpoints(cli).write()
    if as_json:
        print_json({"seq": checkpoint.seq, "hash": checkpoint.hash, "at": checkpoint.at.isoformat()})
    else:
        out.print(
            f"chain intact up to event {checkpoint.seq}; checkpoint signed at {checkpoint.at.isoformat()}"
        )


def _verify_whole_chain(cli: Cli) -> tuple[int, list[str]]:
    """The whole chain over the read-only connection: no SQLAlchemy, models, wiring or gpg to load
    (~0.4 s of a run). Only an event the fast check cannot reproduce is asked of the ORM."""
    from mailroom.store.audit_scan import verify_chain

    reader = cli.reader()

    def confirm(seq: int) -> bool:
        from mailroom.store.audit import matches_reference

        return matches_reference(cli.checked_engine(), seq)

    return verify_chain(reader.connection, reader.dialect, reader.database, confirm)


def _checkpoints(cli: Cli) -> AuditCheckpoints:
    from mailroom.service.audit_checkpoints import AuditCheckpoints

    return AuditCheckpoints(cli.settings(), cli.checked_engine(), cli.now(None))


@click.command("erase")
@click.argument("case_ref")
@click.option(
    "--request-ref", required=True, help="Reference of the erasure request (kept in the tombstone)."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_cli
def erase(cli: Cli, case_ref: str, request_ref: str, yes: bool, as_json: bool) -> None:
    """Erase a case's documents and personal data (memo 08 §8.33-8.49); keep a tombstone and the audit."""
    from mailroom.service.records import erase_case

    # An engine is all it takes: erasing deletes files and rows and decrypts nothing, so it loads no gpg
    # and works while the keyring is broken.
    engine = cli.checked_engine()
    if not yes and not as_json and sys.stdin.isatty():
        click.confirm(
            f"Erase {case_ref.upper()} and every document and message of it? This cannot be undone",
            abort=True,
            err=True,
        )
    result = erase_case(engine, case_ref, request_ref=request_ref, actor=actor(), now=cli.now(None))
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


@click.command("purge")
@json_option
@pass_cli
def purge_command(cli: Cli, as_json: bool) -> None:
    """Delete stored documents and raw mail older than [retention] documents_days (ch.8)."""
    from rich.progress import Progress

    from mailroom.service.records import purge

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


@click.group("report")
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

    from mailroom.core.mi import to_csv_rows
    from mailroom.service.reporting import management_information

    summary = management_information(
        cli.checked_engine(),
        cli.settings().rejection_reasons,
        parse_date(start) if start else None,
        parse_date(end) if end else None,
    )
    if as_json:
        print_json(summary)
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["measure", "detail", "value"])
        writer.writerows(to_csv_rows(summary))
    else:
        print_table("Management information", ["measure", "detail", "value"], to_csv_rows(summary))


COMMANDS: tuple[click.Command, ...] = (
    audit_group,
    erase,
    purge_command,
    report_group,
)
