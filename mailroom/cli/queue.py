"""The outbox queue: `queue [--state S]` and `queue hold|release|retry|cancel ID`."""

from __future__ import annotations

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
    stream_json,
)


@click.group("queue", invoke_without_command=True)
@click.option("--state", help="Only submissions in this state.")
@page_options
@json_option
@click.pass_context
def queue_group(
    ctx: click.Context, state: str | None, limit: int | None, after: int | None, as_json: bool
) -> None:
    """Submissions and where they are, oldest first, a page at a time; subcommands act on one."""
    if ctx.invoked_subcommand is not None:
        return
    from mailroom.service.views import queue_page

    reader = ctx.find_object(Cli).reader()  # type: ignore[union-attr]
    if as_json:
        stream_json(pages(lambda key, n: queue_page(reader, state=state, after=key, limit=n), after, limit))
        return
    page = queue_page(reader, state=state, after=after, limit=limit or DEFAULT_LIMIT)
    rows = page.rows
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
    print_footer(page, limit)


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


COMMANDS: tuple[click.Command, ...] = (queue_group,)
