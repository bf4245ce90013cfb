"""The operator's view of a real daemon: `mailroom status` while it runs and after it dies, the metrics
endpoint and textfile scraped and parsed with prometheus_client's own parser, and the daily digest sent
once per working day through a real relay under time travel."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Env
from tests.support import pdfs
from tests.support.daemon import start_daemon, wait_until
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def status(env: Env) -> tuple[int, dict[str, Any]]:
    result = env.run("status", "--json")
    return result.code, json.loads(result.out)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


METRICS = f"127.0.0.1:{free_port()}"


@pytest.fixture
def daemon_env(make_daemon_env: Callable[..., Env], relay: SmtpServer, tmp_path: Path) -> Iterator[Env]:
    relay.reset()
    env = make_daemon_env(
        daemon={"heartbeat_seconds": 1},
        outbox={"poll_seconds": 0.2},
        metrics={"listen": METRICS, "textfile": str(tmp_path / "mailroom.prom")},
    )
    assert env.run("case", "add", "MH-100001").code == 0
    report = tmp_path / "report.pdf"
    report.write_bytes(pdfs.arial_12_report())
    assert env.run("submit", str(report), "--case", "MH-100001", "--type", "support-plan").code == 0
    yield env


def start(env: Env) -> subprocess.Popen[bytes]:
    return start_daemon(env.config, env.root / "daemon.log")


def test_status_and_metrics_of_a_running_daemon_and_of_one_killed(daemon_env: Env, relay: SmtpServer) -> None:
    daemon = start(daemon_env)
    try:
        relay.wait_for_messages(1, timeout=20)
        wait_until(lambda: status(daemon_env)[1]["queue"] == {"sent": 1}, "the report recorded as sent")
        wait_until(lambda: status(daemon_env)[1]["smtp_contact_at"] is not None, "a heartbeat after the send")
        code, report = status(daemon_env)
        assert code == 0 and report["running"] and report["problems"] == []
        assert report["last_send_at"] is not None and report["outages"] == []

        scraped = urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=5).read().decode()
        found = samples(scraped)
        assert found[("mailroom_scrape_ok", ())] == 1
        assert found[("mailroom_submissions", (("state", "sent"),))] == 1
        assert found[("mailroom_daemons_running", ())] == 1
        assert found[("mailroom_smtp_sends_total", (("result", "sent"), ("smtp_class", "2xx")))] >= 1
        assert found[("mailroom_outage", (("channel", "smtp"),))] == 0
        assert ("mailroom_last_contact_timestamp_seconds", (("channel", "smtp"),)) in found
        labels = " ".join(v for _, pairs in found for _, v in pairs)
        assert "MH-" not in labels and "@" not in labels  # no case reference or address in any label

        textfile = daemon_env.root / "mailroom.prom"
        wait_until(textfile.exists, "the node_exporter textfile")
        assert textfile.stat().st_mode & 0o777 == 0o640
        assert samples(textfile.read_text())[("mailroom_submissions", (("state", "sent"),))] == 1
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    code, report = status(daemon_env)
    assert code == 1 and not report["running"]
    assert report["daemons"][0]["note"] == "process gone without stopping (killed or crashed)"


def test_a_clean_stop_is_recorded(daemon_env: Env) -> None:
    daemon = start(daemon_env)
    wait_until(lambda: status(daemon_env)[1]["running"], "the daemon's first heartbeat")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=20) == 0
    code, report = status(daemon_env)
    assert code == 1 and report["daemons"][0]["note"] == "stopped"


def test_the_digest_goes_out_once_each_working_day_under_time_travel(
    make_daemon_env: Callable[..., Env], relay: SmtpServer
) -> None:
    relay.reset()
    env = make_daemon_env(digest={"enabled": True, "at": "08:30"})
    assert env.run("case", "add", "MH-100001").code == 0
    moment = datetime(2026, 12, 23, 7, 0, tzinfo=UTC)  # Wednesday before Christmas
    while moment < datetime(2026, 12, 30, 0, 0, tzinfo=UTC):
        for hour in (7, 9, 16):  # before the hour, after it, and again: one digest a day at most
            at = moment.replace(hour=hour)
            assert env.run("run", "--once", "--at", at.isoformat()).code == 0
        moment += timedelta(days=1)
    subjects = [str(m.message()["Subject"]) for m in relay.messages]
    days = [s.rsplit(" - ", 1)[1] for s in subjects if s.startswith("MHSS daily digest")]
    # Christmas Day (Fri 25th), the weekend, and the substitute Boxing Day holiday (Mon 28th): none.
    assert days == ["Wed 23 Dec 2026", "Thu 24 Dec 2026", "Tue 29 Dec 2026"]
