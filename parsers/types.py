"""Typed values the parsers hand to the rest of the mailroom: frozen, hashable, easy to serialise.

Conventions:
- Message-IDs keep their angle brackets and their case exactly as sent (``"<20261123.S-000123.ab@host>"``),
  because that is how the outbox stores them and how In-Reply-To echoes them.
- Addresses (``sender``) are the addr-spec only, lower-cased; ``sender_domain`` follows the last "@".
- Header values are decoded (RFC 2047) text; header names keep the case they had on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from parsers.phrases import (
    DEFAULT_ACCEPTANCE_PHRASES,
    DEFAULT_ACK_SENDERS,
    DEFAULT_ACKNOWLEDGEMENT_PHRASES,
    DEFAULT_ACTION_CUES,
    DEFAULT_ACTION_HEDGES,
    DEFAULT_AUTOMATION_PHRASES,
    DEFAULT_BULLETIN_BODY_PHRASES,
    DEFAULT_BULLETIN_PHRASES,
    DEFAULT_HEDGE_PHRASES,
    DEFAULT_HISTORICAL_MARKERS,
    DEFAULT_OUT_OF_OFFICE_PHRASES,
    DEFAULT_OUTCOME_CUES,
    DEFAULT_REASON_PHRASES,
    DEFAULT_REJECTION_PHRASES,
    DEFAULT_REJECTION_SUBJECTS,
    DEFAULT_REPORT_WORDS,
    DEFAULT_RESUBMISSION_WORDS,
    freeze,
)

__all__ = [
    "NOTICE_KINDS",
    "Attachment",
    "Classification",
    "ClassifyPolicy",
    "DeliveryStatus",
    "Kind",
    "ParsedMessage",
    "TrustVerdict",
]


class Kind(StrEnum):
    """What an inbound message is, as far as the mailroom's rules care."""

    ACKNOWLEDGEMENT = "acknowledgement"
    REJECTION = "rejection"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    OTHER = "other"


# Kinds that change a submission's state when trusted and matched.
NOTICE_KINDS = frozenset({Kind.ACKNOWLEDGEMENT, Kind.REJECTION, Kind.BOUNCE})


@dataclass(frozen=True)
class Attachment:
    """A non-body part: a file, a delivery report, or an attached message.

    ``text`` is what the parsers could read from it: the text of a PDF, the decoded text of a text part, the
    subject and body of an attached message, or the fields of a delivery-status report. Empty when unreadable.
    """

    filename: str | None
    content_type: str
    data: bytes = field(repr=False)
    text: str = field(default="", repr=False)


@dataclass(frozen=True)
class ParsedMessage:
    """One inbound message, decoded. ``new_text`` is ``text`` without quoted history and signature."""

    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    sender: str
    sender_domain: str
    date: datetime | None
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    text: str = field(repr=False)
    new_text: str = field(repr=False)
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = ()
    raw_size: int = 0
    content_type: str = "text/plain"
    # Every addr-spec found in every From header; trust requires exactly one. Defaults to (sender,).
    from_addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.from_addresses and self.sender:
            object.__setattr__(self, "from_addresses", (self.sender,))

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def header_all(self, name: str) -> tuple[str, ...]:
        """Every value of header `name` (case-insensitive), top to bottom."""
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == wanted)


@dataclass(frozen=True)
class DeliveryStatus:
    """The outcome a delivery status notification reports (RFC 3464, or a non-standard bounce read as one).

    ``action`` is the most serious per-recipient action: "failed", "delayed", "delivered", "relayed" or
    "expanded". ``status`` is the enhanced status code (RFC 3463) such as "5.1.1", when known.
    """

    action: str
    status: str | None
    recipients: tuple[str, ...]
    original_message_id: str | None
    diagnostic: str | None
    # Which reader recognised it: "report" (RFC 3464), a mail system's name, or "smtp-reply".
    reader: str = "report"

    @property
    def permanent(self) -> bool:
        """A failure: the mail system gave up (whatever the status class). A delay is temporary."""
        return self.action == "failed"


@dataclass(frozen=True)
class TrustVerdict:
    """Whether a notice may change state, and one line saying why."""

    trusted: bool
    reason: str


@dataclass(frozen=True)
class Classification:
    """The kind of a message, Annex F reason codes (rejections only), the rules that fired (in order) and
    the cues that counted."""

    kind: Kind
    reasons: tuple[str, ...]
    rules: tuple[str, ...]
    dsn: DeliveryStatus | None = None
    dwp_reference: str | None = None
    detail: str = ""
    # The scored reading's cues that counted, e.g. ("outcome: not accepted", "action: resubmit").
    cues: tuple[str, ...] = ()
    # Why a person must read it if it is trusted DWP mail about one of our cases; None when the kind is
    # certain (an acknowledgement, rejection, bounce, delivery receipt or out-of-office).
    review: str | None = None


@dataclass(frozen=True)
class ClassifyPolicy:
    """The wording the classifier looks for. All phrases are case-insensitive regular expressions.

    This is configuration because the programme's wording changes by memo (domain.md §7): what the automated
    response says, how rejection notices are phrased, and the Annex F reason list.
    """

    reason_phrases: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: DEFAULT_REASON_PHRASES, hash=False
    )
    acknowledgement_phrases: tuple[str, ...] = DEFAULT_ACKNOWLEDGEMENT_PHRASES
    rejection_phrases: tuple[str, ...] = DEFAULT_REJECTION_PHRASES
    ack_senders: tuple[str, ...] = DEFAULT_ACK_SENDERS
    rejection_subjects: tuple[str, ...] = DEFAULT_REJECTION_SUBJECTS
    hedge_phrases: tuple[str, ...] = DEFAULT_HEDGE_PHRASES
    acceptance_phrases: tuple[str, ...] = DEFAULT_ACCEPTANCE_PHRASES
    resubmission_words: tuple[str, ...] = DEFAULT_RESUBMISSION_WORDS
    bulletin_phrases: tuple[str, ...] = DEFAULT_BULLETIN_PHRASES
    bulletin_body_phrases: tuple[str, ...] = DEFAULT_BULLETIN_BODY_PHRASES
    automation_phrases: tuple[str, ...] = DEFAULT_AUTOMATION_PHRASES
    out_of_office_phrases: tuple[str, ...] = DEFAULT_OUT_OF_OFFICE_PHRASES
    historical_markers: tuple[str, ...] = DEFAULT_HISTORICAL_MARKERS
    # The scored reading (parsers/cues.py): a negative outcome plus a requested action about a report.
    outcome_cues: tuple[str, ...] = DEFAULT_OUTCOME_CUES
    action_cues: tuple[str, ...] = DEFAULT_ACTION_CUES
    action_hedges: tuple[str, ...] = DEFAULT_ACTION_HEDGES
    report_words: tuple[str, ...] = DEFAULT_REPORT_WORDS
    # Reason code given to a rejection whose reasons match no phrase, so MI never loses a rejection.
    unknown_reason: str = "other"

    @classmethod
    def default(cls) -> ClassifyPolicy:
        """The built-in wording (Annex F reasons, DWP inbox as the acknowledgement sender)."""
        return cls()

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason_phrases", freeze(self.reason_phrases))
        object.__setattr__(self, "ack_senders", tuple(s.lower() for s in self.ack_senders))
        for pattern in self._all_patterns():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"classify policy: invalid regular expression {pattern!r}: {exc}") from None

    def _all_patterns(self) -> tuple[str, ...]:
        groups = (
            *self.reason_phrases.values(),
            self.acknowledgement_phrases,
            self.rejection_phrases,
            self.rejection_subjects,
            self.hedge_phrases,
            self.acceptance_phrases,
            self.resubmission_words,
            self.bulletin_phrases,
            self.bulletin_body_phrases,
            self.automation_phrases,
            self.out_of_office_phrases,
            self.historical_markers,
            self.outcome_cues,
            self.action_cues,
            self.action_hedges,
            self.report_words,
        )
        return tuple(pattern for group in groups for pattern in group)
