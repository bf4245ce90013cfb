"""What the outbox writes after each attempt: sent (with the relay's reply), deferred with backoff, failed
with one team alert, or partly delivered. A part of Outbox, which supplies the settings, engine and clocks.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from mailroom.core.claims import Claim
from mailroom.core.config import Settings
from mailroom.core.retry import RetryPolicy
from mailroom.core.states import SENT_UNCONFIRMED, SubmissionState
from mailroom.service.claim_owners import gone_owners
from mailroom.service.clocks import ClockKeeper
from mailroom.service.notices import alert_team
from mailroom.store import audit, queries
from mailroom.store.engine import transaction
from mailroom.store.models import Case, Document, Notice, Submission
from outbox.errors import (
    PartialDelivery,
    RelayUnavailable,
    SendError,
    SessionRefused,
    TransientSendError,
    UnconfirmedSend,
)
from outbox.types import SendReceipt

# One logger for the whole outbox: these records are its second half.
log = logging.getLogger("mailroom.service.sending")
ACTOR = "daemon:outbox"


class StorageUnavailable(TransientSendError):
    """A report's stored document could not be decrypted (the secret key gone, gpg broken): a fault of
    this machine, not of the report or the relay. Logged once as an outage; each report waits its backoff."""


class SendRecords:
    settings: Settings
    engine: Any
    now: Callable[[], datetime]
    clocks: ClockKeeper
    retry: RetryPolicy
    owner: str  # this daemon's instance id on its claims

    def record_sent(self, sent: list[tuple[Claim, SendReceipt]]) -> None:
        """Record a group of sends (see GroupCommits) in one commit, and start their clocks."""
        now = self.now()
        with transaction(self.engine) as session:
            loaded = load_rows(session, [claim for claim, _ in sent])
            # Only a resend can confirm an earlier attempt: first attempts cost no query.
            resent = [c.id for c, _ in sent if c.table == "submission" and c.attempt > 1]
            unconfirmed = queries.unconfirmed_attempts(session, resent)
            reports = [
                report
                for claim, receipt in sent
                if (
                    report := self._record_one_sent(
                        session, claim, receipt, now=now, confirms=unconfirmed.get(claim.id, [])
                    )
                )
                is not None
            ]
            self.clocks.on_reports_sent(session, reports, now=now)
            for report in reports:
                self._apply_early_reply(session, report, now=now)
            del loaded
        for claim, receipt in sent:
            confirms = unconfirmed.get(claim.id, []) if claim.table == "submission" else []
            log.info(
                "%s %d sent as %s: %s %s%s",
                claim.table,
                claim.id,
                claim.message_id,
                receipt.code,
                receipt.text[:100],
                f" (confirms {SENT_UNCONFIRMED} attempt {_attempts(confirms)})" if confirms else "",
            )

    def _record_one_sent(
        self,
        session: Session,
        claim: Claim,
        receipt: SendReceipt,
        *,
        now: datetime,
        confirms: list[int],
    ) -> Submission | None:
        """Mark one row sent; returns the submission whose clocks now start (None for a notice)."""
        reply = f"{receipt.code} {receipt.text}".strip()
        row = self._claimed_row(session, claim)
        if row is None:
            return None
        row.last_smtp_code, row.last_smtp_text = receipt.code, receipt.text[:1024]
        row.sent_reply = reply[:1024]
        row.sent_at = now
        row.lease_until = None
        row.next_attempt_at = None
        detail: dict[str, Any] = {
            "message_id": claim.message_id,
            "reply": reply[:200],
            "attempt": claim.attempt,
        }
        if isinstance(row, Notice):
            move_notice(session, row, "sent", now=now, action="sent", detail=detail)
            return None
        if confirms:
            detail["confirms"] = confirms
            detail["note"] = (
                f"confirmed: attempt {_attempts(confirms)} was {SENT_UNCONFIRMED}; the relay may also "
                "have delivered that copy, with the same Message-ID"
            )
        queries.move_submission(
            session, row, SubmissionState.SENT, now=now, actor=ACTOR, action="sent", detail=detail
        )
        return row

    def _apply_early_reply(self, session: Session, sub: Submission, *, now: datetime) -> None:
        """DWP's reply was read while this send was still unrecorded (an instant automated response, and
        sends are recorded a group at a time): the inbox noted it, and it takes effect now."""
        early = {"note": "the reply arrived before the send was recorded"}
        if sub.rejected_at is not None:
            queries.move_submission(
                session,
                sub,
                SubmissionState.REJECTED,
                now=now,
                actor=ACTOR,
                action="rejected",
                detail={**early, "reasons": list(sub.rejection_reasons)},
            )
            self.clocks.on_rejected(session, sub, at=sub.rejected_at)
        elif sub.acknowledged_at is not None:
            queries.move_submission(
                session,
                sub,
                SubmissionState.ACKNOWLEDGED,
                now=now,
                actor=ACTOR,
                action="acknowledged",
                detail=early,
            )
            self.clocks.on_reply(session, sub, at=now)

    def record_partial(self, claim: Claim, error: PartialDelivery) -> str:
        if not error.accepted:
            return self.record_failure(claim, error)
        receipt = SendReceipt(
            message_id=claim.message_id,
            accepted=error.accepted,
            refused=error.refused,
            code=error.code or 250,
            text=error.text or "",
        )
        self.record_sent([(claim, receipt)])
        refused = ", ".join(f"{addr} ({code})" for addr, (code, _text) in error.refused.items())
        with transaction(self.engine) as session:
            self._alert(session, claim, f"some recipients refused the message: {refused}")
        return "sent"

    def record_failure(self, claim: Claim, error: SendError) -> str:
        now = self.now()
        with transaction(self.engine) as session:
            row = self._claimed_row(session, claim)
            if row is None:
                return "deferred"
            row.last_smtp_code = error.code
            row.last_smtp_text = (error.text or str(error))[:1024]
            row.lease_until = None
            detail: dict[str, Any] = {"attempt": claim.attempt, "code": error.code, "error": str(error)[:300]}
            queued_at = row.queued_at if isinstance(row, Submission) and row.queued_at else row.created_at
            # A refused session (login, TLS) is the relay's or our configuration's fault, not the report's:
            # keep retrying within the queue lifetime, as for a temporary failure.
            retry_at = (
                self.retry.next_attempt(attempts=claim.attempt, queued_at=queued_at, now=now)
                if isinstance(error, TransientSendError | SessionRefused)
                else None
            )
            unconfirmed = isinstance(error, UnconfirmedSend)
            if retry_at is not None:
                row.next_attempt_at = retry_at
                detail["retry_at"] = retry_at.isoformat()
                # Cut or timed out after DATA: the relay may have the report. Same state and retry as any
                # temporary failure, but the timeline must not read as "not delivered".
                action = SENT_UNCONFIRMED if unconfirmed else "deferred"
                if unconfirmed:
                    detail["note"] = "the relay may have it; resent with the same Message-ID until a 250"
                self._move(session, row, "deferred", now=now, action=action, detail=detail)
                outcome, shown = "deferred", action
            else:
                row.next_attempt_at = None
                if isinstance(error, TransientSendError | SessionRefused):
                    detail["note"] = "gave up: queue lifetime exceeded"
                problem = f"sending failed: {error}"
                if isinstance(row, Submission):
                    earlier = queries.unconfirmed_attempts(session, [claim.id]).get(claim.id, [])
                    maybe = [*earlier, claim.attempt] if unconfirmed else earlier
                    if maybe:
                        # "Not delivered" would be wrong: ask DWP before anyone sends it again.
                        detail["unconfirmed_attempts"] = maybe
                        problem += (
                            f"; attempt {_attempts(maybe)} may nevertheless have reached DWP "
                            f"({SENT_UNCONFIRMED}, Message-ID {claim.message_id})"
                        )
                self._move(session, row, "failed", now=now, action="failed", detail=detail)
                if isinstance(row, Submission):
                    row.failed_at = now
                    self._alert(session, claim, problem)
                outcome = shown = "failed"
        # No session (refused or unavailable) is logged once for the whole outage (OutageLog); each row
        # deferred by it only at DEBUG, or a relay outage would log a WARNING per report per pass.
        session_wide = isinstance(error, SessionRefused | RelayUnavailable | StorageUnavailable)
        level = logging.DEBUG if session_wide and outcome == "deferred" else logging.WARNING
        log.log(level, "%s %d %s: %s", claim.table, claim.id, shown, error)
        return outcome

    def _claimed_row(self, session: Session, claim: Claim) -> Submission | Notice | None:
        row: Submission | Notice | None = (
            session.get(Submission, claim.id)
            if claim.table == "submission"
            else session.get(Notice, claim.id)
        )
        if row is None or row.state != "sending" or row.attempts != claim.attempt:
            # Someone else took it over after our lease ran out; their record wins.
            log.warning("%s %d changed hands while it was being sent; not recording", claim.table, claim.id)
            return None
        return row

    def hand_back_orphans(self, session: Session, *, now: datetime) -> Counter[str]:
        """Claims whose owner is gone (killed, crashed, an earlier boot) go back now, not after the lease;
        counted by owner, for the caller to log once committed."""
        recovered: Counter[str] = Counter()
        subs = session.exec(
            select(Submission).where(
                Submission.state == SubmissionState.SENDING, col(Submission.claimed_by).is_not(None)
            )
        ).all()
        notices = session.exec(
            select(Notice).where(Notice.state == "sending", col(Notice.claimed_by).is_not(None))
        ).all()
        rows: list[Submission | Notice] = [*subs, *notices]
        gone = gone_owners(session, {row.claimed_by or "" for row in rows}, me=self.owner)
        for row in rows:
            owner = gone.get(row.claimed_by or "")
            if owner is None:
                continue
            row.lease_until, row.next_attempt_at, row.claimed_by = None, now, None
            who = f"pid {owner.pid} on {owner.host}"
            detail = {"note": "resent after a crash (owner gone)", "message_id": row.message_id, "owner": who}
            self._move(session, row, "queued", now=now, action="owner-gone", detail=detail)
            recovered[who] += 1
        return recovered

    def _move(self, session: Session, row: Submission | Notice, target: str, **kw: Any) -> None:
        if isinstance(row, Notice):
            move_notice(session, row, target, **kw)
        else:
            queries.move_submission(session, row, SubmissionState(target), actor=ACTOR, **kw)

    def _alert(self, session: Session, claim: Claim, problem: str) -> None:
        """Tell the provider team, with the case reference only; alerts about alerts are only logged."""
        if claim.table != "submission":
            return
        sub = queries.get_submission(session, claim.id)
        alert_team(
            session,
            self.settings,
            self.clocks.wording,
            now=self.now(),
            submission=sub,
            case=queries.case_by_id(session, sub.case_id),
            headline="was not delivered",
            problem=problem,
        )


def _attempts(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def move_notice(
    session: Session,
    notice: Notice,
    target: str,
    *,
    now: datetime,
    action: str,
    detail: dict[str, Any] | None = None,
) -> None:
    current = notice.state
    notice.state = target
    session.add(notice)
    audit.record(
        session,
        at=now,
        actor=ACTOR,
        entity="notice",
        entity_id=notice.id,
        action=action,
        from_state=current,
        to_state=target,
        detail=detail,
    )


def load_rows(session: Session, claims: list[Claim], *, with_report_details: bool = False) -> list[Any]:
    """Load the claimed rows (and, for composing, their documents and cases) with one query per table, so
    that the `session.get` calls that follow are answered from the session's identity map. The caller
    holds the returned list while it works: the identity map keeps only objects referred to elsewhere."""
    loaded: list[Any] = []
    for table, model in (("submission", Submission), ("notice", Notice)):
        ids = [claim.id for claim in claims if claim.table == table]
        if ids:
            loaded += session.exec(select(model).where(col(model.id).in_(ids))).all()
    submissions = [row for row in loaded if isinstance(row, Submission)]
    if with_report_details and submissions:
        document_ids = {sub.document_id for sub in submissions}
        case_ids = {sub.case_id for sub in submissions}
        loaded += session.exec(select(Document).where(col(Document.id).in_(document_ids))).all()
        loaded += session.exec(select(Case).where(col(Case.id).in_(case_ids))).all()
    return loaded
