"""States of submissions and inbound messages, and the moves between them (design.md §3).

Pure: the store asks `require_transition` before it writes a new state, so a move the table does not list
can never reach the database. Clock states live in `mailroom.deadlines`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from mailroom.core.errors import InvalidTransition


class SubmissionState(StrEnum):
    RECEIVED = "received"
    PREFLIGHT_FAILED = "preflight_failed"
    QUEUED = "queued"
    SENDING = "sending"
    DEFERRED = "deferred"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    ACCEPTED = "accepted"  # the decision window closed with no rejection received; DWP sends no approval
    SUPERSEDED = "superseded"
    FAILED = "failed"
    HELD = "held"
    CANCELLED = "cancelled"


S = SubmissionState

SUBMISSION_MOVES: Mapping[SubmissionState, frozenset[SubmissionState]] = {
    S.RECEIVED: frozenset({S.QUEUED, S.PREFLIGHT_FAILED, S.HELD, S.CANCELLED}),
    S.PREFLIGHT_FAILED: frozenset({S.CANCELLED, S.HELD}),
    S.QUEUED: frozenset({S.SENDING, S.HELD, S.CANCELLED}),
    # A lease that expires puts `sending` back to `queued`; the same Message-ID is reused.
    # `sending → deferred` is also the move of an attempt that may have been delivered (cut or timed out
    # after DATA, no reply): audited SENT_UNCONFIRMED rather than `deferred`, retried alike, and the next
    # attempt's 250 (`deferred → sending → sent`) records that it confirms it.
    S.SENDING: frozenset({S.SENT, S.DEFERRED, S.FAILED, S.QUEUED}),
    # `deferred → rejected`: DWP's rejection of a report we are still resending (an attempt went
    # sent-unconfirmed, or a relay's 4xx came after it had passed the report on) proves DWP has it; DWP's
    # word wins, the resend stops and the correction clock runs from the rejection's arrival.
    S.DEFERRED: frozenset({S.SENDING, S.HELD, S.CANCELLED, S.FAILED, S.QUEUED, S.REJECTED}),
    S.SENT: frozenset({S.ACKNOWLEDGED, S.REJECTED, S.ACCEPTED, S.FAILED, S.SUPERSEDED}),
    S.ACKNOWLEDGED: frozenset({S.REJECTED, S.ACCEPTED, S.FAILED, S.SUPERSEDED}),
    # A late rejection after the decision window is still a rejection: DWP's word wins over our clock.
    S.ACCEPTED: frozenset({S.REJECTED, S.SUPERSEDED}),
    S.REJECTED: frozenset({S.SUPERSEDED}),
    S.FAILED: frozenset({S.QUEUED, S.CANCELLED, S.SUPERSEDED}),
    S.HELD: frozenset({S.QUEUED, S.CANCELLED}),
    S.SUPERSEDED: frozenset(),
    S.CANCELLED: frozenset(),
}

# The audit action (not a state) of an attempt the relay may have delivered: the submission stays
# `deferred` and is resent with the same Message-ID until a 250 confirms it (docs/sending.md, Fault matrix).
SENT_UNCONFIRMED = "sent-unconfirmed"

# States in which the outbox may still send the report.
SENDABLE = frozenset({S.QUEUED, S.DEFERRED})
# States that show the report reached DWP's inbox (or was at least handed to our relay with a 250).
DELIVERED = frozenset({S.SENT, S.ACKNOWLEDGED, S.REJECTED, S.ACCEPTED, S.SUPERSEDED})


class InboundState(StrEnum):
    NEW = "new"
    MATCHED = "matched"
    UNMATCHED = "unmatched"
    QUARANTINED = "quarantined"
    # Trusted DWP mail about one of our cases that no rule read with certainty: a person decides.
    NEEDS_REVIEW = "needs_review"
    IGNORED = "ignored"
    ASSIGNED = "assigned"
    DISMISSED = "dismissed"


I = InboundState  # noqa: E741 - a short alias for the table below
# States that wait for a person: `mailroom inbox` lists them by default.
WAITING = frozenset({I.UNMATCHED, I.QUARANTINED, I.NEEDS_REVIEW})

INBOUND_MOVES: Mapping[InboundState, frozenset[InboundState]] = {
    I.NEW: frozenset({I.MATCHED, I.UNMATCHED, I.QUARANTINED, I.NEEDS_REVIEW, I.IGNORED}),
    I.UNMATCHED: frozenset({I.ASSIGNED, I.DISMISSED}),
    I.QUARANTINED: frozenset({I.ASSIGNED, I.DISMISSED}),
    I.NEEDS_REVIEW: frozenset({I.ASSIGNED, I.DISMISSED}),
    I.MATCHED: frozenset(),
    I.IGNORED: frozenset({I.ASSIGNED, I.DISMISSED}),
    I.ASSIGNED: frozenset(),
    I.DISMISSED: frozenset(),
}


# The notice kinds a person may apply with `inbox assign --as` (parsers.types.Kind values).
APPLICABLE_KINDS = ("rejection", "acknowledgement", "bounce")


def require_submission_move(submission_id: int, current: str, target: SubmissionState) -> None:
    if target not in SUBMISSION_MOVES[SubmissionState(current)]:
        raise InvalidTransition("submission", submission_id, current, target)


def require_inbound_move(message_id: int, current: str, target: InboundState) -> None:
    if target not in INBOUND_MOVES[InboundState(current)]:
        raise InvalidTransition("message", message_id, current, target)
