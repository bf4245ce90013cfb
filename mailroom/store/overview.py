"""Aggregate reads for the operator's view (`mailroom status`, the daily digest, the metrics).

Counts are computed in SQL, never by loading rows; lists name case references and ids only. Every
function reads in the caller's session and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from mailroom.core.deadlines import ClockState
from mailroom.core.states import InboundState, SubmissionState
from mailroom.store.models import (
    Case,
    Clock,
    DaemonInstance,
    Digest,
    Escalation,
    InboundMessage,
    Notice,
    Submission,
)

BREACHED = (ClockState.BREACHED, ClockState.ESCALATED)


@dataclass(frozen=True)
class DueClock:
    clock_id: int
    kind: str
    case_ref: str
    submission_id: int
    due_at: datetime
    state: str


@dataclass(frozen=True)
class Waiting:
    inbound_id: int
    kind: str
    case_ref: str | None
    received_at: datetime


@dataclass(frozen=True)
class Happened:
    case_ref: str
    submission_id: int | None
    what: str
    at: datetime


def submissions_by_state(session: Session) -> dict[str, int]:
    query = select(Submission.state, func.count()).group_by(Submission.state)
    return {state: int(n) for state, n in session.exec(query).all()}


def notices_by_state(session: Session) -> dict[str, int]:
    query = select(Notice.state, func.count()).group_by(Notice.state)
    return {state: int(n) for state, n in session.exec(query).all()}


def inbound_by_kind_and_state(session: Session) -> dict[tuple[str, str], int]:
    query = select(InboundMessage.kind, InboundMessage.state, func.count()).group_by(
        InboundMessage.kind, InboundMessage.state
    )
    return {(kind, state): int(n) for kind, state, n in session.exec(query).all()}


def clocks_by_kind_and_state(session: Session) -> dict[tuple[str, str], int]:
    query = select(Clock.kind, Clock.state, func.count()).group_by(Clock.kind, Clock.state)
    return {(kind, state): int(n) for kind, state, n in session.exec(query).all()}


def escalations_by_kind(session: Session, *, since: datetime | None = None) -> dict[str, int]:
    query = select(Escalation.kind, func.count()).group_by(Escalation.kind)
    if since is not None:
        query = query.where(col(Escalation.created_at) >= since)
    return {kind: int(n) for kind, n in session.exec(query).all()}


def clocks_due_by(session: Session, until: datetime) -> list[DueClock]:
    """Running clocks due at or before `until`, soonest first."""
    query = (
        select(Clock, Case.case_ref)
        .join(Case, col(Case.id) == Clock.case_id)
        .where(Clock.state == ClockState.RUNNING, col(Clock.due_at) <= until)
        .order_by(col(Clock.due_at), col(Clock.id))
    )
    return [_due(clock, ref) for clock, ref in session.exec(query).all()]


def count_breached_clocks(session: Session) -> int:
    """Clocks breached and not yet closed (escalated ones included)."""
    query = select(func.count()).select_from(Clock).where(col(Clock.state).in_(BREACHED))
    return int(session.exec(query).one())


def _due(clock: Clock, case_ref: str) -> DueClock:
    assert clock.id is not None
    return DueClock(clock.id, clock.kind, case_ref, clock.submission_id, clock.due_at, clock.state)


def waiting_for_review(session: Session) -> list[Waiting]:
    query = (
        select(InboundMessage, Case.case_ref)
        .join(Case, col(Case.id) == InboundMessage.case_id, isouter=True)
        .where(InboundMessage.state == InboundState.NEEDS_REVIEW)
        .order_by(col(InboundMessage.received_at), col(InboundMessage.id))
    )
    return [
        Waiting(message.id or 0, message.kind, ref, message.received_at)
        for message, ref in session.exec(query).all()
    ]


def count_waiting_for_review(session: Session) -> int:
    query = (
        select(func.count())
        .select_from(InboundMessage)
        .where(InboundMessage.state == InboundState.NEEDS_REVIEW)
    )
    return int(session.exec(query).one())


def failed_between(session: Session, since: datetime, until: datetime) -> list[Happened]:
    """Reports that failed in [since, until), oldest first."""
    query = (
        select(Submission, Case.case_ref)
        .join(Case, col(Case.id) == Submission.case_id)
        .where(
            Submission.state == SubmissionState.FAILED,
            col(Submission.failed_at) >= since,
            col(Submission.failed_at) < until,
        )
        .order_by(col(Submission.failed_at))
    )
    return [Happened(ref, sub.id, "failed", sub.failed_at or since) for sub, ref in session.exec(query).all()]


def escalated_between(session: Session, since: datetime, until: datetime) -> list[Happened]:
    query = (
        select(Escalation, Clock, Case.case_ref)
        .join(Clock, col(Clock.id) == Escalation.clock_id)
        .join(Case, col(Case.id) == Clock.case_id)
        .where(
            Escalation.kind == "escalation",
            col(Escalation.created_at) >= since,
            col(Escalation.created_at) < until,
        )
        .order_by(col(Escalation.created_at))
    )
    return [
        Happened(ref, clock.submission_id, f"escalated ({esc.level}, {clock.kind})", esc.created_at)
        for esc, clock, ref in session.exec(query).all()
    ]


def last_sent(session: Session) -> datetime | None:
    """When the relay last accepted anything of ours (a report or a notice)."""
    reports = session.exec(select(func.max(Submission.sent_at))).one()
    notices = session.exec(select(func.max(Notice.sent_at))).one()
    return max((t for t in (reports, notices) if t is not None), default=None)


def recent_instances(session: Session, *, limit: int = 10) -> Sequence[DaemonInstance]:
    query = select(DaemonInstance).order_by(col(DaemonInstance.heartbeat_at).desc()).limit(limit)
    return session.exec(query).all()


def last_digest(session: Session) -> Digest | None:
    return session.exec(select(Digest).order_by(col(Digest.day).desc()).limit(1)).first()
