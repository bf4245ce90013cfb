"""Clocks and escalations: `clocks [--as-of DATE]` and `escalations`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mailroom.cli.frame import (
    DEFAULT_LIMIT,
    Cli,
    json_option,
    page_options,
    pages,
    parse_date,
    pass_cli,
    print_footer,
    print_table,
    stream_json,
)

if TYPE_CHECKING:
    from mailroom.store.listings import Page


@click.command("clocks")
@click.option("--as-of", "as_of", metavar="DATE", help="Show what would fire on this date (YYYY-MM-DD).")
@page_options
@json_option
@pass_cli
def clocks(cli: Cli, as_of: str | None, limit: int | None, after: int | None, as_json: bool) -> None:
    """Open clocks, soonest due first, and what would fire on a date: check a policy before it bites."""
    from mailroom.service.views import clock_policy, clock_preview

    calendar, policy = cli.calendar(), clock_policy(cli.settings())
    reader = cli.reader()
    day = parse_date(as_of) if as_of else cli.now(None)().astimezone(calendar.tz).date()

    def preview(key: int | None, n: int) -> Page[Any]:
        return clock_preview(reader, policy, calendar, day, after=key, limit=n)

    if as_json:
        every = pages(preview, after, limit)
        stream_json(every, head=f'{{"as_of": "{day.isoformat()}", "clocks": [', tail="]}")
        return
    page = preview(after, limit or DEFAULT_LIMIT)
    rows = page.rows
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
    print_footer(page, limit)


@click.command("escalations")
@page_options
@json_option
@pass_cli
def escalations(cli: Cli, limit: int | None, after: int | None, as_json: bool) -> None:
    """Reminders and escalations fired, newest first, a page at a time (`--after` the last id shown)."""
    from mailroom.service.views import escalations_page

    reader = cli.reader()
    if as_json:
        stream_json(pages(lambda key, n: escalations_page(reader, after=key, limit=n), after, limit))
        return
    page = escalations_page(reader, after=after, limit=limit or DEFAULT_LIMIT)
    rows = page.rows
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
    print_footer(page, limit)


COMMANDS: tuple[click.Command, ...] = (
    clocks,
    escalations,
)
