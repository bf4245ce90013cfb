"""The guided tour (`bash .ci/demo`, `mailroom demo`): fictional reports walk
through a throwaway harness from submission to escalation, using the real CLI commands an operator types.

Nothing leaves 127.0.0.1: the relay, the DWP simulator and the provider mailbox are the harness's own. Time
travel (`run --once --at`) shows a week of working-day clocks in seconds. At the end every process the demo
started is stopped and its folder removed.
"""

from __future__ import annotations

import os
import queue
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SCENARIO = """\
# The demo's DWP: acknowledge every report at once; return a report not in Arial 12 pt two seconds later.
acknowledge_after_seconds = 0.3

[[rule]]
failing = "fonts"
action = "reject"
reasons = ["format"]
after_seconds = 2
"""
WAIT_SECONDS = 20.0


class DemoError(Exception):
    """A step did not do what the tour says it does."""


class Tour:
    """The demo's steps, in order; each prints what it does and the commands it runs."""

    def __init__(self, base: Path, run: Callable[[Sequence[str]], int]) -> None:
        from mailroom.cli.frame import out

        self.base = base
        self.run = run
        self.out = out
        self.events: queue.Queue[str] = queue.Queue()
        self.step = 0

    # -- presentation ---------------------------------------------------------------------------------------

    def heading(self, title: str, *explanation: str) -> None:
        self.step += 1
        self.out.print(f"\n[bold]{self.step}. {title}[/bold]")
        for line in explanation:
            self.out.print(f"   {line}", markup=False, highlight=False)

    def cli(self, *args: str, expect: int = 0) -> None:
        self.out.print(f"\n[bold cyan]$ mailroom {' '.join(args)}[/bold cyan]", highlight=False)
        code = self.run(list(args))
        if code != expect:
            raise DemoError(f"`mailroom {' '.join(args)}` exited {code}, expected {expect}")

    def show_events(self) -> None:
        while not self.events.empty():
            self.out.print(f"   {self.events.get()}", style="magenta", markup=False, highlight=False)

    def note(self, text: str) -> None:
        self.out.print(f"   {text}", style="italic", markup=False, highlight=False)


def main(run: Callable[[Sequence[str]], int]) -> int:
    """The tour, driving the CLI through `run` (the `mailroom demo` command passes its own root group)."""
    if not sys.stdout.isatty():
        os.environ.setdefault("COLUMNS", "150")  # tables in a CI log: wide enough to read
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="mailroom-demo-", dir="/tmp"))
    base.chmod(0o755)  # Dovecot's own users must reach the harness inside; its secrets stay 0600/0700
    try:
        run_tour(Tour(base, run))
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"\nDemo finished in {time.monotonic() - started:.1f} s; nothing is left running and {base} is gone."
    )
    return 0


def run_tour(tour: Tour) -> None:
    from mailroom.harness.dovecot import port_open
    from mailroom.harness.world import Harness

    scenario = tour.base / "scenario.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    tour.out.print(
        "[bold]mhss-mailroom demo[/bold]: three fictional reports go to a simulated DWP inbox, come back "
        "acknowledged or returned for rework, and the working-day clocks take it from there."
    )
    harness = Harness(
        tour.base / "harness", scenario=scenario, log_level="WARNING", on_event=_queue_line(tour)
    )
    with harness:
        info = harness.info
        os.environ["MAILROOM_CONFIG"] = str(info.config)
        start_harness(tour, info)
        prepare(tour, info)
        send_and_read(tour, harness)
        due = correction_due(tour)
        time_travel(tour, harness, due)
        resubmit(tour, harness, info, due)
        show_outgoing(tour, harness)
        show_status(tour)
        tour.heading("Stop everything")
    if any(port_open(p) for p in (info.imaps_port, info.lmtp_port, info.smtp_port)):
        raise DemoError("a harness server is still listening after stop")
    if any(info.gpg_home.glob("S.gpg-agent*")):
        raise DemoError("gpg-agent is still running after stop")
    tour.note("Dovecot, the relay, the DWP simulator and gpg-agent are stopped.")


def start_harness(tour: Tour, info: Any) -> None:
    tour.heading(
        "Start the harness: a local stand-in for the world outside, all on 127.0.0.1",
        f"provider mailbox (Dovecot): IMAPS 127.0.0.1:{info.imaps_port}, LMTP :{info.lmtp_port}",
        f"provider relay (aiosmtpd, STARTTLS + AUTH): 127.0.0.1:{info.smtp_port}",
        "DWP simulator: acknowledges each report, returns those not in Arial 12 pt for rework (format)",
        f"a throwaway gpg key, a CA for the servers, and a ready config: {info.config}",
        f"(`export MAILROOM_CONFIG={info.config}` is what makes the commands below use it)",
    )


def prepare(tour: Tour, info: Any) -> None:
    tour.heading("Create the database and check the installation")
    tour.cli("db", "upgrade")
    tour.cli("doctor")
    tour.note("test_mode warns: it allows the time travel below, and must never be on in production.")
    tour.heading("Add three cases (fictional)")
    for case_ref in ("MH-100001", "MH-100002", "MH-100003"):
        tour.cli("case", "add", case_ref)
    samples = info.samples
    tour.heading(
        "Preflight and submit three sample reports",
        "MH-100001: a conforming Support Plan.",
        "MH-100002: set in Times 10 pt. Preflight warns (fonts do not block by default); DWP will object.",
        "MH-100003: a 6 Month Report with no statement of employment status. Preflight blocks it.",
    )
    tour.cli(
        "preflight",
        str(samples / "MH-100002_support-plan.pdf"),
        "--case",
        "MH-100002",
        "--type",
        "support-plan",
    )
    tour.cli(
        "submit", str(samples / "MH-100001_support-plan.pdf"), "--case", "MH-100001", "--type", "support-plan"
    )
    tour.cli(
        "submit", str(samples / "MH-100002_support-plan.pdf"), "--case", "MH-100002", "--type", "support-plan"
    )
    tour.cli(
        "submit",
        str(samples / "MH-100003_six-month-report.pdf"),
        "--case",
        "MH-100003",
        "--type",
        "six-month-report",
    )
    tour.cli("queue")


def send_and_read(tour: Tour, harness: Any) -> None:
    from mailroom.harness.simulator import EventKind

    tour.heading("The daemon sends the queued reports (one pass: `run --once`)")
    tour.cli("run", "--once")
    _wait(harness.simulator.wait_for(EventKind.ACKNOWLEDGED, 2, WAIT_SECONDS), "DWP's acknowledgements")
    tour.show_events()
    tour.heading("DWP's automated responses are in the mailbox: the next pass reads them")
    tour.cli("run", "--once")
    tour.cli("queue")
    _wait(harness.simulator.wait_for(EventKind.REJECTED, 1, WAIT_SECONDS), "DWP's rejection")
    tour.show_events()
    tour.heading(
        "DWP returned MH-100002 for rework: the correction clock starts",
        "The notice is trusted only because the provider's own MX (Authentication-Results) saw DMARC pass.",
    )
    tour.cli("run", "--once")
    tour.cli("case", "show", "MH-100002")


def correction_due(tour: Tour) -> datetime:
    from mailroom.cli.frame import Cli

    view = Cli().mailroom().case_view("MH-100002")
    clock = next(c for c in view["clocks"] if c["kind"] == "correction" and c["state"] == "running")
    due = datetime.fromisoformat(str(clock["due_at"]))
    tour.heading(
        "Check the policy before it bites: what the clocks would do on the deadline day",
        f"The corrected report is due {due.isoformat()} (5 working days, bank holidays skipped).",
    )
    tour.cli("clocks", "--as-of", due.date().isoformat())
    return due


def time_travel(tour: Tour, harness: Any, due: datetime) -> None:
    before = due - timedelta(hours=2)
    tour.heading(
        "Time travel: two hours before the correction deadline",
        "The provider team gets a reminder. (--at works only with [daemon] test_mode = true.)",
    )
    tour.cli("run", "--once", "--at", before.isoformat())
    tour.cli("escalations")
    after = due + timedelta(hours=1)
    tour.heading(
        "Time travel: an hour after the deadline, and still no corrected report",
        "The performance manager gets an escalation, once; MH-100001's decision window closes with no",
        "rejection, so it counts as accepted (DWP never sends an approval).",
    )
    tour.cli("run", "--once", "--at", after.isoformat())
    tour.cli("run", "--once", "--at", (after + timedelta(minutes=5)).isoformat())
    tour.note("A second pass sends nothing new: each level fires once.")
    tour.cli("escalations")


def resubmit(tour: Tour, harness: Any, info: Any, due: datetime) -> None:
    from mailroom.harness.samples import SampleReport
    from mailroom.harness.simulator import EventKind

    corrected = tour.base / "MH-100002_support-plan-corrected.pdf"
    corrected.write_bytes(SampleReport("MH-100002").pdf())
    later = (due + timedelta(hours=2)).isoformat()
    tour.heading(
        "The corrected report goes in and supersedes the returned one",
        "Its correction clock is met; the new submission has clocks of its own.",
    )
    tour.cli("submit", str(corrected), "--case", "MH-100002", "--type", "support-plan", "--supersedes", "2")
    tour.cli("run", "--once", "--at", later)
    _wait(harness.simulator.wait_for(EventKind.ACKNOWLEDGED, 3, WAIT_SECONDS), "the acknowledgement")
    tour.show_events()
    tour.cli("run", "--once", "--at", later)
    tour.cli("case", "show", "MH-100002")


def show_outgoing(tour: Tour, harness: Any) -> None:
    from mailroom.cli.frame import print_table

    tour.heading("Every message the mailroom sent, as the relay saw it: case references only, never names")
    print_table(
        "Relayed mail",
        ["#", "to", "subject"],
        [[m.number, ", ".join(m.recipients), m.subject] for m in harness.relay.mail],
    )


def show_status(tour: Tour) -> None:
    tour.heading(
        "The whole picture on one screen: `mailroom status`",
        "It reads the database, so it is right from any host and after any crash. Exit 0 means healthy;",
        "here it exits 1 and says why: the demo ran `run --once` passes, so no daemon is running now.",
    )
    tour.cli("status", expect=1)


def _queue_line(tour: Tour) -> Any:
    return lambda event: tour.events.put(event.line())


def _wait(arrived: bool, what: str) -> None:
    if not arrived:
        raise DemoError(f"{what} did not arrive within {WAIT_SECONDS:g} s")
