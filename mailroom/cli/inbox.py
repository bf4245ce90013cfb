"""Inbound mail: `parse`, `ingest` and `inbox [--state S]`, `inbox assign|dismiss`."""

from __future__ import annotations

from pathlib import Path

import click

from mailroom.cli.frame import (
    DEFAULT_LIMIT,
    Cli,
    actor,
    json_option,
    out,
    page_options,
    pages,
    pass_cli,
    print_footer,
    print_json,
    print_table,
    read_file,
    stream_json,
)
from mailroom.core.errors import InputError
from mailroom.core.states import APPLICABLE_KINDS


@click.command("parse")
@click.argument("eml", type=click.Path(path_type=Path))
@json_option
@pass_cli
def parse(cli: Cli, eml: Path, as_json: bool) -> None:
    """Classify a saved message offline and print what was found; changes nothing."""
    from mailroom.service.reading import classify_policy, read_message, reading_view

    settings = cli.settings()
    view = reading_view(read_message(read_file(eml), settings, classify_policy(settings)), settings)
    if as_json:
        print_json(view)
        return
    for key, value in view.items():
        out.print(f"{key:>18}: {value}", markup=False)


@click.command("ingest")
@click.argument("emls", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
@pass_cli
def ingest(cli: Cli, emls: tuple[Path, ...], as_json: bool) -> None:
    """Process saved messages as if they had arrived (the same pipeline as IMAP)."""
    inbox = cli.inbox()
    files = []
    for eml in emls:
        raw = read_file(eml)
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


@click.group("inbox", invoke_without_command=True)
@click.option(
    "--state",
    help="needs_review, unmatched, quarantined, ignored, ... (default: the three that wait for a person).",
)
@page_options
@json_option
@click.pass_context
def inbox_group(
    ctx: click.Context, state: str | None, limit: int | None, after: int | None, as_json: bool
) -> None:
    """Inbound mail waiting for a person, a page at a time; subcommands decide about one."""
    if ctx.invoked_subcommand is not None:
        return
    cli = ctx.find_object(Cli)
    assert cli is not None
    from mailroom.service.views import inbox_page

    reader = cli.reader()
    if as_json:
        stream_json(pages(lambda key, n: inbox_page(reader, state=state, after=key, limit=n), after, limit))
        return
    page = inbox_page(reader, state=state, after=after, limit=limit or DEFAULT_LIMIT)
    rows = page.rows
    print_table(
        "Inbox",
        ["id", "state", "kind", "case", "trusted", "sender", "received", "why"],
        [
            [
                r["id"],
                r["state"],
                r["kind"],
                r["case_ref"] or "-",
                r["trusted"],
                r["sender"],
                r["received_at"],
                r["review"] or r["detail"],
            ]
            for r in rows
        ],
    )
    print_footer(page, limit)


@inbox_group.command("assign")
@click.argument("message_id", type=int)
@click.argument("case_ref")
@click.option(
    "--submission",
    "submission_id",
    type=int,
    help="Which submission (default: the one threading found, else the only sent one).",
)
@click.option(
    "--as",
    "as_kind",
    type=click.Choice(APPLICABLE_KINDS),
    help="Apply it as this kind of notice (a rejection starts the correction clock from its arrival).",
)
@json_option
@pass_cli
def inbox_assign(
    cli: Cli, message_id: int, case_ref: str, submission_id: int | None, as_kind: str | None, as_json: bool
) -> None:
    """Say which case a message is about; its effects apply as if it had matched (audited as you)."""
    row = cli.inbox().desk.assign(
        message_id, case_ref, submission_id=submission_id, actor=actor(), as_kind=as_kind
    )
    if as_json:
        print_json(
            {
                "id": row.id,
                "state": row.state,
                "submission_id": row.submission_id,
                "applied_as": row.applied_as,
            }
        )
    else:
        applied = f", applied as {row.applied_as}" if row.applied_as else ""
        out.print(f"message {row.id} assigned to submission {row.submission_id}{applied}")


@inbox_group.command("dismiss")
@click.argument("message_id", type=int)
@json_option
@pass_cli
def inbox_dismiss(cli: Cli, message_id: int, as_json: bool) -> None:
    """Take a message out of the review queue without any effect."""
    row = cli.inbox().desk.dismiss(message_id, actor=actor())
    if as_json:
        print_json({"id": row.id, "state": row.state})
    else:
        out.print(f"message {row.id} dismissed")


COMMANDS: tuple[click.Command, ...] = (
    parse,
    ingest,
    inbox_group,
)
