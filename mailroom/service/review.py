"""People's decisions about inbound mail: the review queue, `inbox assign [--as KIND]` and `inbox dismiss`.

Mail lands here when the pipeline will not guess: trusted DWP mail about one of our cases that no rule read
with certainty (`needs_review`, with one alert to the team in the same transaction), untrusted notices
(`quarantined`) and notices that match nothing (`unmatched`). A person's decision applies the notice's
effects exactly as a match would, dated from the message's arrival, never from the decision.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from mailroom.core.config import Settings
from mailroom.core.errors import InputError
from mailroom.core.states import APPLICABLE_KINDS, InboundState
from mailroom.service.notice_effects import NoticeEffects
from mailroom.service.notices import alert_review
from mailroom.service.views import inbox_page
from mailroom.service.wording import Wording
from mailroom.store import queries
from mailroom.store.engine import transaction
from mailroom.store.listings import Page
from mailroom.store.models import Case, InboundMessage, Submission
from mailroom.store.readonly import ReadOnly
from parsers.types import NOTICE_KINDS, Classification, ClassifyPolicy, Kind

Now = Callable[[], datetime]
ACTOR = "daemon:inbox"


class ReviewDesk:
    def __init__(
        self, settings: Settings, engine: Any, now: Now, effects: NoticeEffects, wording: Wording
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.now = now
        self.effects = effects
        self.wording = wording

    def flag(self, session: Session, row: InboundMessage, reason: str, trace: str) -> None:
        """Put a message in the review queue and alert the team once, in the caller's transaction."""
        row.review = reason[:512]
        if trace:
            row.detail = trace[:2048]
        queries.move_inbound(
            session,
            row,
            InboundState.NEEDS_REVIEW,
            now=self.now(),
            actor=ACTOR,
            action="needs-review",
            detail={"review": row.review, "method": row.match_method},
        )
        case = queries.case_by_id(session, row.case_id) if row.case_id is not None else None
        sub = queries.get_submission(session, row.submission_id) if row.submission_id is not None else None
        if sub is not None:
            self._note(session, sub, "needs-review", actor=ACTOR, row=row)
        alert_review(
            session, self.settings, self.wording, now=self.now(), message=row, case=case, submission=sub
        )

    # -- a person's decisions ----------------------------------------------------------------------------

    def assign(
        self,
        message_id: int,
        case_ref: str,
        *,
        submission_id: int | None,
        actor: str,
        as_kind: str | None = None,
    ) -> InboundMessage:
        """A person says which case (and submission) a message is about, and optionally what it is; its
        effects apply as if it had matched, dated from its arrival."""
        if as_kind is not None and as_kind not in APPLICABLE_KINDS:
            raise InputError(f"--as must be one of {', '.join(APPLICABLE_KINDS)}, not {as_kind!r}")
        with transaction(self.engine) as session:
            row = _message(session, message_id)
            case = queries.require_case(session, case_ref)
            sub = self._submission(session, case, submission_id, row)
            row.case_id, row.submission_id, row.match_method, row.assigned_by = (
                case.id,
                sub.id,
                "assigned",
                actor,
            )
            row.applied_as = as_kind
            queries.move_inbound(
                session,
                row,
                InboundState.ASSIGNED,
                now=self.now(),
                actor=actor,
                action="assigned",
                detail={"case": case.id, "submission": sub.id, "as": as_kind},
            )
            kind = Kind(as_kind or row.kind)
            if kind in NOTICE_KINDS:
                reasons = tuple(row.reasons)
                if kind == Kind.REJECTION and not reasons:
                    reasons = (ClassifyPolicy.unknown_reason,)
                classification = Classification(kind, reasons, tuple(row.rules))
                self.effects.apply(session, row, sub, classification, at=row.received_at, actor=actor)
            elif row.review is not None:
                self._note(session, sub, "review-assigned", actor=actor, row=row)
            return row

    def dismiss(self, message_id: int, *, actor: str) -> InboundMessage:
        """A person decided the message is nothing to act on; the audit trail says who."""
        with transaction(self.engine) as session:
            row = _message(session, message_id)
            queries.move_inbound(
                session, row, InboundState.DISMISSED, now=self.now(), actor=actor, action="dismissed"
            )
            if row.review is not None and row.submission_id is not None:
                sub = queries.get_submission(session, row.submission_id)
                self._note(session, sub, "review-dismissed", actor=actor, row=row)
            return row

    def listing(self, *, state: str | None, after: int | None = None, limit: int = 50) -> Page[Any]:
        """`mailroom inbox`: a page of messages waiting for a person by default, or of those in `state`."""
        with ReadOnly.of_engine(self.engine) as reader:
            return inbox_page(reader, state=state, after=after, limit=limit)

    def _submission(
        self, session: Session, case: Case, submission_id: int | None, row: InboundMessage
    ) -> Submission:
        assert case.id is not None
        if submission_id is None and row.submission_id is not None:
            # Threading already said which submission; the person named the case it belongs to.
            known = queries.get_submission(session, row.submission_id)
            if known.case_id == case.id:
                return known
        if submission_id is not None:
            sub = queries.get_submission(session, submission_id)
            if sub.case_id != case.id:
                raise InputError(f"submission {submission_id} belongs to another case")
            return sub
        candidates = queries.open_submissions(session, case.id)
        if len(candidates) != 1:
            raise InputError(
                f"case {case.case_ref} has {len(candidates)} sent submissions; name one with --submission"
            )
        return candidates[0]

    def _note(
        self, session: Session, sub: Submission, action: str, *, actor: str, row: InboundMessage
    ) -> None:
        self.effects.note(session, sub, action, actor=actor, detail={"message": row.id, "review": row.review})


def _message(session: Session, message_id: int) -> InboundMessage:
    row = session.get(InboundMessage, message_id)
    if row is None:
        raise InputError(f"no inbound message {message_id}")
    return row
