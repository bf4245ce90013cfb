"""Queries and updates. Every function takes the Session first and never commits: the service owns the
transaction, so a state change and its audit event are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from mailroom.core.errors import NotFound
from mailroom.core.identity import case_ref_hash, erased_refusal, normalise_case_ref
from mailroom.core.states import (
    DELIVERED,
    SENT_UNCONFIRMED,
    InboundState,
    SubmissionState,
    require_inbound_move,
    require_submission_move,
)
from mailroom.store import audit
from mailroom.store.models import (
    AuditEvent,
    Case,
    Document,
    InboundMessage,
    Submission,
    Tombstone,
)


def get_case(session: Session, case_ref: str) -> Case | None:
    return session.exec(select(Case).where(Case.case_ref == normalise_case_ref(case_ref))).first()


def refuse_if_erased(session: Session, case_ref: str) -> None:
    """Conflict if this case was erased: nothing can be added or sent for it again."""
    tombstone = session.exec(
        select(Tombstone).where(Tombstone.case_ref_hash == case_ref_hash(case_ref))
    ).first()
    if tombstone is not None:
        raise erased_refusal(case_ref, tombstone.erased_at, tombstone.request_ref)


def require_case(session: Session, case_ref: str) -> Case:
    case = get_case(session, case_ref)
    if case is None:
        raise NotFound(f"no case {normalise_case_ref(case_ref)}")
    return case


def case_by_id(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"no case with id {case_id}")
    return case


def cases_by_nino_hmac(session: Session, digest: str) -> Sequence[Case]:
    return session.exec(select(Case).where(Case.nino_hmac == digest)).all()


def cases_by_refs(session: Session, case_refs: Sequence[str]) -> Sequence[Case]:
    if not case_refs:  # most mail names none: no query
        return []
    refs = [normalise_case_ref(r) for r in case_refs]
    return session.exec(select(Case).where(col(Case.case_ref).in_(refs)).order_by(col(Case.id))).all()


def count_rows(session: Session, model: type[Any]) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())


def get_submission(session: Session, submission_id: int) -> Submission:
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise NotFound(f"no submission {submission_id}")
    return submission


def inbound_at_uid(
    session: Session, mailbox: str, uidvalidity: int | None, uid: int
) -> InboundMessage | None:
    return session.exec(
        select(InboundMessage).where(
            InboundMessage.mailbox == mailbox,
            InboundMessage.uidvalidity == uidvalidity,
            InboundMessage.uid == uid,
        )
    ).first()


def inbound_by_message_id(session: Session, message_id: str) -> Sequence[InboundMessage]:
    return session.exec(select(InboundMessage).where(InboundMessage.message_id == message_id)).all()


def submission_by_message_id(session: Session, message_id: str) -> Submission | None:
    return session.exec(select(Submission).where(Submission.message_id == message_id)).first()


def list_submissions(session: Session, *, state: str | None = None) -> Sequence[Submission]:
    query = select(Submission).order_by(col(Submission.id))
    if state:
        query = query.where(Submission.state == state)
    return session.exec(query).all()


def submissions_for_case(session: Session, case_id: int) -> Sequence[Submission]:
    return session.exec(
        select(Submission).where(Submission.case_id == case_id).order_by(col(Submission.id))
    ).all()


def open_submissions(session: Session, case_id: int) -> Sequence[Submission]:
    """Submissions of the case a notice could still be about: delivered and not superseded."""
    delivered = [s.value for s in DELIVERED if s != SubmissionState.SUPERSEDED]
    return session.exec(
        select(Submission).where(Submission.case_id == case_id, col(Submission.state).in_(delivered))
    ).all()


def submissions_sent_between(session: Session, start: datetime, end: datetime) -> Sequence[Submission]:
    """Reports that left for DWP in [start, end] and could still fail: what a bare bounce may be about."""
    delivered = [s.value for s in DELIVERED if s != SubmissionState.SUPERSEDED]
    return session.exec(
        select(Submission)
        .where(col(Submission.state).in_(delivered))
        .where(col(Submission.sent_at) >= start, col(Submission.sent_at) <= end)
        .limit(2)
    ).all()


def latest_version(session: Session, case_id: int, report_type: str) -> int:
    value = session.exec(
        select(func.max(Submission.version)).where(
            Submission.case_id == case_id, Submission.report_type == report_type
        )
    ).one()
    return int(value or 0)


def add_audited(
    session: Session,
    row: Any,
    *,
    entity: str,
    action: str,
    now: datetime,
    actor: str,
    to_state: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Insert a new row and its audit event together (the row's id is known after this: flushed for it,
    unless the caller gave the row one from `row_ids`, when the INSERT waits for the next flush)."""
    session.add(row)
    if row.id is None:
        session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        entity=entity,
        entity_id=row.id,
        action=action,
        to_state=to_state,
        detail=detail,
    )


def move_submission(
    session: Session,
    submission: Submission,
    target: SubmissionState,
    *,
    now: datetime,
    actor: str,
    action: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Change a submission's state, refusing moves the state table does not allow, and audit it."""
    assert submission.id is not None
    current = submission.state
    require_submission_move(submission.id, current, target)
    submission.state = target
    session.add(submission)
    audit.record(
        session,
        at=now,
        actor=actor,
        entity="submission",
        entity_id=submission.id,
        action=action,
        from_state=current,
        to_state=target,
        detail=detail,
    )


def move_inbound(
    session: Session,
    message: InboundMessage,
    target: InboundState,
    *,
    now: datetime,
    actor: str,
    action: str,
    detail: dict[str, Any] | None = None,
) -> None:
    assert message.id is not None
    current = message.state
    require_inbound_move(message.id, current, target)
    message.state = target
    session.add(message)
    audit.record(
        session,
        at=now,
        actor=actor,
        entity="message",
        entity_id=message.id,
        action=action,
        from_state=current,
        to_state=target,
        detail=detail,
    )


def unconfirmed_attempts(session: Session, submission_ids: list[int]) -> dict[int, list[int]]:
    """The attempts of these submissions audited sent-unconfirmed (the relay may have them), by id."""
    if not submission_ids:
        return {}
    events = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.entity == "submission",
            col(AuditEvent.entity_id).in_(submission_ids),
            AuditEvent.action == SENT_UNCONFIRMED,
        )
        .order_by(col(AuditEvent.seq))
    ).all()
    found: dict[int, list[int]] = {}
    for event in events:
        assert event.entity_id is not None
        found.setdefault(event.entity_id, []).append(int(event.detail.get("attempt", 0)))
    return found


def document_for(session: Session, submission: Submission) -> Document:
    document = session.get(Document, submission.document_id)
    if document is None:
        raise NotFound(f"submission {submission.id} has no document")
    return document


def submission_by_intake_ref(session: Session, intake_ref: str) -> Submission | None:
    return session.exec(select(Submission).where(Submission.intake_ref == intake_ref)).first()
