"""The CLI beside a busy daemon (issue 12 part 5), shared by tests/integration/test_busy_cli.py and
bench/busy.py: a real `mailroom run` child process sends REPORTS reports through a slowed relay and reads
MESSAGES messages that arrive by LMTP in Dovecot while they go out, and four CLI processes run `submit`,
`case add`, `queue` + `inbox` and `case show` in loops. Every command's wall time, exit code and stderr
are kept; `table()` prints p50/p95/max per command.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import sqlalchemy as sa

from mailroom.daemon.wiring import make_mailroom
from mailroom.edges.configfile import load_settings
from mailroom.service.cases import NewCase
from mailroom.store.engine import make_engine
from tests.support import pdfs
from tests.support.dovecot import ALICE, Dovecot

CASE = "MH-100001"
BAR_SECONDS = 2.0  # the bar for every command


@dataclass(frozen=True)
class Timing:
    command: str
    seconds: float
    code: int
    err: str


@dataclass
class BusyResult:
    timings: list[Timing] = field(default_factory=list)
    submissions: int = 0
    sent_message_ids: list[str] = field(default_factory=list)
    submission_message_ids: set[str] = field(default_factory=set)
    inbound_rows: int = 0
    inbound_distinct: int = 0
    daemon_log: str = ""
    daemon_code: int | None = None
    wall_seconds: float = 0.0

    def by_command(self) -> dict[str, list[Timing]]:
        grouped: dict[str, list[Timing]] = {}
        for timing in self.timings:
            grouped.setdefault(timing.command, []).append(timing)
        return grouped

    def table(self, title: str) -> str:
        lines = [title, f"{'command':<10} {'n':>5} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'failed':>6}"]
        for command, rows in sorted(self.by_command().items()):
            seconds = sorted(r.seconds for r in rows)
            p95 = seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
            failed = sum(1 for r in rows if r.code != 0)
            lines.append(
                f"{command:<10} {len(rows):>5} {statistics.median(seconds):>7.2f} {p95:>7.2f} "
                f"{seconds[-1]:>7.2f} {failed:>6}"
            )
        lines.append(
            f"submissions {self.submissions}, sent {len(self.sent_message_ids)} "
            f"({len(set(self.sent_message_ids))} distinct Message-IDs), inbound rows {self.inbound_rows} "
            f"({self.inbound_distinct} distinct), wall {self.wall_seconds:.1f} s"
        )
        return "\n".join(lines)


def inbound_message(number: int) -> bytes:
    message = EmailMessage()
    message["From"] = "Someone Else <someone@example.org>"
    message["To"] = "reports@provider.example"
    message["Subject"] = f"A question, number {number}"
    message["Message-ID"] = f"<busy-{number}-{uuid.uuid4().hex[:8]}@example.org>"
    message["Date"] = "Fri, 04 Dec 2026 10:00:00 +0000"
    message.set_content(f"Hello, this is message {number}. Nothing about any report.\n")
    return message.as_bytes()


def prepare(config: Path, reports: int) -> None:
    """The case, and `reports` reports queued before the daemon starts (through the use cases, as the
    CLI's `submit` does, but in this process: 500 CLI starts would be most of the run)."""
    mailroom = make_mailroom(load_settings(config))
    try:
        mailroom.add_case(NewCase(case_ref=CASE), actor="bench")
        data = pdfs.arial_12_report()
        for _ in range(reports):
            mailroom.submit_bytes(data, case_ref=CASE, report_type="support-plan", actor="bench")
    finally:
        mailroom.engine.dispose()


def _cli(config: Path, args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mailroom", "--config", str(config), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def _loop(
    config: Path,
    commands: Callable[[int], list[tuple[str, list[str]]]],
    stop: threading.Event,
    out: list[Timing],
    lock: threading.Lock,
) -> None:
    number = 0
    while not stop.is_set():
        for name, args in commands(number):
            started = time.monotonic()
            done = _cli(config, args)
            timing = Timing(name, time.monotonic() - started, done.returncode, done.stderr.decode("replace"))
            with lock:
                out.append(timing)
        number += 1


def _wait_until_running(
    daemon: subprocess.Popen[bytes], log_path: Path, command_socket: Path | None, timeout: float = 60.0
) -> None:
    """The commands run beside a daemon that is running, not one still starting: `mailroom running` in
    its log, and its command server listening when one is configured."""
    deadline = time.monotonic() + timeout
    while b"mailroom running" not in log_path.read_bytes() or (
        command_socket is not None and not command_socket.exists()
    ):
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the daemon did not start: {log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def run_busy(
    config: Path,
    root: Path,
    dovecot: Dovecot,
    folder: str,
    *,
    reports: int,
    messages: int,
    slow_relay: Callable[[], None] = lambda: None,
    timeout: float = 300.0,
) -> BusyResult:
    """Queue `reports`, start the daemon, deliver `messages` while the CLI loops run, until all is done."""
    prepare(config, reports)
    pdf = root / "busy-report.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    engine = make_engine(load_settings(config).store.url)
    result = BusyResult()
    log_path = root / "busy-daemon.log"
    slow_relay()
    started = time.monotonic()
    with log_path.open("wb") as sink:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mailroom", "--config", str(config), "run"],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    _wait_until_running(daemon, log_path, load_settings(config).daemon.command_socket)
    stop = threading.Event()
    lock = threading.Lock()
    submit = ["submit", str(pdf), "--case", CASE, "--type", "support-plan"]
    loops: list[Callable[[int], list[tuple[str, list[str]]]]] = [
        lambda n: [("submit", submit)],
        lambda n: [("case add", ["case", "add", f"MH-{200000 + n}"])],
        lambda n: [("queue", ["queue"]), ("inbox", ["inbox"])],
        lambda n: [("case show", ["case", "show", CASE])],
    ]
    workers = [
        threading.Thread(target=_loop, args=(config, c, stop, result.timings, lock), daemon=True)
        for c in loops
    ]
    for worker in workers:
        worker.start()
    try:
        for number in range(messages):  # spread over the sending, as DWP's replies would be
            dovecot.deliver_lmtp(ALICE, inbound_message(number), folder=folder)
            time.sleep(0.02)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and daemon.poll() is None:
            counts = _counts(engine)
            if counts["inbound"] >= messages and counts["unsent"] == 0 and counts["sent"] >= reports:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=150)
    # The loops' last submits go out too before the daemon stops.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and daemon.poll() is None and _counts(engine)["unsent"]:
        time.sleep(0.2)
    result.wall_seconds = time.monotonic() - started
    if daemon.poll() is None:
        daemon.terminate()
    try:
        result.daemon_code = daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        result.daemon_code = daemon.wait()
    with engine.connect() as connection:
        result.submissions = int(connection.execute(sa.text("SELECT count(*) FROM submissions")).scalar_one())
        result.submission_message_ids = {
            str(m) for (m,) in connection.execute(sa.text("SELECT message_id FROM submissions"))
        }
        result.inbound_rows = int(
            connection.execute(sa.text("SELECT count(*) FROM inbound_messages")).scalar_one()
        )
        result.inbound_distinct = int(
            connection.execute(
                sa.text("SELECT count(DISTINCT message_id) FROM inbound_messages")
            ).scalar_one()
        )
    engine.dispose()
    result.daemon_log = log_path.read_text(errors="replace")
    return result


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = dict(
            connection.execute(sa.text("SELECT state, count(*) FROM submissions GROUP BY state")).all()
        )
        inbound = connection.execute(sa.text("SELECT count(*) FROM inbound_messages")).scalar_one()
    sent = int(rows.get("sent", 0))
    unsent = sum(int(n) for s, n in rows.items() if s in {"received", "queued", "sending", "deferred"})
    return {"sent": sent, "unsent": unsent, "inbound": int(inbound)}
