"""The review queue (issue 11): trusted DWP mail about our case that no rule reads with certainty waits for a
person, with one team alert, and a person's decision applies it as of its arrival."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, col, select

from mailroom.core.states import SubmissionState
from mailroom.store.models import AuditEvent, Clock, InboundMessage, Notice, Submission
from tests.conftest import Env
from tests.support import pdfs
from tests.unit.parsers.mail import AR_PASS, raw_message

SENT_AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DWP_PERSON = "Sam Patel <sam.patel@dwp.gov.uk>"


@pytest.fixture
def desk(make_env: Callable[..., Env]) -> Env:
    env = make_env(trust={"authserv_ids": ["mx.provider.example"]})
    assert env.run("db", "upgrade").code == 0
    assert env.run("case", "add", "MH-100001").code == 0
    pdf = env.root / "plan.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    assert env.run("submit", str(pdf), "--case", "MH-100001", "--type", "support-plan").code == 0
    with Session(_engine(env)) as session:
        sub = session.exec(select(Submission)).one()
        sub.state, sub.sent_at = SubmissionState.SENT, SENT_AT
        session.add(sub)
        session.commit()
    return env


def _engine(env: Env) -> Any:
    return create_engine(f"sqlite:///{env.db_path}")


def _submission(env: Env) -> Submission:
    """The first report of the case, the one DWP's mail answers."""
    with Session(_engine(env)) as session:
        first = session.exec(select(Submission).order_by(col(Submission.id))).first()
    assert first is not None
    return first


def _dwp_mail(env: Env, body: str, *, name: str = "dwp.eml", threaded: bool = True, **kwargs: Any) -> Path:
    sub = _submission(env)
    headers: list[tuple[str, str]] = [("Authentication-Results", AR_PASS)]
    if threaded:
        headers += [("In-Reply-To", str(sub.message_id)), ("References", str(sub.message_id))]
    headers += list(kwargs.pop("headers", ()))
    path = env.root / name
    raw = raw_message(
        body,
        sender=kwargs.pop("sender", DWP_PERSON),
        subject=kwargs.pop("subject", f"RE: MHSS Support Plan - MH-100001 [{sub.token}]"),
        headers=tuple(headers),
        message_id=f"<{name}@dwp.gov.uk>",
        **kwargs,
    )
    path.write_bytes(raw)
    return path


def _ingest(env: Env, path: Path) -> dict[str, Any]:
    result = env.run("ingest", str(path), "--json")
    assert result.code == 0, result.err
    [row] = json.loads(result.out)
    return dict(row)


def _alerts(env: Env) -> list[Notice]:
    with Session(_engine(env)) as session:
        return list(session.exec(select(Notice).where(Notice.kind == "alert")).all())


def _cli_json(env: Env, *args: str) -> Any:
    result = env.run(*args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


HALF_REJECTION = "Jane Doe's plan cannot be processed in its current form.\n"


def test_half_a_rejection_waits_for_a_person_with_one_alert(desk: Env) -> None:
    message = _dwp_mail(desk, HALF_REJECTION)
    ingested = _ingest(desk, message)
    assert ingested["state"] == "needs_review"
    [waiting] = _cli_json(desk, "inbox", "--state", "needs_review")
    assert waiting["case_ref"] == "MH-100001" and waiting["kind"] == "other"
    assert "negative outcome" in waiting["review"]
    assert any(c.startswith("outcome: ") for c in waiting["cues"])
    assert [r["id"] for r in _cli_json(desk, "inbox")] == [waiting["id"]]  # in the default listing too

    [alert] = _alerts(desk)
    assert alert.recipients == ["team@provider.example"]
    assert "MH-100001" in alert.subject and "needs review" in alert.subject
    for personal in ("Jane", "Doe", "current form"):
        assert personal not in alert.subject and personal not in alert.body
    assert f"inbox assign {waiting['id']} MH-100001 --as rejection" in alert.body

    assert _ingest(desk, message)["duplicate"] is True  # the same message again: still one alert
    assert len(_alerts(desk)) == 1
    assert _submission(desk).state == SubmissionState.SENT  # no clock until a person decides
    timeline = [
        e["action"] for e in _cli_json(desk, "case", "show", "MH-100001")["submissions"][0]["timeline"]
    ]
    assert "needs-review" in timeline


def test_assign_as_rejection_starts_the_correction_clock_from_the_arrival(desk: Env) -> None:
    row = _ingest(desk, _dwp_mail(desk, HALF_REJECTION))
    arrived = SENT_AT + timedelta(days=1)
    with Session(_engine(desk)) as session:
        message = session.get(InboundMessage, row["id"])
        assert message is not None
        message.received_at = arrived  # it came in yesterday; the person decides today
        session.add(message)
        session.commit()

    applied = _cli_json(desk, "inbox", "assign", str(row["id"]), "MH-100001", "--as", "rejection")
    assert applied["applied_as"] == "rejection" and applied["state"] == "assigned"

    sub = _submission(desk)
    assert sub.state == SubmissionState.REJECTED and sub.rejected_at == arrived
    with Session(_engine(desk)) as session:
        [clock] = session.exec(select(Clock).where(Clock.kind == "correction")).all()
    assert clock.started_at == arrived
    assert _cli_json(desk, "inbox") == []
    mi = _cli_json(desk, "report", "mi")
    assert mi["needs_review"]["total"] == 1 and mi["needs_review"]["as_rejection"] == 1
    assert mi["needs_review"]["open"] == 0


def test_assign_as_acknowledgement_meets_no_correction_clock(desk: Env) -> None:
    row = _ingest(desk, _dwp_mail(desk, "Noted, thank you for your plan.\n"))
    assert row["state"] == "needs_review"
    _cli_json(desk, "inbox", "assign", str(row["id"]), "MH-100001", "--as", "acknowledgement")
    sub = _submission(desk)
    assert sub.state == SubmissionState.ACKNOWLEDGED and sub.acknowledged_at is not None
    with Session(_engine(desk)) as session:
        assert session.exec(select(Clock).where(Clock.kind == "correction")).all() == []


def test_dismiss_records_who_decided_it_was_nothing(desk: Env) -> None:
    row = _ingest(desk, _dwp_mail(desk, "Please confirm the customer's start date.\n"))
    assert row["state"] == "needs_review"
    assert _cli_json(desk, "inbox", "dismiss", str(row["id"]))["state"] == "dismissed"
    with Session(_engine(desk)) as session:
        [event] = session.exec(
            select(AuditEvent).where(AuditEvent.entity == "message", AuditEvent.action == "dismissed")
        ).all()
    assert event.actor.startswith("cli:") and event.to_state == "dismissed"
    again = desk.run("inbox", "dismiss", str(row["id"]))  # decided already: one line, nothing changes
    assert again.code == 1 and len(again.err.strip().splitlines()) == 1 and "dismissed" in again.err
    assert _cli_json(desk, "inbox") == []
    mi = _cli_json(desk, "report", "mi")["needs_review"]
    assert mi == {**mi, "total": 1, "dismissed": 1, "open": 0}
    timeline = [
        e["action"] for e in _cli_json(desk, "case", "show", "MH-100001")["submissions"][0]["timeline"]
    ]
    assert timeline[-2:] == ["needs-review", "review-dismissed"]


def test_a_bulletin_naming_no_case_stays_ignored(desk: Env) -> None:
    bulletin = _dwp_mail(
        desk,
        "Reports that need amending must be returned within 5 working days.\n",
        threaded=False,
        subject="MHSS provider bulletin: December",
        headers=(("Precedence", "bulk"), ("List-Unsubscribe", "<mailto:leave@dwp.gov.uk>")),
    )
    assert _ingest(desk, bulletin)["state"] == "ignored"
    assert _alerts(desk) == []


def test_an_out_of_office_stays_ignored(desk: Env) -> None:
    ooo = _dwp_mail(
        desk,
        "I am out of the office until Monday with limited access to email.\n",
        subject="Automatic reply: MHSS Support Plan - MH-100001",
        headers=(("Auto-Submitted", "auto-replied"),),
    )
    assert _ingest(desk, ooo)["state"] == "ignored"
    assert _alerts(desk) == []


def test_untrusted_mail_is_quarantined_not_reviewed(desk: Env) -> None:
    forged = _dwp_mail(desk, HALF_REJECTION, name="forged.eml")
    forged.write_bytes(forged.read_bytes().replace(b"mx.provider.example;", b"mx.attacker.example;"))
    assert _ingest(desk, forged)["state"] == "ignored"
    assert _alerts(desk) == []


def test_parse_shows_the_cues_and_why_a_person_must_read_it(desk: Env) -> None:
    view = _cli_json(desk, "parse", str(_dwp_mail(desk, HALF_REJECTION)))
    assert view["kind"] == "other"
    assert view["cues"] and view["review"]


def test_a_rejection_matching_two_submissions_waits_for_a_person(desk: Env) -> None:
    pdf = desk.root / "plan2.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    assert desk.run("submit", str(pdf), "--case", "MH-100001", "--type", "six-month-report").code == 0
    with Session(_engine(desk)) as session:
        for sub in session.exec(select(Submission)).all():
            sub.state, sub.sent_at = SubmissionState.SENT, SENT_AT
            session.add(sub)
        session.commit()
    rejection = _dwp_mail(
        desk,
        "The report for case MH-100001 has been returned for rework. Please amend and resubmit.\n",
        threaded=False,
        subject="MHSS report - MH-100001",
    )
    row = _ingest(desk, rejection)
    assert row["state"] == "needs_review"
    [waiting] = _cli_json(desk, "inbox")
    assert waiting["kind"] == "rejection" and waiting["review"].startswith("a rejection, but")
    assert len(_alerts(desk)) == 1
    with Session(_engine(desk)) as session:
        assert session.exec(select(Clock).where(col(Clock.kind) == "correction")).all() == []
