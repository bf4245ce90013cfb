"""Issue 12 part 4, the SMTP fault matrix: one row per fault, through the daemon's whole pass.

Real parts only: reports submitted through the CLI and sealed with real gpg, the daemon's `run_once` (outbox,
clocks, notices) with a real SQLite store, the aiosmtpd relay (STARTTLS, AUTH, a trustme CA, verified) and
the fault proxy in front of it on 127.0.0.1. Each row asserts the submissions' state after the faulty pass
and after the next one, the attempts and the retry time, the Message-IDs the relay saw, the alerts to the
team, the timeline, and the WARNING lines; the table the rows measured is printed (run with -s) and kept
in docs/sending.md ("Fault matrix"). Transport-level classification of the same faults is in
test_transport.py; this file is about what the outbox does with them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from mailroom.daemon.app import Parts, build, run_once
from mailroom.edges.configfile import load_settings
from tests.conftest import Env
from tests.support import pdfs
from tests.support.faultproxy import FaultProxy
from tests.support.smtpd import Received, SmtpServer

pytestmark = pytest.mark.integration

CASE = "MH-100001"
TEAM = "team@provider.example"
TIMEOUT = 1.0  # the relay's every reply comes in milliseconds; only the stall row waits for this
RETRY = timedelta(minutes=5)  # [outbox] retry_initial_minutes, the default
TABLE: list[str] = []


class OnMessage:
    """The relay's hook for an accepted message: runs `action` once, before the relay replies 250."""

    def __init__(self) -> None:
        self.action: Callable[[], None] | None = None

    def __call__(self, received: Received) -> None:
        action, self.action = self.action, None
        if action is not None:
            action()


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC) + timedelta(seconds=1)  # made just after the CLI queued the reports

    def now(self) -> datetime:
        return self.at


class Warnings(logging.Handler):
    """WARNING and above from the outbox (mailroom.service; the CLI's logging setup replaces root's)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def on_message() -> OnMessage:
    return OnMessage()


@pytest.fixture
def relay(on_message: OnMessage) -> Iterator[SmtpServer]:
    """conftest's relay, with the hook: make_daemon_env wires the config to this one."""
    with SmtpServer(on_message=on_message) as server:
        yield server


@pytest.fixture
def proxy(relay: SmtpServer) -> Iterator[FaultProxy]:
    with FaultProxy(relay.host, relay.port) as fault_proxy:
        yield fault_proxy


@dataclass
class World:
    env: Env
    relay: SmtpServer
    proxy: FaultProxy
    on_message: OnMessage
    clock: Clock = field(default_factory=Clock)
    parts: Parts | None = None

    def build(self) -> None:
        """The daemon's parts, as `mailroom run` builds them once (its outage log lives across passes)."""
        self.parts = build(load_settings(self.env.config), now=self.clock.now)

    def daemon_pass(self) -> dict[str, Any]:
        assert self.parts is not None
        return asyncio.run(run_once(self.parts))

    def submissions(self) -> list[dict[str, Any]]:
        assert self.parts is not None
        view = self.parts.mailroom.case_view(CASE)
        return sorted(view["submissions"], key=lambda s: int(s["id"]))

    def alerts(self) -> list[Received]:
        return [m for m in self.relay.messages if TEAM in m.rcpt_tos]


@dataclass(frozen=True)
class Row:
    fault: str
    inject: Callable[[World], None]
    state: str  # after the faulty pass
    code: int | None  # the reply kept as last_smtp, None when the relay gave none
    reports: int = 1
    offered: bool = False  # whether the faulty attempt's content reached the relay
    unconfirmed: bool = False
    heal: Callable[[World], None] = lambda world: None
    batch_wide: bool = False  # refused before any message: logged once, no alert, the rest of the batch waits
    config: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def retried(self) -> bool:
        return self.state == "deferred"


def cut_after_the_final_dot(world: World) -> None:
    # The relay has read the whole message (and queued it) when the hook runs, before it replies: the
    # proxy closes both sides, so the 250 is lost. cut_when(b"\r\n.\r\n") cannot see the dot inside TLS.
    world.on_message.action = world.proxy.cut_all


def wrong_ca(world: World) -> None:
    pass  # configured: see config= below


def right_ca(world: World) -> None:
    # What an operator does: install the relay's CA and restart the daemon.
    Path(world.env.root / "other-ca.pem").write_bytes(world.relay.ca_pem.read_bytes())
    world.build()


ROWS = [
    Row("421 at greeting", lambda w: w.relay.fail_next("GREETING", 421), "deferred", 421),
    Row("451 at MAIL", lambda w: w.relay.fail_next("MAIL", 451, "4.3.0 Try later"), "deferred", 451),
    Row("550 at MAIL", lambda w: w.relay.fail_next("MAIL", 550, "5.7.1 Sender refused"), "failed", 550),
    Row("450 at RCPT", lambda w: w.relay.fail_next("RCPT", 450, "4.2.1 Mailbox busy"), "deferred", 450),
    Row("550 at RCPT", lambda w: w.relay.fail_next("RCPT", 550, "5.1.1 No such user"), "failed", 550),
    Row(
        "451 at DATA (end of data)",
        lambda w: w.relay.fail_next("DATA", 451, "4.3.0 Queue full"),
        "deferred",
        451,
        offered=True,
    ),
    Row(
        "554 at DATA (end of data)",
        lambda w: w.relay.fail_next("DATA", 554, "5.7.1 Rejected by policy"),
        "failed",
        554,
        offered=True,
    ),
    Row(
        "cut after DATA's final dot",
        cut_after_the_final_dot,
        "deferred",
        None,
        offered=True,
        unconfirmed=True,
    ),
    Row(
        "stall (connection open, no byte)",
        lambda w: w.proxy.stall(),
        "deferred",
        None,
        reports=3,
        batch_wide=True,
    ),
    Row(
        "certificate not verified",
        wrong_ca,
        "deferred",
        None,
        reports=3,
        heal=right_ca,
        batch_wide=True,
        config={"smtp": {"ca_file": "other-ca.pem"}},
    ),
    Row(
        "AUTH refused (535)",
        lambda w: w.relay.fail_next("AUTH", 535, "5.7.8 Authentication credentials invalid"),
        "deferred",
        535,
        reports=3,
        batch_wide=True,
    ),
    Row(
        "AUTH temporary (454)",
        lambda w: w.relay.fail_next("AUTH", 454, "4.7.0 Temporary authentication failure"),
        "deferred",
        454,
        reports=3,
        batch_wide=True,
    ),
]


@pytest.fixture(scope="module", autouse=True)
def print_table() -> Iterator[None]:
    yield
    if TABLE:
        header = "fault | outcome | state after | attempts | same Message-ID | alerts | timeline"
        print("\n\nSMTP fault matrix (through the outbox pass)\n" + header)
        print("\n".join(TABLE))


@pytest.mark.parametrize("row", ROWS, ids=[r.fault for r in ROWS])
def test_fault_matrix(
    row: Row,
    make_daemon_env: Callable[..., Env],
    relay: SmtpServer,
    proxy: FaultProxy,
    on_message: OnMessage,
    tmp_path: Path,
) -> None:
    config = {section: dict(values) for section, values in row.config.items()}
    if "ca_file" in config.get("smtp", {}):
        (tmp_path / "other-ca.pem").write_bytes(trustme.CA().cert_pem.bytes())  # not the relay's CA
        config["smtp"]["ca_file"] = str(tmp_path / "other-ca.pem")
    smtp = {"port": proxy.port, "timeout_seconds": TIMEOUT, **config.pop("smtp", {})}
    env = make_daemon_env(smtp=smtp, **config)
    world = World(env, relay, proxy, on_message)
    assert env.run("case", "add", CASE).code == 0
    (env.root / "report.pdf").write_bytes(pdfs.arial_12_report())
    for _ in range(row.reports):
        queued = env.run("submit", str(env.root / "report.pdf"), "--case", CASE, "--type", "support-plan")
        assert queued.code == 0, queued.err
    world.clock = Clock()  # after the CLI queued the reports, however long that took on a busy machine
    world.build()
    warnings = Warnings()
    logging.getLogger("mailroom.service").addHandler(warnings)
    try:
        outcome = run_row(world, row, warnings)
    finally:
        logging.getLogger("mailroom.service").removeHandler(warnings)
    TABLE.append(outcome)


def run_row(world: World, row: Row, warnings: Warnings) -> str:
    """Inject, run the faulty pass, check; a pass before the backoff; heal, the next pass, check; one line."""
    relay, proxy, clock = world.relay, world.proxy, world.clock
    before = [s["message_id"] for s in world.submissions()]
    first_at = clock.at
    row.inject(world)

    first = world.daemon_pass()["outbox"]

    subs = world.submissions()
    assert [s["state"] for s in subs] == [row.state] * row.reports
    assert [s["attempts"] for s in subs] == [1] * row.reports
    assert [s["message_id"] for s in subs] == before  # stored at queueing, never regenerated
    expected_counts = {"sent": 0, "deferred": 0, "failed": 0, "released": 0}
    expected_counts[row.state] = row.reports
    assert first == expected_counts
    for s in subs:
        if row.code is None:
            assert s["last_smtp"] is None
        else:
            assert str(s["last_smtp"]).startswith(f"{row.code} ")
    first_actions = [[e["action"] for e in s["timeline"]][-2:] for s in subs]
    outcome = "sent-unconfirmed" if row.unconfirmed else row.state
    assert first_actions == [["claimed", outcome]] * row.reports
    last = [s["timeline"][-1] for s in subs]
    if row.retried:
        assert {e["detail"]["retry_at"] for e in last} == {(first_at + RETRY).isoformat()}
    # What reached the relay on the faulty attempt: nothing (MAIL, RCPT, session) or the whole message.
    offered = [t.message_id for t in relay.transactions if TEAM not in t.rcpt_tos]
    assert offered == (before if row.offered else [])
    if row.batch_wide:
        # One connection for the whole batch, at most one AUTH, no MAIL, no alert through that relay.
        assert proxy.connections == 1
        assert [a.success for a in relay.auth_attempts] in ([], [False])
        assert relay.transactions == []
        assert len(warnings.lines) == 1 and "unavailable" in warnings.lines[0]
    else:
        assert len(warnings.lines) == row.reports  # one line per report: "submission N deferred: ..."
    alerts = world.alerts()
    assert len(alerts) == (row.reports if row.state == "failed" else 0)

    # Not due before the backoff; then the fault has passed (fail_next is one-shot) and the next pass runs.
    clock.at = first_at + timedelta(minutes=1)
    assert world.daemon_pass()["outbox"]["sent"] == 0
    if row.batch_wide:
        assert len(warnings.lines) == 1  # nothing new was attempted, and nothing new logged
    proxy.reset()
    row.heal(world)
    clock.at = first_at + RETRY + timedelta(minutes=1)
    second = world.daemon_pass()["outbox"]

    subs = world.submissions()
    ids = [s["message_id"] for s in subs]
    assert ids == before
    copies = [t.message_id for t in relay.messages if TEAM not in t.rcpt_tos]
    if row.retried:
        assert second["sent"] == row.reports
        assert [s["state"] for s in subs] == ["sent"] * row.reports
        assert [s["attempts"] for s in subs] == [2] * row.reports
        # A relay that got the message twice saw the same Message-ID both times.
        assert sorted(copies) == sorted(ids * (2 if row.unconfirmed else 1))
        sent = [s["timeline"][-1] for s in subs]
        assert [e["action"] for e in sent] == ["sent"] * row.reports
        confirms = [e["detail"].get("confirms") for e in sent]
        assert confirms == [[1] if row.unconfirmed else None] * row.reports
    else:
        assert second == {"sent": 0, "deferred": 0, "failed": 0, "released": 0}
        assert [s["state"] for s in subs] == ["failed"] * row.reports
        assert copies == []
    if row.batch_wide:
        assert len(warnings.lines) == 1

    timeline = [e["action"] for e in subs[0]["timeline"] if e["action"] not in ("stored", "preflight-passed")]
    retry = ["claimed", "sent"] if row.retried else []
    assert timeline == ["queued", "claimed", outcome, *retry]
    measured = {
        "outcome": outcome + (f" ({row.code})" if row.code else ""),
        "state": f"{row.state} -> {subs[0]['state']}",
        "attempts": str(subs[0]["attempts"]),
        "same_id": f"yes: DATA {len([t for t in relay.transactions if t.message_id == ids[0]])}x, "
        f"accepted {len([c for c in copies if c == ids[0]])}x",
        "alerts": str(len(world.alerts())),
    }
    return " | ".join(
        [
            row.fault + (f" x{row.reports}" if row.reports > 1 else ""),
            measured["outcome"],
            measured["state"],
            measured["attempts"],
            measured["same_id"],
            measured["alerts"] + (" (one line logged)" if row.batch_wide else ""),
            " > ".join(timeline),
        ]
    )


def test_a_refusal_after_an_unconfirmed_attempt_alerts_that_it_may_have_arrived(
    make_daemon_env: Callable[..., Env], relay: SmtpServer, proxy: FaultProxy, on_message: OnMessage
) -> None:
    env = make_daemon_env(smtp={"port": proxy.port, "timeout_seconds": TIMEOUT})
    world = World(env, relay, proxy, on_message)
    assert env.run("case", "add", CASE).code == 0
    (env.root / "report.pdf").write_bytes(pdfs.arial_12_report())
    assert env.run("submit", str(env.root / "report.pdf"), "--case", CASE, "--type", "support-plan").code == 0
    world.clock = Clock()  # after the CLI queued the report
    world.build()
    cut_after_the_final_dot(world)
    world.daemon_pass()
    relay.fail_next("DATA", 554, "5.7.1 Duplicate")
    world.clock.at += RETRY + timedelta(minutes=1)

    world.daemon_pass()

    [sub] = world.submissions()
    assert sub["state"] == "failed" and sub["attempts"] == 2
    failed = sub["timeline"][-1]
    assert failed["action"] == "failed" and failed["detail"]["unconfirmed_attempts"] == [1]
    [alert] = world.alerts()
    text = alert.message().get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "may nevertheless have reached DWP" in body and sub["message_id"] in body
