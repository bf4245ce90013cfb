"""What a notice does to its submission once it is trusted and matched: an acknowledgement stops the
acknowledgement clock, a rejection starts the correction clock, a failed bounce fails the submission and
alerts the team. Each change is audited in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from mailroom.core.config import Settings
from mailroom.core.errors import Conflict
from mailroom.core.states import SUBMISSION_MOVES, SubmissionState
from mailroom.service.clocks import ClockKeeper
from mailroom.service.notices import alert_team
from mailroom.store import audit, queries
from mailroom.store.models import InboundMessage, Submission
from parsers.types import Classification, Kind

Now = Callable[[], datetime]


class NoticeEffects:
    def __init__(self, settings: Settings, clocks: ClockKeeper, now: Now) -> None:
        self.settings = settings
        self.clocks = clocks
        self.now = now

    def apply(
        self,
        session: Session,
        row: InboundMessage,
        sub: Submission,
        classification: Classification,
        *,
        at: datetime,
        actor: str,
    ) -> None:
        """The notice's effect on the submission and its clocks; a notice applied twice changes nothing."""
        kind = Kind(classification.kind)
        note = {"message": row.id}
        if kind == Kind.ACKNOWLEDGEMENT:
            self._acknowledge(session, sub, classification, at=at, actor=actor, note=note)
        elif kind == Kind.REJECTION:
            self._reject(session, sub, classification, at=at, actor=actor, note=note)
        elif kind == Kind.BOUNCE:
            self._bounce(session, sub, classification, at=at, actor=actor, note=note)

    def _acknowledge(
        self,
        session: Session,
        sub: Submission,
        c: Classification,
        *,
        at: datetime,
        actor: str,
        note: dict[str, Any],
    ) -> None:
        if sub.acknowledged_at is None:
            sub.acknowledged_at = at
            sub.dwp_reference = sub.dwp_reference or c.dwp_reference
        if sub.state == SubmissionState.SENT:
            queries.move_submission(
                session,
                sub,
                SubmissionState.ACKNOWLEDGED,
                now=self.now(),
                actor=actor,
                action="acknowledged",
                detail={**note, "dwp_reference": c.dwp_reference},
            )
        else:
            self.note(session, sub, "acknowledgement-noted", actor=actor, detail=note)
        self.clocks.on_reply(session, sub, at=at)

    def note(
        self, session: Session, sub: Submission, action: str, *, actor: str, detail: dict[str, Any]
    ) -> None:
        """A timeline entry for a notice that changes no state (noted, repeated, delayed)."""
        audit.record(
            session,
            at=self.now(),
            actor=actor,
            entity="submission",
            entity_id=sub.id,
            action=action,
            detail=detail,
        )

    def _reject(
        self,
        session: Session,
        sub: Submission,
        c: Classification,
        *,
        at: datetime,
        actor: str,
        note: dict[str, Any],
    ) -> None:
        if sub.state == SubmissionState.REJECTED:
            self.note(session, sub, "rejection-repeated", actor=actor, detail=note)
            return
        if sub.state == SubmissionState.SENDING:
            # Read before the outbox recorded the send: noted here, applied when the send is recorded.
            if sub.rejected_at is None:
                sub.rejected_at = at
                sub.rejection_reasons = list(c.reasons)
            reasons = {**note, "reasons": list(c.reasons)}
            self.note(session, sub, "rejection-noted", actor=actor, detail=reasons)
            return
        if SubmissionState.REJECTED not in _moves(sub):
            raise Conflict(f"submission {sub.id} is {sub.state}; a rejection cannot apply to it")
        sub.rejected_at = at
        sub.rejection_reasons = list(c.reasons)
        queries.move_submission(
            session,
            sub,
            SubmissionState.REJECTED,
            now=self.now(),
            actor=actor,
            action="rejected",
            detail={**note, "reasons": list(c.reasons)},
        )
        self.clocks.on_rejected(session, sub, at=at)

    def _bounce(
        self,
        session: Session,
        sub: Submission,
        c: Classification,
        *,
        at: datetime,
        actor: str,
        note: dict[str, Any],
    ) -> None:
        dsn = c.dsn
        action = dsn.action if dsn else "failed"
        detail = {
            **note,
            "action": action,
            "status": dsn.status if dsn else None,
            "diagnostic": (dsn.diagnostic or "")[:200] if dsn else None,
        }
        if action != "failed" or SubmissionState.FAILED not in _moves(sub):
            self.note(session, sub, f"delivery-{action}", actor=actor, detail=detail)
            return
        sub.failed_at = at
        queries.move_submission(
            session, sub, SubmissionState.FAILED, now=self.now(), actor=actor, action="bounced", detail=detail
        )
        self.clocks.on_failed(session, sub, at=at)
        alert_team(
            session,
            self.settings,
            self.clocks.wording,
            now=self.now(),
            submission=sub,
            case=queries.case_by_id(session, sub.case_id),
            headline="bounced",
            problem=" ".join(
                ["returned as undeliverable:", detail["status"] or "", detail["diagnostic"] or ""]
            ),
        )


def _moves(sub: Submission) -> frozenset[SubmissionState]:
    return SUBMISSION_MOVES[SubmissionState(sub.state)]
