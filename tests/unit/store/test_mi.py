"""`report mi` in SQL (mailroom.store.mi) gives exactly what the pure summary (mailroom.core.mi) gives over
the same rows loaded one by one: a varied history, several date ranges, every field compared.
tests/integration/test_postgres_mi.py runs the same check on PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from mailroom.core.mi import ReviewFacts, SubmissionFacts, summarise, summarise_reviews
from mailroom.core.states import InboundState, SubmissionState
from mailroom.store import mi
from mailroom.store.engine import transaction
from mailroom.store.models import Case, Document, InboundMessage, Submission

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LABELS = {"F1": "Wrong font", "F2": "Missing signature"}
RANGES = [
    (None, None),
    (T0, None),
    (None, T0 + timedelta(days=200)),
    (T0 + timedelta(days=30), T0 + timedelta(days=60)),
    (T0 + timedelta(days=100), T0 + timedelta(days=465)),
    (T0 + timedelta(days=1000), T0 + timedelta(days=1001)),  # nothing in it
]


def _moment(rng: random.Random) -> datetime:
    return T0 + timedelta(seconds=rng.randrange(-30 * 86400, 400 * 86400), microseconds=rng.randrange(10**6))


def fill_history(engine: Engine, seed: int = 13, n: int = 600) -> None:
    rng = random.Random(seed)
    states = [s.value for s in SubmissionState]
    with transaction(engine) as session:
        case = Case(case_ref="MI-1", created_at=T0)
        session.add(case)
        session.flush()
        doc = Document(case_id=case.id or 0, sha256="0" * 64, size=1, created_at=T0)
        session.add(doc)
        session.flush()
        ids: list[int] = []
        for _ in range(n):
            created = _moment(rng)
            sent = created + timedelta(seconds=rng.randrange(0, 7200), microseconds=rng.randrange(10**6))
            sub = Submission(
                case_id=case.id or 0,
                document_id=doc.id or 0,
                report_type=rng.choice(["needs_assessment", "progress", "other"]),
                state=rng.choice(states),
                supersedes_id=rng.choice(ids) if ids and rng.random() < 0.2 else None,
                created_at=created,
            )
            if rng.random() < 0.8:
                sub.sent_at = sent
                if rng.random() < 0.7:
                    delay = timedelta(seconds=rng.randrange(0, 200_000), microseconds=rng.randrange(10**6))
                    sub.acknowledged_at = sent + delay
            if rng.random() < 0.05:  # an acknowledgement without a recorded send: not counted
                sub.acknowledged_at = created
            if rng.random() < 0.25:
                sub.rejected_at = sent + timedelta(days=1)
                sub.rejection_reasons = rng.sample(["F1", "F2", "F9"], rng.randrange(0, 3))
            elif rng.random() < 0.05:  # reasons without a rejection time: not counted
                sub.rejection_reasons = ["F1"]
            session.add(sub)
            session.flush()
            ids.append(sub.id or 0)
        inbound = [s.value for s in InboundState]
        for i in range(n // 3):
            state = rng.choice(inbound)
            session.add(
                InboundMessage(
                    mailbox="ingest",
                    message_id=f"<m{i}@dwp>",
                    raw_sha256=f"{i:064d}",
                    state=state,
                    kind="unknown",
                    review=rng.choice([None, "unclear wording"]),
                    applied_as=rng.choice([None, None, "rejection", "acknowledgement", "bounce"]),
                    received_at=_moment(rng),
                )
            )


def python_summary(engine: Engine, start: datetime | None, end: datetime | None) -> dict[str, object]:
    """Today's way, kept as the reference: every submission loaded, summarised by the pure core."""
    with transaction(engine) as session:
        query = select(Submission)
        reviews = select(InboundMessage).where(col(InboundMessage.review).is_not(None))
        if start is not None:
            query = query.where(col(Submission.created_at) >= start)
            reviews = reviews.where(col(InboundMessage.received_at) >= start)
        if end is not None:
            query = query.where(col(Submission.created_at) < end)
            reviews = reviews.where(col(InboundMessage.received_at) < end)
        facts = [
            SubmissionFacts(
                s.report_type,
                s.state,
                s.sent_at,
                s.acknowledged_at,
                s.rejected_at,
                tuple(s.rejection_reasons),
                s.supersedes_id is not None,
            )
            for s in session.exec(query.order_by(col(Submission.id))).all()
        ]
        review_facts = [ReviewFacts(m.state, m.applied_as) for m in session.exec(reviews).all()]
    return {**summarise(facts, LABELS), "needs_review": summarise_reviews(review_facts)}


def sql_summary(engine: Engine, start: datetime | None, end: datetime | None) -> dict[str, object]:
    with transaction(engine) as session:
        return {
            **mi.submission_summary(session, start, end, LABELS),
            "needs_review": mi.review_summary(session, start, end),
        }


def check_sql_matches_python(engine: Engine) -> None:
    fill_history(engine)
    nonempty = 0
    for start, end in RANGES:
        expected, found = python_summary(engine, start, end), sql_summary(engine, start, end)
        assert list(found) == list(expected)
        for field, value in expected.items():
            assert found[field] == value, (field, start, end)
        # the reasons' order too (most common first, ties in id order), as the report prints them
        assert list(found["rejections_by_reason"]) == list(expected["rejections_by_reason"])  # type: ignore[call-overload]
        nonempty += bool(expected["acknowledged"])
    assert nonempty >= 4  # the ranges really hold acknowledged reports, so the median is compared


def test_the_sql_summary_is_the_python_summary_on_sqlite(engine: Engine) -> None:
    check_sql_matches_python(engine)
