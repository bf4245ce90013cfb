"""What kind of notice is this? An ordered rule table, evaluated in full so the trace says which rules fired.

The first rule that fires decides the kind; every rule that fired is recorded, in table order, so "why was
this treated as a rejection?" has an answer in the database. Quoted history never counts: rules read
``new_text`` (the part the sender wrote now), the subject, headers and attachment text.

Delivery reports are read before the table, as their own step (parsers/bounce.py): a bounce carries our own
report, whose words would match the rules below, so a delivery report is a bounce whatever it says. So is
an RFC 5965 abuse report: a complaint about our mail, never a notice.

Order matters and is deliberate (docs/classification.md explains each row):
- bulletins and "accepted after resubmission" before rejections, because both mention rejection;
- rejections before acknowledgements: a missed rejection is silent (the report looks accepted when the
  decision window closes), a wrong one is loud (a person sees an unexpected correction clock);
- DWP's automated acknowledgement before a person's out-of-office, which is before generic auto-replies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from parsers.autoreply import is_auto_submitted
from parsers.bounce import is_abuse_report, parse_dsn
from parsers.cues import Cues, read_cues
from parsers.refs import find_dwp_reference
from parsers.sentences import any_match, statements
from parsers.types import NOTICE_KINDS, Classification, ClassifyPolicy, DeliveryStatus, Kind, ParsedMessage

__all__ = ["FALLBACK", "RULES", "Facts", "Predicate", "classify", "statements"]

# A notice says what it has to say near the start; reading further only costs time on hostile input.
READ_LIMIT = 100_000
_FAILED_OR_DELAYED = frozenset({"failed", "delayed"})
# Mailing-list headers. List-Unsubscribe alone does not count: transactional senders add it too.
_LIST_HEADERS = ("List-Id", "List-Post")
# Subjects that echo an earlier message: a reply, or a machine answer quoting our own subject.
_REPLY_PREFIX = re.compile(
    r"^\s*(re|aw|sv|antw|automatic reply|auto-?reply|out of (the )?office|undeliverable)\s*:", re.IGNORECASE
)
_FORWARD_PREFIXES = re.compile(r"^(\s*(fw|fwd|wg|tr)\s*:)+", re.IGNORECASE)


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at, computed once per message."""

    msg: ParsedMessage
    policy: ClassifyPolicy
    # The new text, cut at READ_LIMIT characters.
    text: str
    auto_signal: str | None
    # Attachment texts that themselves state a rejection (a notice in a PDF, a forwarded notice).
    rejection_attachments: tuple[str, ...]
    # The scored reading of the new text, with an attachment's cues when the new text points at it.
    cues: Cues


Predicate = Callable[[Facts], bool]


def _is_bulletin(facts: Facts) -> bool:
    msg, policy = facts.msg, facts.policy
    if any(msg.header(name) is not None for name in _LIST_HEADERS):
        return True
    return any_match(policy.bulletin_phrases, msg.subject) or any_match(
        policy.bulletin_body_phrases, facts.text
    )


def _is_accepted_resubmission(facts: Facts) -> bool:
    msg, policy = facts.msg, facts.policy
    accepted = statements(facts.text, policy.acceptance_phrases, policy.hedge_phrases)
    # "The plan is now accepted, but the exit report needs amending: please resubmit it" is a rejection.
    return (
        bool(accepted)
        and not facts.cues.rejection
        and any_match(policy.resubmission_words, f"{msg.subject}\n{facts.text}")
    )


def _has_rejection_subject(facts: Facts) -> bool:
    subject = _FORWARD_PREFIXES.sub("", facts.msg.subject)
    # "RE: Rejected ..." is a conversation about an earlier notice, not a new one.
    return not _REPLY_PREFIX.match(subject) and any_match(facts.policy.rejection_subjects, subject)


def _has_rejection_statement(facts: Facts) -> bool:
    policy = facts.policy
    return bool(
        statements(facts.text, policy.rejection_phrases, policy.hedge_phrases, policy.historical_markers)
    )


def _has_rejection_attachment(facts: Facts) -> bool:
    return bool(facts.rejection_attachments)


def _has_rejection_cues(facts: Facts) -> bool:
    return facts.cues.rejection


def _is_dwp_inbox_acknowledgement(facts: Facts) -> bool:
    msg, policy = facts.msg, facts.policy
    if msg.sender not in policy.ack_senders:
        return False
    return facts.auto_signal is not None or any_match(policy.acknowledgement_phrases, facts.text)


def _is_out_of_office(facts: Facts) -> bool:
    msg = facts.msg
    return facts.auto_signal is not None and any_match(
        facts.policy.out_of_office_phrases, f"{msg.subject}\n{facts.text}"
    )


def _is_automated_acknowledgement(facts: Facts) -> bool:
    msg, policy = facts.msg, facts.policy
    if not any_match(policy.acknowledgement_phrases, facts.text):
        return False
    return facts.auto_signal is not None or any_match(
        policy.automation_phrases, f"{msg.sender}\n{facts.text}"
    )


def _is_auto_submitted(facts: Facts) -> bool:
    return facts.auto_signal is not None


RULES: tuple[tuple[str, Predicate, Kind], ...] = (
    ("bulletin", _is_bulletin, Kind.OTHER),
    ("accepted-after-resubmission", _is_accepted_resubmission, Kind.OTHER),
    ("rejection-subject", _has_rejection_subject, Kind.REJECTION),
    ("rejection-statement", _has_rejection_statement, Kind.REJECTION),
    ("rejection-in-attachment", _has_rejection_attachment, Kind.REJECTION),
    ("rejection-by-cues", _has_rejection_cues, Kind.REJECTION),
    ("dwp-inbox-acknowledgement", _is_dwp_inbox_acknowledgement, Kind.ACKNOWLEDGEMENT),
    ("out-of-office", _is_out_of_office, Kind.AUTO_REPLY),
    ("automated-acknowledgement", _is_automated_acknowledgement, Kind.ACKNOWLEDGEMENT),
    ("auto-submitted", _is_auto_submitted, Kind.AUTO_REPLY),
)
# Recorded only when no rule in the table fired.
FALLBACK = ("otherwise", Kind.OTHER)
# Rules whose kind is certain enough to file without a person, besides the notices themselves.
_CERTAIN_RULES = frozenset({"out-of-office"})
_REVIEW_REASONS = {
    "bulletin": "a bulletin, yet about one of our cases",
    "accepted-after-resubmission": "an acceptance after resubmission: check that nothing else is asked",
    "auto-submitted": "machine-sent, but neither DWP's acknowledgement nor an out-of-office",
}
_UNREAD = "not confidently an acknowledgement, rejection, bounce, bulletin or out-of-office"


def classify(msg: ParsedMessage, policy: ClassifyPolicy | None = None) -> Classification:
    """Kind, Annex F reasons (rejections only), DWP reference and the rules that fired, first one deciding."""
    dsn = parse_dsn(msg)
    if dsn is not None:
        return _delivery_report(dsn)
    if is_abuse_report(msg):
        return Classification(
            kind=Kind.OTHER,
            reasons=(),
            rules=("abuse-report",),
            detail="decided by abuse-report (RFC 5965 feedback report)",
            review="an abuse report (RFC 5965) about mail of ours",
        )
    facts = _facts(msg, policy or ClassifyPolicy.default())
    fired = [(name, kind) for name, predicate, kind in RULES if predicate(facts)] or [FALLBACK]
    decided_by, kind = fired[0]
    review = _review(decided_by, kind, facts.cues)
    return Classification(
        kind=kind,
        reasons=_reasons(facts) if kind is Kind.REJECTION else (),
        rules=tuple(name for name, _ in fired),
        dwp_reference=_dwp_reference(facts, kind),
        detail=_detail(decided_by, facts),
        cues=facts.cues.describe(),
        review=review,
    )


def _review(decided_by: str, kind: Kind, cues: Cues) -> str | None:
    """Why a person must read it (if it is trusted DWP mail about our case), or None when it is certain."""
    if kind in NOTICE_KINDS or decided_by in _CERTAIN_RULES:
        return None
    # Our own words only: the reason goes into the team's alert, and DWP's text may name the customer.
    if cues.outcome and not cues.action:
        return "half a rejection: a negative outcome, but no request to correct or resend"
    if cues.action and not cues.outcome:
        return "half a rejection: a request to correct or resend, but no negative outcome stated"
    if cues.outcome and cues.action:
        return "rejection cues, but no report named"
    return _REVIEW_REASONS.get(decided_by, _UNREAD)


def _facts(msg: ParsedMessage, policy: ClassifyPolicy) -> Facts:
    text = msg.new_text[:READ_LIMIT]
    texts = tuple(attachment.text[:READ_LIMIT] for attachment in msg.attachments if attachment.text)
    rejecting = tuple(
        t
        for t in texts
        if statements(t, policy.rejection_phrases, policy.hedge_phrases, policy.historical_markers)
    )
    cues = read_cues(text, msg.subject, policy)
    if cues.outcome or cues.action:
        # "The reviewer's comments are attached": the attachment may hold the other half. A returned
        # copy of our own report, attached to a message that says nothing of the kind, never counts.
        for attachment_text in texts:
            cues = cues | read_cues(attachment_text, msg.subject, policy)
    return Facts(msg, policy, text, is_auto_submitted(msg), rejecting, cues)


def _reasons(facts: Facts) -> tuple[str, ...]:
    """Reason codes whose phrases appear in the notice; the catch-all code when none does."""
    msg, policy = facts.msg, facts.policy
    # Attachments count only when they are the notice itself: a returned copy of our own report mentions
    # "employment status" and fonts without those being reasons.
    text = "\n".join((msg.subject, facts.text, *facts.rejection_attachments))
    found = tuple(code for code, phrases in policy.reason_phrases.items() if any_match(phrases, text))
    return found or (policy.unknown_reason,)


def _dwp_reference(facts: Facts, kind: Kind) -> str | None:
    if kind not in (Kind.ACKNOWLEDGEMENT, Kind.REJECTION):
        return None
    return find_dwp_reference(f"{facts.msg.subject}\n{facts.text}")


def _detail(rule: str, facts: Facts) -> str:
    parts = [f"decided by {rule}"]
    if facts.auto_signal:
        parts.append(f"machine-sent ({facts.auto_signal})")
    return "; ".join(parts)


def _delivery_report(dsn: DeliveryStatus) -> Classification:
    """A bounce (failed or delayed) or a delivery receipt: certain, and no other rule is read."""
    failed_or_delayed = dsn.action in _FAILED_OR_DELAYED
    rule = "delivery-failure" if failed_or_delayed else "delivery-receipt"
    words = f"{dsn.action} {dsn.status or ''}".rstrip()
    return Classification(
        kind=Kind.BOUNCE if failed_or_delayed else Kind.OTHER,
        reasons=(),
        rules=(rule,),
        dsn=dsn,
        detail=f"decided by {rule}; delivery report read by {dsn.reader}: {words}",
    )
