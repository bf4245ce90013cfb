"""Crash recovery: how long the queue takes to drain after the last of several `kill -9`s.

    .venv/bin/python bench/crash.py [--reports 30] [--kills 6] [--relay-seconds 0.15] [--seed 20261204]

Issue 12's scenario, for SQLite and for PostgreSQL: N reports queued, a relay that takes 0.15 s a message
(tests/support/smtpd.py, STARTTLS + AUTH), `mailroom run` started as a child process and killed with
SIGKILL at a random moment of its sending, K times (as systemd would restart it after an OOM kill), then
started once more. The default lease (300 s) stays: claims of a killed daemon must come back because their
owner is gone, not because the lease ran out. Figures: seconds from the last start until every report is
recorded as sent (goal <= 30 s), the claims the dead daemons left in `sending`, copies the relay got twice
(always under the same Message-ID), and reports lost (must be 0).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sqlite3
import sys
import time
from collections import Counter
from email import message_from_bytes
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchConfig,
    Figure,
    RelayAddress,
    case_refs,
    prepare,
    print_table,
    start_daemon,
    stop_daemon,
    workdir,
)
from mailroom.cli.main import run
from tests.support import pdfs
from tests.support.postgres import Postgres
from tests.support.smtpd import SmtpServer

DWP = "accesstowork.mhss@dwp.gov.uk"
GOAL_DRAIN = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=30)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--relay-seconds", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders")
    args = parser.parse_args()
    with SmtpServer() as relay, Postgres() as postgres:
        address = RelayAddress(relay.host, relay.port, relay.ca_pem, relay.username, relay.password)
        for backend in ("sqlite", "postgresql"):
            relay.reset()
            relay.slow("DATA", args.relay_seconds)
            with workdir(args.keep) as root:
                config = BenchConfig.base(root).with_relay(address).set("outbox", poll_seconds=0.2)
                config.set("daemon", log_level="INFO")  # its "mailroom running" line says when it is up
                if backend == "postgresql":
                    config.set("store", url=postgres.create_database(f"crash{int(time.time())}"))
                figures = scenario(config.write(), root, relay, args, backend, postgres)
            print_table(
                f"Crash recovery, {backend}: {args.reports} reports, {args.kills} x SIGKILL, relay "
                f"{args.relay_seconds:g} s/message, lease 300 s",
                figures,
            )


def scenario(
    config: Path, root: Path, relay: SmtpServer, args: argparse.Namespace, backend: str, postgres: Postgres
) -> list[Figure]:
    [ref] = case_refs(1)
    settings = prepare(config, [ref])
    pdf = root / "report.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    submit = ["--config", str(config), "submit", str(pdf), "--case", ref, "--type", "support-plan"]
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(args.reports):
            assert run(submit) == 0
    rows = Rows(settings.store.url, root / "mailroom.db", postgres)
    log = root / "daemon.log"
    rng = random.Random(args.seed)
    left = 0
    for _ in range(args.kills):
        before = log.read_text().count("mailroom running") if log.exists() else 0
        daemon = start_daemon(config, log)
        up = time.monotonic() + 30
        while time.monotonic() < up and log.read_text().count("mailroom running") <= before:
            time.sleep(0.05)
        # A random moment of its sending, early enough that work is left for the next start.
        time.sleep(rng.uniform(0.1, 0.6))
        daemon.kill()
        daemon.wait(timeout=10)
        left = rows.states()["sending"]
    started = time.monotonic()
    daemon = start_daemon(config, log)
    while time.monotonic() - started < 300 and rows.states()["sent"] < args.reports:
        time.sleep(0.05)
    drained = time.monotonic() - started
    stop_daemon(daemon)
    received = [str(message_from_bytes(m.content)["Message-ID"]) for m in relay.messages if DWP in m.rcpt_tos]
    lost = len(rows.message_ids() - set(received))
    return [
        Figure(
            "time to drain after the last start", drained, "s", f"<= {GOAL_DRAIN:g} s", drained <= GOAL_DRAIN
        ),
        Figure("claims left in `sending` by the last kill", left, "rows"),
        Figure("copies received twice (same Message-ID)", len(received) - len(set(received)), "messages"),
        Figure("reports lost", lost, "reports", "0", lost == 0),
        Figure(f"owner-gone recoveries ({backend})", rows.owner_gone(), "rows"),
    ]


class Rows:
    """The few numbers the bench reads from the store, straight from the database."""

    def __init__(self, url: str, sqlite_path: Path, postgres: Postgres) -> None:
        self.postgres = url.startswith("postgresql")
        self.dsn = postgres.dsn(url.rsplit("/", 1)[1]) if self.postgres else ""
        self.sqlite_path = sqlite_path

    def _rows(self, query: str) -> list[tuple[object, ...]]:
        if self.postgres:
            with psycopg.connect(self.dsn) as db:
                return list(db.execute(query).fetchall())
        with sqlite3.connect(self.sqlite_path, timeout=30) as db:
            return list(db.execute(query).fetchall())

    def states(self) -> Counter[str]:
        return Counter(str(state) for (state,) in self._rows("SELECT state FROM submissions"))

    def message_ids(self) -> set[str]:
        return {str(mid) for (mid,) in self._rows("SELECT message_id FROM submissions")}

    def owner_gone(self) -> int:
        [(count,)] = self._rows("SELECT COUNT(*) FROM audit_events WHERE action = 'owner-gone'")
        return int(str(count))


if __name__ == "__main__":
    main()
