"""Store rows for tests that need a case with a report in a given state, without the intake around it.

The ids are the caller's to choose (so a corpus can map MH-1NNNNN to submission NNNNN) or the database's.
Parents are flushed before children: the models map no relationships, so the unit of work would not order
them by itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from mailroom.core.states import SubmissionState
from mailroom.store.models import Case, Document, Submission

WHEN = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def add_report(
    session: Session,
    *,
    case_ref: str = "MH-100001",
    number: int | None = None,
    state: str = SubmissionState.SENT,
    at: datetime = WHEN,
    **fields: Any,
) -> Submission:
    """A new case, its document and one submission in `state`; `fields` set the submission's columns."""
    case = Case(id=number, case_ref=case_ref, created_at=at)
    session.add(case)
    session.flush()
    assert case.id is not None
    document = Document(id=number, case_id=case.id, sha256="0" * 64, size=1, created_at=at)
    session.add(document)
    session.flush()
    assert document.id is not None
    values: dict[str, Any] = {"report_type": "support-plan", "created_at": at}
    if state not in (SubmissionState.QUEUED, SubmissionState.RECEIVED):
        values.update(queued_at=at, sent_at=at if state == SubmissionState.SENT else None)
    values.update(fields)
    submission = Submission(id=number, case_id=case.id, document_id=document.id, state=state, **values)
    session.add(submission)
    session.flush()
    return submission
