"""Erasure requests (guidance memo 08 §8.33–8.49) and retention (ch.8): what personal data leaves, and how.

Files are deleted before the database change is committed: a crash in between leaves rows that point at
missing files, and running the command again finishes the job. What stays is a tombstone (a hash of the
case reference, dates, the request reference) and the audit trail, which never held personal data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailroom.core.deadlines import ClockState
from mailroom.core.errors import InputError
from mailroom.core.identity import case_ref_hash
from mailroom.core.states import SUBMISSION_MOVES, SubmissionState
from mailroom.service.clocks import close_clocks
from mailroom.store import audit, queries
from mailroom.store.models import Case, Document, InboundMessage, Notice, Submission, Tombstone

log = logging.getLogger(__name__)
Now = Callable[[], datetime]


@dataclass(frozen=True)
class ErasureResult:
    case_ref_hash: str
    documents: int
    messages: int
    cancelled: int


def erase_case(engine: sa.Engine, case_ref: str, *, request_ref: str, actor: str, now: Now) -> ErasureResult:
    if not request_ref.strip():
        raise InputError("--request-ref is required: the reference of the erasure request")
    with Session(engine) as session:
        case = queries.require_case(session, case_ref)
        assert case.id is not None
        files = _case_files(session, case.id)
    for path in files:
        Path(path).unlink(missing_ok=True)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        case = queries.require_case(session, case_ref)
        result = _erase_rows(session, case, request_ref=request_ref.strip(), actor=actor, now=now())
    _compact(engine)
    log.info(
        "case erased (request %s): %d documents, %d messages", request_ref, result.documents, result.messages
    )
    return result


def _case_files(session: Session, case_id: int) -> list[str]:
    documents = session.exec(select(Document.stored_path).where(Document.case_id == case_id)).all()
    messages = session.exec(select(InboundMessage.stored_path).where(InboundMessage.case_id == case_id)).all()
    return [p for p in (*documents, *messages) if p]


def _erase_rows(
    session: Session, case: Case, *, request_ref: str, actor: str, now: datetime
) -> ErasureResult:
    assert case.id is not None
    digest = case_ref_hash(case.case_ref)
    cancelled = 0
    for sub in queries.submissions_for_case(session, case.id):
        if (
            SubmissionState.CANCELLED in SUBMISSION_MOVES[SubmissionState(sub.state)]
            and sub.state != "failed"
        ):
            queries.move_submission(
                session, sub, SubmissionState.CANCELLED, now=now, actor=actor, action="cancelled-erased"
            )
            cancelled += 1
        assert sub.id is not None
        close_clocks(session, sub.id, None, ClockState.CANCELLED, at=now, why="case erased", actor=actor)
    documents = session.exec(select(Document).where(Document.case_id == case.id)).all()
    for document in documents:
        document.stored_path, document.purged_at = None, now
        session.add(document)
    messages = session.exec(select(InboundMessage).where(InboundMessage.case_id == case.id)).all()
    for message in messages:
        # Subjects and details may quote a name; the sender is DWP's address and stays for the evidence.
        message.stored_path, message.subject, message.detail = None, "", "erased"
        session.add(message)
    for notice in session.exec(select(Notice).where(Notice.case_id == case.id)).all():
        notice.subject, notice.body = "erased", ""
        session.add(notice)
    _scrub_digests(session, case.case_ref, f"ERASED-{case.id:06d}")
    session.add(
        Tombstone(
            case_ref_hash=digest, request_ref=request_ref, case_created_at=case.created_at, erased_at=now
        )
    )
    case.case_ref = f"ERASED-{case.id:06d}"
    case.atw_ref = case.prap_id = case.nino_hmac = None
    case.erased_at, case.erasure_request_ref = now, request_ref
    session.add(case)
    audit.record(
        session,
        at=now,
        actor=actor,
        entity="case",
        entity_id=case.id,
        action="case-erased",
        detail={"request_ref": request_ref, "documents": len(documents), "messages": len(messages)},
    )
    return ErasureResult(digest, len(documents), len(messages), cancelled)


def _scrub_digests(session: Session, case_ref: str, erased_ref: str) -> None:
    """A daily digest names many cases in one body: the erased one's reference is replaced, the rest kept."""
    whole = re.compile(rf"(?<![\w-]){re.escape(case_ref)}(?![\w-])")
    query = select(Notice).where(Notice.kind == "digest", col(Notice.body).contains(case_ref))
    for notice in session.exec(query).all():
        notice.body = whole.sub(erased_ref, notice.body)
        session.add(notice)


@dataclass(frozen=True)
class PurgeResult:
    documents: int
    messages: int
    cutoff: datetime


def purge(engine: sa.Engine, *, retention_days: int, actor: str, now: Now) -> PurgeResult:
    """Delete stored documents and raw messages older than the retention period; rows stay as evidence."""
    cutoff = now() - timedelta(days=retention_days)
    with Session(engine) as session:
        documents = session.exec(
            select(Document).where(col(Document.created_at) < cutoff, col(Document.stored_path).is_not(None))
        ).all()
        messages = session.exec(
            select(InboundMessage).where(
                col(InboundMessage.received_at) < cutoff, col(InboundMessage.stored_path).is_not(None)
            )
        ).all()
        # Never purge a report that may still be sent or resent.
        pending = set(
            session.exec(
                select(Submission.document_id).where(
                    col(Submission.state).in_([s.value for s in _STILL_NEEDED])
                )
            ).all()
        )
        doomed_docs = [d.id for d in documents if d.id not in pending]
        doomed_msgs = [m.id for m in messages]
        paths = [d.stored_path for d in documents if d.id in doomed_docs] + [m.stored_path for m in messages]
    for path in paths:
        if path:
            Path(path).unlink(missing_ok=True)
    with Session(engine) as session, session.begin():
        for doc_id in doomed_docs:
            document = session.get(Document, doc_id)
            assert document is not None
            document.stored_path, document.purged_at = None, now()
            session.add(document)
        for msg_id in doomed_msgs:
            message = session.get(InboundMessage, msg_id)
            assert message is not None
            message.stored_path = None
            session.add(message)
        audit.record(
            session,
            at=now(),
            actor=actor,
            entity="store",
            entity_id=None,
            action="purged",
            detail={
                "documents": len(doomed_docs),
                "messages": len(doomed_msgs),
                "cutoff": cutoff.isoformat(),
            },
        )
    return PurgeResult(len(doomed_docs), len(doomed_msgs), cutoff)


_STILL_NEEDED = frozenset(
    {
        SubmissionState.RECEIVED,
        SubmissionState.QUEUED,
        SubmissionState.SENDING,
        SubmissionState.DEFERRED,
        SubmissionState.HELD,
        SubmissionState.FAILED,
    }
)


def _compact(engine: sa.Engine) -> None:
    """SQLite: push the WAL into the main file and truncate it, so deleted values do not linger there."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # outside any transaction: a checkpoint cannot run inside one
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
