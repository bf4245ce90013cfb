"""DWP's rejection of a report we are still resending (its last attempt sent-unconfirmed): the rejection
applies at once, the resend stops, and the correction clock runs from the rejection's arrival."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, select

from mailroom.core.deadlines import ClockKind, ClockState
from mailroom.core.states import SubmissionState
from mailroom.store.models import Clock, Submission
from tests.support import rows
from tests.support.inbox import fresh_inbox

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mail" / "rej-01-threaded-plain.eml"
SENT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_a_rejection_of_a_report_being_resent_applies_and_stops_the_resend(tmp_path: Path) -> None:
    mailroom, inbox = fresh_inbox(tmp_path)
    with Session(mailroom.engine) as session:
        rows.add_report(
            session,
            case_ref="MH-100201",
            number=201,
            state=SubmissionState.DEFERRED,  # the last attempt was cut after DATA: sent-unconfirmed
            at=SENT,
            message_id="<20261123.S-000201.49a7@provider.example>",
            attempts=1,
            next_attempt_at=SENT,
        )
        session.commit()
    raw = SAMPLE.read_bytes()
    reading = inbox.read(raw)
    arrived = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    inbox.ingest(raw, mailbox="test", received_at=arrived, reading=reading)
    with Session(mailroom.engine) as session:
        sub = session.get(Submission, 201)
        assert sub is not None and sub.state == SubmissionState.REJECTED
        assert sub.rejection_reasons == ["employment-status-missing", "spelling-grammar"]
        [clock] = session.exec(select(Clock).where(Clock.submission_id == 201)).all()
        assert (clock.kind, clock.state) == (ClockKind.CORRECTION, ClockState.RUNNING)
        assert clock.started_at == arrived
    mailroom.engine.dispose()
