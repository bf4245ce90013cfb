"""The durable outbox end to end: CLI submit → `run --once` → a real STARTTLS+AUTH relay, with real gpg.

Every outcome is asserted twice: from the database (through the CLI's JSON) and from what the relay saw.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env
from tests.support import pdfs
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.integration

DWP = "accesstowork.mhss@dwp.gov.uk"


@pytest.fixture
def env(make_daemon_env: Callable[..., Env]) -> Env:
    environment = make_daemon_env()
    assert environment.run("case", "add", "MH-100001").code == 0
    return environment


def submit(env: Env, data: bytes | None = None, *extra: str) -> dict[str, Any]:
    path = env.root / "report.pdf"
    path.write_bytes(data if data is not None else pdfs.arial_12_report())
    result = env.run("submit", str(path), "--case", "MH-100001", "--type", "support-plan", "--json", *extra)
    assert result.code == 0, result.err
    return dict(json.loads(result.out))


def run_once(env: Env, at: datetime | None = None) -> dict[str, Any]:
    args = ["run", "--once", "--json"] + (["--at", at.isoformat()] if at else [])
    result = env.run(*args)
    assert result.code == 0, result.err
    return dict(json.loads(result.out))


def submission(env: Env, index: int = 0) -> dict[str, Any]:
    view = json.loads(env.run("case", "show", "MH-100001", "--json").out)
    return dict(view["submissions"][index])


def attachment(message: Message) -> bytes:
    for part in message.walk():
        if part.get_content_type() == "application/pdf":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise AssertionError("no PDF attached")


def test_a_report_reaches_the_relay_encrypted_at_rest_and_starts_its_clocks(
    env: Env, relay: SmtpServer
) -> None:
    pdf = pdfs.arial_12_report()
    queued = submit(env, pdf)
    stored = list((env.root / "documents" / "reports").iterdir())
    assert len(stored) == 1 and pdf not in stored[0].read_bytes() and stored[0].read_bytes()[:1] != b"%"

    report = run_once(env)
    assert report["outbox"]["sent"] == 1
    [received] = relay.messages
    message = message_from_bytes(received.content)
    assert list(received.rcpt_tos) == [DWP]
    assert message["Message-ID"] == queued["message_id"]
    assert message["Subject"] == "MHSS Support Plan - MH-100001 [S-000001]"
    assert attachment(message) == pdf
    sent = submission(env)
    assert sent["state"] == "sent"
    assert sent["sent_reply"].startswith("250")
    kinds = {c["kind"]: c for c in json.loads(env.run("case", "show", "MH-100001", "--json").out)["clocks"]}
    assert set(kinds) == {"acknowledgement", "decision"}
    assert kinds["decision"]["calendar"] == "england-and-wales"


def test_a_temporary_refusal_is_retried_with_the_same_message_id(env: Env, relay: SmtpServer) -> None:
    queued = submit(env)
    relay.fail_next("RCPT", 451, "4.3.0 Try again later")
    assert run_once(env)["outbox"]["deferred"] == 1
    deferred = submission(env)
    assert deferred["state"] == "deferred" and deferred["last_smtp"].startswith("451")
    assert relay.messages == []
    assert run_once(env)["outbox"]["sent"] == 0  # not due yet: the backoff is 5 minutes
    later = datetime.now(UTC) + timedelta(minutes=6)
    assert run_once(env, later)["outbox"]["sent"] == 1
    assert [message_from_bytes(m.content)["Message-ID"] for m in relay.messages] == [queued["message_id"]]
    assert submission(env)["attempts"] == 2


def test_a_permanent_refusal_fails_and_alerts_the_team(env: Env, relay: SmtpServer) -> None:
    submit(env)
    relay.fail_next("DATA", 554, "5.7.1 Rejected by policy")
    report = run_once(env)
    assert report["outbox"]["failed"] == 1 and report["notices"]["sent"] == 1
    assert submission(env)["state"] == "failed"
    [alert] = relay.messages
    assert list(alert.rcpt_tos) == ["team@provider.example"]
    body = message_from_bytes(alert.content)
    assert "MH-100001" in body["Subject"] and body["Auto-Submitted"] == "auto-generated"
    assert "554" in alert.content.decode()


def test_hang_up_after_data_is_resent_with_the_same_message_id(env: Env, relay: SmtpServer) -> None:
    queued = submit(env)
    relay.hang_up_after_data()
    assert run_once(env)["outbox"]["deferred"] == 1
    run_once(env, datetime.now(UTC) + timedelta(minutes=6))
    ids = [message_from_bytes(t.content)["Message-ID"] for t in relay.transactions]
    assert ids == [queued["message_id"], queued["message_id"]]
    assert submission(env)["state"] == "sent"


def test_an_expired_lease_is_resent_and_the_timeline_says_so(env: Env, relay: SmtpServer) -> None:
    queued = submit(env)
    # What a kill -9 between the claim's commit and the send leaves behind.
    with sqlite3.connect(env.db_path) as db:
        db.execute("UPDATE submissions SET state='sending', attempts=1, lease_until='2026-01-01 00:00:00'")
    run_once(env)
    assert [message_from_bytes(m.content)["Message-ID"] for m in relay.messages] == [queued["message_id"]]
    timeline = submission(env)["timeline"]
    expired = [e for e in timeline if e["action"] == "lease-expired"]
    assert expired and expired[0]["detail"]["note"] == "resent after an unconfirmed attempt"


def test_the_queue_lifetime_ends_in_failure(env: Env, relay: SmtpServer) -> None:
    submit(env)
    relay.fail_next("MAIL", 421, "4.3.2 Shutting down", count=2)  # the first try and the one after 6 days
    run_once(env)
    run_once(env, datetime.now(UTC) + timedelta(days=6))
    assert submission(env)["state"] == "failed"
    assert any(list(t.rcpt_tos) == ["team@provider.example"] for t in relay.messages)


def test_a_report_failing_preflight_is_never_sent(env: Env, relay: SmtpServer) -> None:
    body = submit(env, pdfs.report_without_employment_statement())
    assert body["state"] == "preflight_failed"
    run_once(env)
    assert relay.transactions == []
    findings = submission(env)
    assert findings["state"] == "preflight_failed"


def test_restricted_cases_are_held_until_released(
    make_daemon_env: Callable[..., Env], relay: SmtpServer
) -> None:
    env = make_daemon_env()
    env.run("case", "add", "MH-100001", "--restricted")
    assert submit(env)["state"] == "held"
    run_once(env)
    assert relay.transactions == []
    assert env.run("queue", "release", "1").code == 0
    run_once(env)
    assert len(relay.messages) == 1


def test_an_untrusted_gpg_recipient_is_a_config_error(make_daemon_env: Callable[..., Env]) -> None:
    env = make_daemon_env(gpg={"recipients": ["0" * 40]})
    # A command that stores or reads documents checks gpg; a listing never loads it (issue 13).
    result = env.run("queue", "hold", "1")
    assert result.code == 78
    assert "[gpg]" in result.err
    assert env.run("queue").code == 0


def test_a_refused_login_defers_the_whole_batch_instead_of_failing_each_report(
    make_daemon_env: Callable[..., Env], relay: SmtpServer
) -> None:
    env = make_daemon_env()
    (env.root / "smtp.pw").write_text("not-the-password")
    env.run("case", "add", "MH-100001")
    for _ in range(3):
        submit(env)
    report = run_once(env)
    assert report["outbox"] == {"sent": 0, "deferred": 3, "failed": 0, "released": 0}
    rows = json.loads(env.run("queue", "--json").out)
    assert [r["state"] for r in rows] == ["deferred"] * 3
    assert all(r["last_smtp"].startswith("535") for r in rows)
    assert relay.transactions == []  # and no alert: it would go through the relay that refuses us


def site_templates(root: Path, **templates: str) -> Path:
    folder = root / "templates"
    folder.mkdir()
    for name, text in templates.items():
        (folder / f"{name}.txt").write_text(text)
    return folder


def test_a_site_cover_template_is_the_body_dwp_receives(
    make_daemon_env: Callable[..., Env], relay: SmtpServer, tmp_path: Path
) -> None:
    folder = site_templates(tmp_path, cover="Attached: $report_type, $case_ref, $submission_token.\n")
    env = make_daemon_env(provider={"templates_dir": str(folder), "name": "Acme MHSS"})
    assert env.run("case", "add", "MH-100001").code == 0
    submit(env)
    run_once(env)
    [received] = relay.messages
    body = message_from_bytes(received.content, policy=policy.default).get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "Attached: Support Plan, MH-100001, S-000001.\n"


def test_a_broken_site_template_stops_the_daemon_with_one_line(
    make_daemon_env: Callable[..., Env], relay: SmtpServer, tmp_path: Path
) -> None:
    folder = site_templates(tmp_path, escalation="Subject: $case_ref\n\nDear $customer_name\n")
    env = make_daemon_env(provider={"templates_dir": str(folder)})
    result = env.run("run", "--once")
    assert result.code == 78
    assert result.err.strip().count("\n") == 0 and "customer_name" in result.err
