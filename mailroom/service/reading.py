"""Reading a raw message before anything is stored: parse, classify, judge trust. Pure apart from settings,
so `mailroom parse` shows exactly what ingest will see.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from mailroom.core.config import Settings
from parsers.classify import classify
from parsers.errors import MalformedMessage
from parsers.message import parse_message
from parsers.nino import find_ninos
from parsers.refs import find_case_refs, find_submission_tokens, searchable_text
from parsers.trust import assess_trust
from parsers.types import Classification, ClassifyPolicy, Kind, ParsedMessage, TrustVerdict


@dataclass(frozen=True)
class Reading:
    """Everything learned from the message before touching the database: pure values."""

    parsed: ParsedMessage | None
    classification: Classification
    trust: TrustVerdict
    message_id: str
    sha256: str
    problem: str | None = None


def classify_policy(settings: Settings) -> ClassifyPolicy:
    """The built-in wording, with the site's additions from `[classify]`."""
    extra = settings.classify
    base = ClassifyPolicy()
    reasons = dict(base.reason_phrases)
    for code, phrases in extra.reason_phrases.items():
        reasons[code] = (*reasons.get(code, ()), *phrases)
    return ClassifyPolicy(
        ack_senders=settings.dwp.ack_senders,
        reason_phrases=reasons,
        rejection_phrases=base.rejection_phrases + extra.rejection_phrases,
        rejection_subjects=base.rejection_subjects + extra.rejection_subjects,
        acknowledgement_phrases=base.acknowledgement_phrases + extra.acknowledgement_phrases,
        out_of_office_phrases=base.out_of_office_phrases + extra.out_of_office_phrases,
        hedge_phrases=base.hedge_phrases + extra.hedge_phrases,
        bulletin_phrases=base.bulletin_phrases + extra.bulletin_phrases,
        outcome_cues=base.outcome_cues + extra.outcome_cues,
        action_cues=base.action_cues + extra.action_cues,
        # "Six Month Report", "Support Plan": the site's report types name what a rejection is about.
        report_words=base.report_words + tuple(re.escape(t.label) for t in settings.report_types),
    )


def read_message(raw: bytes, settings: Settings, policy: ClassifyPolicy) -> Reading:
    """Parse, classify and judge trust: pure, so `mailroom parse` shows exactly what ingest would see."""
    sha = hashlib.sha256(raw).hexdigest()
    try:
        parsed = parse_message(raw)
    except MalformedMessage as exc:
        unreadable = Classification(Kind.OTHER, (), ("malformed",), detail=str(exc))
        return Reading(
            None,
            unreadable,
            TrustVerdict(False, "unreadable message"),
            f"<{sha}@unreadable>",
            sha,
            problem=f"malformed message: {exc}",
        )
    classification = classify(parsed, policy)
    trust = assess_trust(
        parsed,
        trusted_domains=settings.dwp.trusted_domains,
        authserv_ids=settings.trust.authserv_ids,
        require_authentication=settings.trust.require_authentication,
    )
    return Reading(parsed, classification, trust, parsed.message_id or f"<{sha}@no-message-id>", sha)


def reading_view(reading: Reading, settings: Settings) -> dict[str, Any]:
    """`mailroom parse --json` (design.md §8)."""
    msg, c = reading.parsed, reading.classification
    text = searchable_text(msg) if msg else ""
    return {
        "kind": str(c.kind),
        "trusted": reading.trust.trusted,
        "trust_reason": reading.trust.reason,
        "sender": msg.sender if msg else None,
        "subject": msg.subject if msg else None,
        "message_id": msg.message_id if msg else None,
        "in_reply_to": msg.in_reply_to if msg else None,
        "references": list(msg.references) if msg else [],
        "case_refs": list(find_case_refs(text, settings.matching.case_ref_pattern)),
        "submission_tokens": list(find_submission_tokens(msg.subject)) if msg else [],
        "has_nino": bool(find_ninos(text)),
        "reasons": list(c.reasons),
        "rules": list(c.rules),
        "cues": list(c.cues),
        # What ingest would do with it if it is trusted DWP mail about one of our cases.
        "review": c.review,
        "dsn": {
            "action": c.dsn.action,
            "permanent": c.dsn.permanent,
            "status": c.dsn.status,
            "recipients": list(c.dsn.recipients),
            "original_message_id": c.dsn.original_message_id,
            "diagnostic": c.dsn.diagnostic,
            "reader": c.dsn.reader,
        }
        if c.dsn
        else None,
        "dwp_reference": c.dwp_reference,
        "detail": reading.problem or c.detail,
        "defects": list(msg.defects) if msg else [],
    }
