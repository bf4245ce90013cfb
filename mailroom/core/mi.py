"""Management information for the monthly Contract Performance Review (guidance ch.7 §7.03–7.06). Pure.

Counts what the provider can evidence: reports sent, how long DWP's automated acknowledgement took,
rejections by Annex F reason (a rejection delays payment), and what is still open.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SubmissionFacts:
    report_type: str
    state: str
    sent_at: datetime | None
    acknowledged_at: datetime | None
    rejected_at: datetime | None
    rejection_reasons: tuple[str, ...]
    resubmission: bool


def summarise(facts: Iterable[SubmissionFacts], reason_labels: Mapping[str, str]) -> dict[str, Any]:
    rows = list(facts)
    sent = [f for f in rows if f.sent_at]
    ack_hours = [
        (f.acknowledged_at - f.sent_at).total_seconds() / 3600
        for f in sent
        if f.acknowledged_at and f.sent_at
    ]
    reasons = Counter(code for f in rows if f.rejected_at for code in f.rejection_reasons)
    return {
        "submissions": len(rows),
        "sent": len(sent),
        "sent_by_type": dict(Counter(f.report_type for f in sent)),
        "resubmissions": sum(f.resubmission for f in rows),
        "states": dict(Counter(f.state for f in rows)),
        "acknowledged": len(ack_hours),
        "not_acknowledged": len(sent) - len(ack_hours),
        "acknowledgement_hours_median": round(statistics.median(ack_hours), 2) if ack_hours else None,
        "acknowledgement_hours_max": round(max(ack_hours), 2) if ack_hours else None,
        "rejected": sum(1 for f in rows if f.rejected_at),
        "rejections_by_reason": {
            code: {"label": reason_labels.get(code, code), "count": n} for code, n in reasons.most_common()
        },
    }


@dataclass(frozen=True)
class ReviewFacts:
    """A message that went to needs_review: where it is now, and what a person applied, if anything."""

    state: str
    applied_as: str | None


def summarise_reviews(facts: Iterable[ReviewFacts]) -> dict[str, int]:
    """How often DWP's wording escaped the rules, and how people resolved it."""
    rows = list(facts)
    resolved = Counter(
        f"as_{f.applied_as}" if f.applied_as else f.state for f in rows if f.state != "needs_review"
    )
    return {
        "total": len(rows),
        "open": sum(1 for f in rows if f.state == "needs_review"),
        "as_rejection": resolved["as_rejection"],
        "as_acknowledgement": resolved["as_acknowledgement"],
        "as_bounce": resolved["as_bounce"],
        "assigned": resolved["assigned"],
        "dismissed": resolved["dismissed"],
    }


def to_csv_rows(summary: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Flatten for a spreadsheet: (measure, detail, value)."""
    rows: list[tuple[str, str, str]] = []
    for key, value in summary.items():
        if isinstance(value, dict):
            for detail, item in value.items():
                count = item["count"] if isinstance(item, dict) else item
                rows.append((key, str(detail), str(count)))
        else:
            rows.append((key, "", "" if value is None else str(value)))
    return rows
