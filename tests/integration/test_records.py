"""Erasure, retention and MI with real gpg and a real relay; DWP's notice comes in through `ingest`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailroom.harness import dwp
from tests.conftest import Env
from tests.support import pdfs
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.integration

NAME = "Jane Testperson"
NINO = "AB123456C"


def sent_and_rejected(env: Env, relay: SmtpServer) -> None:
    assert env.run("case", "add", "MH-100001", "--nino", "AB 12 34 56 C").code == 0
    report = env.root / "report.pdf"
    report.write_bytes(pdfs.report_pdf(pdfs.ReportSpec(extra_lines=((1, f"Customer: {NAME}"),))))
    assert env.run("submit", str(report), "--case", "MH-100001", "--type", "support-plan").code == 0
    assert env.run("run", "--once").code == 0
    sent = message_from_bytes(relay.messages[0].content, policy=policy.default)
    assert isinstance(sent, EmailMessage)
    notice = dwp.rejection(
        sent,
        ["spelling-grammar"],
        now=datetime.now().astimezone(),
        authserv_id="mx.provider.example",
        case_ref="MH-100001",
    )
    notice.replace_header("Subject", f"Returned for rework: {NAME} ({NINO})")
    eml = env.root / "notice.eml"
    eml.write_bytes(notice.as_bytes())
    result = env.run("ingest", str(eml), "--json")
    assert json.loads(result.out)[0]["state"] == "matched", result.out
    report.unlink()
    eml.unlink()


def every_byte(root: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in root.rglob("*") if p.is_file() and p.suffix not in {".toml", ".key"}
    )


def test_erasure_leaves_no_name_or_nino_and_blocks_further_sends(
    make_daemon_env: Callable[..., Env], relay: SmtpServer
) -> None:
    env = make_daemon_env()
    sent_and_rejected(env, relay)
    state = json.loads(env.run("case", "show", "MH-100001", "--json").out)["submissions"][0]["state"]
    assert state == "rejected"
    assert NAME.encode() in env.db_path.read_bytes() + b"".join(
        p.read_bytes() for p in env.root.glob("mailroom.db-*")
    )  # the subject held the name before erasure: the check below can fail

    result = env.run("erase", "MH-100001", "--request-ref", "ER-2026-001", "--yes", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["documents"] == 1 and json.loads(result.out)["messages"] == 1
    leftovers = every_byte(env.root)
    assert NAME.encode() not in leftovers and NINO.encode() not in leftovers
    assert not [p for p in (env.root / "documents").rglob("*") if p.is_file()]

    pdf = env.root / "again.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    again = env.run("submit", str(pdf), "--case", "MH-100001", "--type", "support-plan")
    assert again.code == 1 and "was erased" in again.err and "ER-2026-001" in again.err
    assert env.run("case", "add", "MH-100001").code == 1
    assert env.run("audit", "verify").code == 0
    clocks = json.loads(env.run("case", "show", "ERASED-000001", "--json").out)["clocks"]
    assert all(c["state"] in {"met", "cancelled"} for c in clocks)


def test_purge_removes_old_documents_but_keeps_the_evidence(
    make_daemon_env: Callable[..., Env], relay: SmtpServer
) -> None:
    env = make_daemon_env(retention={"documents_days": 0})
    sent_and_rejected(env, relay)
    result = env.run("purge", "--json")
    assert result.code == 0 and json.loads(result.out) | {"cutoff": None} == {
        "documents": 1,
        "messages": 1,
        "cutoff": None,
    }
    assert not [p for p in (env.root / "documents").rglob("*") if p.is_file()]
    view = json.loads(env.run("case", "show", "MH-100001", "--json").out)
    assert view["submissions"][0]["state"] == "rejected" and view["submissions"][0]["message_id"]
    # A report still waiting to be sent is never purged, however old.
    queued = env.root / "queued.pdf"
    queued.write_bytes(pdfs.arial_12_report())
    assert env.run("submit", str(queued), "--case", "MH-100001", "--type", "support-plan").code == 0
    assert json.loads(env.run("purge", "--json").out)["documents"] == 0
    assert len([p for p in (env.root / "documents").rglob("*") if p.is_file()]) == 1


def test_mi_counts_sent_reports_and_rejections_by_reason(
    make_daemon_env: Callable[..., Env], relay: SmtpServer
) -> None:
    env = make_daemon_env()
    sent_and_rejected(env, relay)
    mi = json.loads(env.run("report", "mi", "--json").out)
    assert mi["sent"] == 1 and mi["rejected"] == 1
    assert mi["rejections_by_reason"] == {
        "spelling-grammar": {"label": "Spelling or grammar errors", "count": 1}
    }
    csv_out = env.run("report", "mi", "--format", "csv").out
    assert "rejections_by_reason,spelling-grammar,1" in csv_out


def test_erasure_stops_a_clock_that_has_already_escalated(
    make_daemon_env: Callable[..., Env], relay: SmtpServer
) -> None:
    env = make_daemon_env()
    sent_and_rejected(env, relay)
    clocks = json.loads(env.run("case", "show", "MH-100001", "--json").out)["clocks"]
    due = datetime.fromisoformat(next(c["due_at"] for c in clocks if c["kind"] == "correction"))
    assert env.run("run", "--once", "--at", (due + timedelta(hours=1)).isoformat()).code == 0
    to_pm = [m for m in relay.messages if "pm@dwp.gov.uk" in m.rcpt_tos]
    assert len(to_pm) == 1  # escalation-1: the clock is now escalated, not running
    assert env.run("erase", "MH-100001", "--request-ref", "ER-2026-002", "--yes").code == 0
    assert env.run("run", "--once", "--at", (due + timedelta(days=14)).isoformat()).code == 0
    assert [m for m in relay.messages if "pm@dwp.gov.uk" in m.rcpt_tos] == to_pm
    states = {
        c["state"] for c in json.loads(env.run("case", "show", "ERASED-000001", "--json").out)["clocks"]
    }
    assert states <= {"met", "cancelled"}
