"""`report mi`: management information for the monthly review, read in one transaction.

A module of its own so the command needs only an engine (the store's aggregates in `store.mi`), not the
daemon's wiring, gpg or the writing services: a year's figures on a provider's whole history is mostly
the database's GROUP BY (issue 13).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from mailroom.store import mi
from mailroom.store.engine import transaction


def management_information(
    engine: sa.Engine, reasons: Mapping[str, str], start: date | None, end: date | None
) -> dict[str, Any]:
    """Submissions created in [start, end] (whole days, UTC), summarised, and the review desk's figures."""
    lower = datetime.combine(start, time(0), UTC) if start else None
    upper = datetime.combine(end + timedelta(days=1), time(0), UTC) if end else None
    with transaction(engine) as session:
        summary = mi.submission_summary(session, lower, upper, reasons)
        reviews = mi.review_summary(session, lower, upper)
    return {
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        **summary,
        "needs_review": reviews,
    }
