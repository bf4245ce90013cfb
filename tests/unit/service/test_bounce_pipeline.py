"""The bounce corpus through the whole inbound pipeline: every report linked to the right submission.

One SQLite store holds a case and a sent submission for every sample (case MH-14NNNN, submission NNNNN,
token S-04NNNN, sent when the sample's .json says). Each bounce is ingested as it would arrive; the store
then says which submission it was linked to, what became of it, and how many alerts went to the team.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, func, select

from mailroom.core.states import InboundState, SubmissionState
from mailroom.store.models import Clock, InboundMessage, Notice, Submission
from tests.support import rows
from tests.support.inbox import fresh_inbox

CORPUS = Path(__file__).resolve().parents[2] / "samples" / "bounces"
LINKED_BY_CONTENT = (
    "rfc822",
    "rfc822-headers",
    "quoted-headers",
    "message-id-in-text",
    "token-or-subject-in-text",
)


@dataclass(frozen=True)
class Outcome:
    name: str
    meta: dict[str, Any]
    expected_submission: int | None
    linked_to: int | None
    message_state: str
    submission_state: str | None
    alerts: int


def _number(token: str) -> int:
    return int(token.removeprefix("S-"))


def _populate(session: Session, samples: list[tuple[Path, dict[str, Any]]]) -> None:
    for _, meta in samples:
        if not meta["submission_token"]:
            continue
        number = _number(meta["submission_token"])
        sent = (
            datetime.fromisoformat(meta["sent_at"]) if meta["sent_at"] else datetime(2026, 11, 2, tzinfo=UTC)
        )
        message_id = meta["original_message_id"] or f"<{meta['submission_token']}.unknown@provider.example>"
        rows.add_report(session, case_ref=f"MH-1{number:05d}", number=number, at=sent, message_id=message_id)


def _ingest(root: Path, samples: list[tuple[Path, dict[str, Any]]]) -> list[Outcome]:
    """A fresh store with a sent submission for each sample, then each sample ingested as it would arrive."""
    mailroom, inbox = fresh_inbox(root)
    with Session(mailroom.engine) as session:
        _populate(session, samples)
        session.commit()
    results: list[Outcome] = []
    for path, meta in samples:
        raw = path.read_bytes()
        with Session(mailroom.engine) as session:
            alerts_before = _alerts(session)
        reading = inbox.read(raw)
        arrived = reading.parsed.date if reading.parsed else None
        result = inbox.ingest(raw, mailbox="corpus", received_at=arrived, reading=reading)
        expected = _number(meta["submission_token"]) if meta["submission_token"] else None
        with Session(mailroom.engine) as session:
            row = session.get(InboundMessage, result.inbound_id)
            assert row is not None
            sub = session.get(Submission, expected) if expected else None
            results.append(
                Outcome(
                    path.stem,
                    meta,
                    expected,
                    row.submission_id,
                    row.state,
                    sub.state if sub else None,
                    _alerts(session) - alerts_before,
                )
            )
    with Session(mailroom.engine) as session:
        corrections = session.exec(select(func.count()).select_from(Clock).where(Clock.kind == "correction"))
        assert corrections.one() == 0  # no bounce, however worded, starts a correction clock
    mailroom.engine.dispose()
    return results


def _samples() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, json.loads(path.with_suffix(".json").read_text(encoding="utf-8")))
        for path in sorted(CORPUS.glob("*.eml"))
    ]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> list[Outcome]:
    return _ingest(tmp_path_factory.mktemp("bounces"), _samples())


def _alerts(session: Session) -> int:
    query = select(func.count()).select_from(Notice).where(col(Notice.kind) == "alert")
    return int(session.exec(query).one())


def _bounces(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.meta["expect"] == "bounce"]


def test_figures(outcomes: list[Outcome]) -> None:
    carrying = [o for o in _bounces(outcomes) if o.meta["link"] in LINKED_BY_CONTENT]
    right = [o for o in carrying if o.linked_to == o.expected_submission]
    bare = [o for o in _bounces(outcomes) if o.meta["link"] not in LINKED_BY_CONTENT]
    print(f"\nlinked to the right submission: {len(right)}/{len(carrying)} of those that carry a link")
    print(f"bare reports (recipient only): {Counter(o.message_state for o in bare)}")
    print(f"message states: {Counter(o.message_state for o in _bounces(outcomes))}")
    assert [o.name for o in carrying if o.linked_to != o.expected_submission] == []


def test_a_permanent_failure_fails_its_report_and_alerts_once(outcomes: list[Outcome]) -> None:
    for o in _bounces(outcomes):
        if o.linked_to is None or o.linked_to != o.expected_submission:
            continue
        if o.meta["permanent"]:
            assert (o.submission_state, o.alerts) == (SubmissionState.FAILED, 1), o.name
        else:
            assert (o.submission_state, o.alerts) == (SubmissionState.SENT, 0), o.name


def test_a_bounce_for_the_dwp_inbox_is_never_filed_away(outcomes: list[Outcome]) -> None:
    dwp = [o for o in _bounces(outcomes) if o.meta["recipient"] == "accesstowork.mhss@dwp.gov.uk"]
    lost = [o.name for o in dwp if o.message_state in (InboundState.IGNORED, InboundState.UNMATCHED)]
    assert lost == []
    for o in dwp:
        if o.message_state == InboundState.NEEDS_REVIEW:
            assert o.alerts == 1, o.name


def test_look_alikes_fail_nothing(outcomes: list[Outcome]) -> None:
    others = [o for o in outcomes if o.meta["expect"] != "bounce"]
    assert others and all(o.submission_state in (None, SubmissionState.SENT) for o in others)


def test_a_bare_report_links_to_the_one_report_sent_to_the_dwp_inbox(tmp_path: Path) -> None:
    """Recipient and time only: with one report in flight to the DWP inbox, that is the one that failed."""
    bare = [
        (path, meta)
        for path, meta in _samples()
        if meta["expect"] == "bounce"
        and meta["link"] not in LINKED_BY_CONTENT
        and meta["recipient"] == "accesstowork.mhss@dwp.gov.uk"
    ]
    assert len(bare) >= 5
    for number, sample in enumerate(bare):
        root = tmp_path / str(number)
        root.mkdir()
        [outcome] = _ingest(root, [sample])
        assert outcome.linked_to == outcome.expected_submission, outcome.name
        want = (SubmissionState.FAILED, 1) if outcome.meta["permanent"] else (SubmissionState.SENT, 0)
        assert (outcome.submission_state, outcome.alerts) == want, outcome.name
