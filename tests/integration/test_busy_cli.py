"""Issue 12 part 5: the CLI beside a busy daemon, on SQLite and on PostgreSQL.

A real `mailroom run` sends REPORTS reports through the aiosmtpd relay (slowed at DATA, so the sending
lasts) and ingests MESSAGES messages delivered by LMTP into Dovecot meanwhile, while four CLI processes run
`submit`, `case add`, `queue` + `inbox` and `case show` in loops. No "database is locked", no traceback,
every report at the relay once (distinct Message-IDs, one per submission), every message ingested once.
How long each command takes (the issue's 2 s bar) is a figure, not a test: `bench/busy.py` prints it, at
the issue's 500 + 500 (the same code); this test runs 100 + 100 to keep the suite short on 2 cores.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from email import message_from_bytes

import pytest

from tests.conftest import Env
from tests.integration.conftest import own_folders
from tests.support.busy import BusyResult, run_busy
from tests.support.commands import socket_path
from tests.support.dovecot import Dovecot
from tests.support.postgres import Postgres
from tests.support.smtpd import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPORTS = 100
MESSAGES = 100
DWP = "accesstowork.mhss@dwp.gov.uk"


def busy_env(make_daemon_env: Callable[..., Env], dovecot: Dovecot, **store: str) -> tuple[Env, str]:
    folder, folders = own_folders(dovecot, "B")
    env = make_daemon_env(
        mailbox=dovecot,
        imap=folders,
        outbox={"poll_seconds": 0.5},
        daemon={"test_mode": True, "command_socket": str(socket_path())},
        **({"store": store} if store else {}),
    )
    return env, folder


RESULTS: dict[str, BusyResult] = {}  # one busy run per database, shared by its two tests


def busy_run(
    backend: str, make_daemon_env: Callable[..., Env], relay: SmtpServer, dovecot: Dovecot, url: str = ""
) -> BusyResult:
    if backend not in RESULTS:
        env, folder = busy_env(make_daemon_env, dovecot, **({"url": url} if url else {}))
        result = run_busy(
            env.config,
            env.root,
            dovecot,
            folder,
            reports=REPORTS,
            messages=MESSAGES,
            slow_relay=lambda: relay.slow("DATA", 0.05),
        )
        result.sent_message_ids = [
            str(message_from_bytes(m.content)["Message-ID"]) for m in relay.messages if DWP in m.rcpt_tos
        ]
        print("\n" + result.table(f"{backend}, {REPORTS} reports + {MESSAGES} messages"))
        RESULTS[backend] = result
    return RESULTS[backend]


def check_correct(result: BusyResult) -> None:
    assert result.daemon_code == 0, result.daemon_log[-3000:]
    for timing in result.timings:
        assert "database is locked" not in timing.err, timing
        assert "Traceback" not in timing.err, timing
        assert timing.code == 0, timing
    assert "database is locked" not in result.daemon_log and "Traceback" not in result.daemon_log
    assert "command server listening at" in result.daemon_log  # the commands were handed to it
    assert {"submit", "case add", "queue", "inbox", "case show"} <= set(result.by_command())
    sent = result.sent_message_ids
    # Every submission reached the relay, once: one distinct Message-ID per submission, no copy.
    assert set(sent) == result.submission_message_ids
    assert len(sent) == len(set(sent)) == result.submissions
    assert result.submissions == REPORTS + len(result.by_command()["submit"])
    assert result.inbound_rows == result.inbound_distinct == MESSAGES


def test_cli_beside_a_busy_daemon_on_sqlite(
    make_daemon_env: Callable[..., Env], relay: SmtpServer, dovecot: Dovecot
) -> None:
    check_correct(busy_run("SQLite", make_daemon_env, relay, dovecot))


def test_cli_beside_a_busy_daemon_on_postgres(
    make_daemon_env: Callable[..., Env], relay: SmtpServer, dovecot: Dovecot, postgres: Postgres
) -> None:
    url = postgres.create_database(f"b{uuid.uuid4().hex[:12]}")
    check_correct(busy_run("PostgreSQL", make_daemon_env, relay, dovecot, url))
