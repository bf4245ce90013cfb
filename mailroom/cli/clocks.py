"""Clocks and escalations: `clocks [--as-of DATE]` and `escalations`."""

from __future__ import annotations

import click

from mailroom.cli.frame import (
    Cli,
    json_option,
    parse_date,
    pass_cli,
    print_json,
    print_table,
)


@click.command("clocks")
@click.option("--as-of", "as_of", metavar="DATE", help="Show what would fire on this date (YYYY-MM-DD).")
@json_option
@pass_cli
def clocks(cli: Cli, as_of: str | None, as_json: bool) -> None:
    """Running clocks, and what would fire on a date: check a policy before it bites."""
    day = parse_date(as_of) if as_of else cli.now(None)().astimezone(cli.clocks().calendar.tz).date()
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


@click.command("escalations")
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


COMMANDS: tuple[click.Command, ...] = (
    clocks,
    escalations,
)
