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
from types import MappingProxyType

__all__ = [
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


@dataclass(frozen=True)
class TrustVerdict:
    """Whether a notice may change state, and one line saying why."""

    trusted: bool
    reason: str


@dataclass(frozen=True)
class Classification:
    """The kind of a message, Annex F reason codes (rejections only) and the rules that fired, in order."""

    kind: Kind
    reasons: tuple[str, ...]
    rules: tuple[str, ...]
    dsn: DeliveryStatus | None = None
    dwp_reference: str | None = None
    detail: str = ""


def _frozen(mapping: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(dict(mapping))


# Annex F §5 reasons (domain.md §3), plus the format rules of Annex F §3 and a catch-all. Every entry is a
# regular expression matched case-insensitively; plain phrases work as long as they avoid regex characters.
DEFAULT_REASON_PHRASES: Mapping[str, tuple[str, ...]] = _frozen(
    {
        "incorrect-information": (
            r"\bincorrect (information|details?|dates?|names?)\b",
            r"\b(information|details?|dates?) (is|are|was|were) (incorrect|wrong|inaccurate)\b",
            r"\binaccura(te|cies)\b",
            r"\bfactual(ly)? (errors?|incorrect)\b",
        ),
        "employment-status-missing": (
            r"\bemployment status\b",
            r"\b(is|was) (or is not |still )?in (paid )?employment\b",
            r"\bconfirm\w* (of |that |whether )?(the )?customer('s)? (is|was|remains) (still )?(in )?"
            r"(employ|work)",
            r"\bno confirmation (of |whether |that )[^.\n]{0,40}\b(employ|work)",
        ),
        "spelling-grammar": (
            r"\bspelling\b",
            r"\bgramma(r|tical)\b",
            r"\btypo(s|graphical errors?)?\b",
            r"\bproof-?read",
        ),
        "support-not-justified": (
            r"\bsupport (is |was |has )?not (been )?(fully |sufficiently )?(justified|detailed)\b",
            r"\bnot (fully |sufficiently )?justified\b",
            r"\b(insufficient|no|lack of) justification\b",
        ),
        "progress-detail-missing": (
            r"\b(insufficient|not enough|too little|lack of|more|no) (detail|information) "
            r"(on|about|of|regarding) (the )?(customer's )?progress\b",
            r"\bprogress (made )?(during|in|over) the (support|sustainment) period\b",
        ),
        "benefit-not-explained": (
            r"\bhow the support (will|would|is going to) (help|benefit)\b",
            r"\bdoes not explain how\b",
            r"\bbenefits? (of the support )?(is |are |was |were |has |have )?not (been )?explained\b",
        ),
        "format": (
            r"\barial\b",
            r"\b12 ?(pt|point)\b",
            r"\bfonts?\b",
            r"\bplain (english|language)\b",
            r"\bjargon\b",
            r"\bformatting\b",
        ),
    }
)

# Sentences that state this report was rejected. Hedged mentions ("reports that ... will be returned",
# "if your report is rejected", "the previous version was rejected") are filtered by the hedge phrases.
DEFAULT_REJECTION_PHRASES: tuple[str, ...] = (
    # One adverb may sit in between ("has unfortunately been rejected"), but never a negation.
    r"\b(has|have) ((?!not\b|never\b)\w+ )?been (rejected|returned)\b",
    r"\b(is|are) ((?!not\b|never\b)\w+ )?being (rejected|returned)\b",
    r"\b(have|'ve) (rejected|returned) (it|this|the|your)\b",
    r"\b(was|were) ((?!not\b|never\b)\w+ )?(rejected|returned)\b",
    r"\breturned (to you )?for (re-?work|amendments?|corrections?)\b",
    # A person's own words: "I'm sending this plan back to you for changes".
    r"\b(sending|passing|handing|returning) (this|the|your) (\w+ ){0,3}(report|plan|submission|update|"
    r"document)s? back\b",
    r"\bback to you for (changes|amendments?|corrections?|re-?work|revisions?)\b",
    r"\breasons? for (the )?(rejection|return)\b",
    r"\brejected for the following reasons?\b",
    r"\b(does|do|did) not meet the (specified|required) standard\b",
    r"\b(cannot|can ?not|can't|are unable to|is unable to) accept (this|the|your) "
    r"(report|support plan|submission|\w+ month report|exit report|monthly update)\b",
    r"\brejection notice\b",
    # Terse notices: "Rejected - see reasons below", "Outcome: returned for rework".
    r"^\s*rejected\s*(-|:|\.|$)",
    r"\b(status|outcome|decision|result)\s*[:-]\s*(rejected|returned|not accepted)\b",
)
# Matched against the subject only (with any FW: prefixes removed; an RE: subject never counts).
DEFAULT_REJECTION_SUBJECTS: tuple[str, ...] = (
    r"\breject(ed|ion)\b",
    r"\breturned for re-?work\b",
    r"\bnot accepted\b",
)
# Words that, before a phrase in the same clause, make it conditional, general or historical.
DEFAULT_HEDGE_PHRASES: tuple[str, ...] = (
    r"\b(if|unless|whether|where|when|whenever|may|might|will|would|should|could|can)\b",
    r"\b(previous(ly)?|earlier|once)\b",
    r"\b(any|all) reports?\b",
    r"\breports? (that|which)\b",
    r"\bnot\b",
    r"\bhow to\b",
)
DEFAULT_ACCEPTANCE_PHRASES: tuple[str, ...] = (
    r"\b(has|have) (now )?been accepted\b",
    r"\b(is|are|was) (now )?accepted\b",
    r"\bnow meets? the (specified|required) standard\b",
)
DEFAULT_RESUBMISSION_WORDS: tuple[str, ...] = (
    r"\bre-?submi(tted|ssion|t)\b",
    r"\b(amended|revised|corrected)\b",
)
# Subject words of programme-wide mail; body phrases are kept few because a notice may mention a bulletin.
DEFAULT_BULLETIN_PHRASES: tuple[str, ...] = (
    r"\bbulletin\b",
    r"\bnewsletter\b",
    r"\blive running memo\b",
    r"\bprovider (update|briefing)\b",
)
DEFAULT_BULLETIN_BODY_PHRASES: tuple[str, ...] = (r"\b(sent )?to all (mhss |atw )?providers\b",)
DEFAULT_ACKNOWLEDGEMENT_PHRASES: tuple[str, ...] = (
    r"\bautomated (response|reply|acknowledge?ment|message)\b",
    r"\b(we|this (mailbox|inbox)) (have|has) (now )?received your (e-?mail|message|report|submission)\b",
    r"\byour (e-?mail|message|report|submission) has been received\b",
    r"\backnowledge (the )?receipt\b",
    r"\bconfirm(s|ation)? (of )?(that we have )?receipt\b",
)
# Self-declared automation, for acknowledgements that carry no machine-sent header at all.
DEFAULT_AUTOMATION_PHRASES: tuple[str, ...] = (
    r"\bautomat(ed|ic|ically)\b",
    r"\b(please )?do not reply\b",
    r"\bno-?reply@",
    r"\bunmonitored\b",
)
DEFAULT_OUT_OF_OFFICE_PHRASES: tuple[str, ...] = (
    r"\bout of (the )?office\b",
    r"\bon (annual |parental |maternity |paternity |sick |study )?leave\b",
    r"\baway from (my desk|the office|work)\b",
    r"\bI am (currently )?(away|out|off|not in)\b",
    r"\bI'm (currently )?(away|out|off|not in)\b",
    r"\b(I will|I'll) (be )?(back|return|respond|reply)\b",
    r"\blimited access to (my )?e-?mail\b",
    r"\breturn(ing)? to the office\b",
    r"\b(do not|don't) work on\b",
    r"\bnot working (today|on)\b",
)
DEFAULT_ACK_SENDERS: tuple[str, ...] = ("accesstowork.mhss@dwp.gov.uk",)


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
    # Reason code given to a rejection whose reasons match no phrase, so MI never loses a rejection.
    unknown_reason: str = "other"

    @classmethod
    def default(cls) -> ClassifyPolicy:
        """The built-in wording (Annex F reasons, DWP inbox as the acknowledgement sender)."""
        return cls()

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason_phrases", _frozen(self.reason_phrases))
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
        )
        return tuple(pattern for group in groups for pattern in group)
