"""`report mi`'s figures computed in the database: counts by GROUP BY, never a row loaded per submission.

The result is exactly `mailroom.core.mi.summarise` over the same submissions (tests/unit/store/test_mi.py
compares them field by field on SQLite and PostgreSQL). Two columns are still read row by row, because
their figure is not a plain aggregate: each acknowledgement's delay, as whole microseconds computed in SQL
(the median needs every value, and microseconds keep the hours bit-for-bit what Python's timedelta gives),
and the rejection reasons of rejected submissions only (a JSON list each, counted in id order).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from mailroom.store.models import InboundMessage, Submission

_S = Submission.__table__  # type: ignore[attr-defined]
_M = InboundMessage.__table__  # type: ignore[attr-defined]


def _range(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    where = []
    if start is not None:
        where.append(column >= start)
    if end is not None:
        where.append(column < end)
    return where


def _count_if(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _delay_microseconds(dialect: str, later: Any, earlier: Any) -> Any:
    """`later - earlier` in whole microseconds, exactly (no floating point on either database)."""
    if dialect == "postgresql":
        return sa.cast(sa.extract("epoch", later - earlier) * 1_000_000, sa.BigInteger)

    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds by strftime, the fraction by substr.
    def micros(column: Any) -> Any:
        seconds = sa.cast(sa.func.strftime("%s", column), sa.Integer)
        return seconds * 1_000_000 + sa.cast(sa.func.substr(column, 21, 6), sa.Integer)

    return micros(later) - micros(earlier)


def submission_summary(
    session: Session,
    start: datetime | None,
    end: datetime | None,
    reason_labels: Mapping[str, str],
) -> dict[str, Any]:
    """Submissions created in [start, end): the same dict as `core.mi.summarise`."""
    connection = session.connection()
    within = _range(_S.c.created_at, start, end)
    grouped = connection.execute(
        sa.select(
            _S.c.report_type,
            _S.c.state,
            sa.func.count(),
            _count_if(_S.c.sent_at.is_not(None)),
            _count_if(_S.c.supersedes_id.is_not(None)),
            _count_if(_S.c.rejected_at.is_not(None)),
        )
        .where(*within)
        .group_by(_S.c.report_type, _S.c.state)
    ).all()
    delays = connection.execute(
        sa.select(_delay_microseconds(connection.dialect.name, _S.c.acknowledged_at, _S.c.sent_at)).where(
            *within, _S.c.sent_at.is_not(None), _S.c.acknowledged_at.is_not(None)
        )
    ).scalars()
    # The same arithmetic as timedelta.total_seconds() / 3600: an exact int / 10**6, then / 3600.
    ack_hours = [int(us) / 10**6 / 3600 for us in delays]
    reasons: Counter[str] = Counter()
    for codes in connection.execute(
        sa.select(_S.c.rejection_reasons).where(*within, _S.c.rejected_at.is_not(None)).order_by(_S.c.id)
    ).scalars():
        reasons.update(codes or ())
    submissions = sent = resubmissions = rejected = 0
    sent_by_type: Counter[str] = Counter()
    states: Counter[str] = Counter()
    for report_type, state, n, n_sent, n_resub, n_rejected in grouped:
        submissions += int(n)
        sent += int(n_sent)
        resubmissions += int(n_resub)
        rejected += int(n_rejected)
        states[state] += int(n)
        if n_sent:
            sent_by_type[report_type] += int(n_sent)
    return {
        "submissions": submissions,
        "sent": sent,
        "sent_by_type": dict(sent_by_type),
        "resubmissions": resubmissions,
        "states": dict(states),
        "acknowledged": len(ack_hours),
        "not_acknowledged": sent - len(ack_hours),
        "acknowledgement_hours_median": round(statistics.median(ack_hours), 2) if ack_hours else None,
        "acknowledgement_hours_max": round(max(ack_hours), 2) if ack_hours else None,
        "rejected": rejected,
        "rejections_by_reason": {
            code: {"label": reason_labels.get(code, code), "count": n} for code, n in reasons.most_common()
        },
    }


def review_summary(session: Session, start: datetime | None, end: datetime | None) -> dict[str, int]:
    """Messages sent to needs_review, received in [start, end): as `core.mi.summarise_reviews`."""
    rows = session.connection().execute(
        sa.select(_M.c.state, _M.c.applied_as, sa.func.count())
        .where(_M.c.review.is_not(None), *_range(_M.c.received_at, start, end))
        .group_by(_M.c.state, _M.c.applied_as)
    )
    total = open_ = 0
    resolved: Counter[str] = Counter()
    for state, applied_as, n in rows:
        total += int(n)
        if state == "needs_review":
            open_ += int(n)
        else:
            resolved[f"as_{applied_as}" if applied_as else state] += int(n)
    return {
        "total": total,
        "open": open_,
        "as_rejection": resolved["as_rejection"],
        "as_acknowledgement": resolved["as_acknowledgement"],
        "as_bounce": resolved["as_bounce"],
        "assigned": resolved["assigned"],
        "dismissed": resolved["dismissed"],
    }
