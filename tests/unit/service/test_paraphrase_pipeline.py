"""The paraphrase corpus through the whole inbound pipeline: parse, classify, trust, match, effects.

Every case and sent submission the corpus refers to exists in one SQLite store; each message is ingested
as if it had arrived, and what happened is read back from the store: a correction clock, `needs_review`
with its team alert, or neither. The figures issue 11 asks for are printed and asserted.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, func, select

from mailroom.core.deadlines import ClockKind
from mailroom.core.states import InboundState
from mailroom.store.models import Clock, InboundMessage, Notice
from tests.support import rows
from tests.support.inbox import fresh_inbox

CORPUS = Path(__file__).resolve().parents[2] / "samples" / "paraphrase"
SENT_AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
OUR_ID = re.compile(r"<S-0(\d{5})\.[^>]+@provider\.example>")


@dataclass(frozen=True)
class Outcome:
    name: str
    expect: str
    expected: str
    state: str
    clock: bool
    alerts: int
    refers: bool  # names one of our cases or submissions, or answers our message


def _number(ref: str) -> int:
    """MH-131007 and S-031007 both name case and submission 31007."""
    return int(ref[-5:])


def _populate(session: Session, samples: list[tuple[Path, dict[str, Any]]]) -> None:
    """One case per reference and one sent submission per case, numbered as the corpus numbers tokens
    (MH-131007 is case and submission 31007, token S-031007), with our Message-ID where DWP quotes it."""
    message_ids: dict[int, str | None] = {}
    for path, meta in samples:
        for ref in [*meta["case_refs"], *filter(None, [meta["submission_token"]])]:
            message_ids.setdefault(_number(ref), None)
        for found in OUR_ID.finditer(path.read_text(encoding="utf-8", errors="replace")):
            message_ids[int(found.group(1))] = found.group(0)
    for number, message_id in sorted(message_ids.items()):
        message_id = message_id or f"<S-0{number:05d}.unquoted@provider.example>"
        rows.add_report(
            session, case_ref=f"MH-1{number:05d}", number=number, at=SENT_AT, message_id=message_id
        )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Outcome]]:
    root = tmp_path_factory.mktemp("paraphrase")
    mailroom, inbox = fresh_inbox(root)
    samples = [
        (path, json.loads(path.with_suffix(".json").read_text(encoding="utf-8")))
        for path in sorted(CORPUS.glob("*.eml"))
    ]
    with Session(mailroom.engine) as session:
        _populate(session, samples)
        session.commit()
    results: list[Outcome] = []
    for path, meta in samples:
        raw = path.read_bytes()
        with Session(mailroom.engine) as session:
            clocks_before, alerts_before = _corrections(session), _alerts(session)
        reading = inbox.read(raw)
        arrived = reading.parsed.date if reading.parsed else None
        result = inbox.ingest(raw, mailbox="corpus", received_at=arrived, reading=reading)
        with Session(mailroom.engine) as session:
            row = session.get(InboundMessage, result.inbound_id)
            assert row is not None
            results.append(
                Outcome(
                    path.stem,
                    meta["expect"],
                    meta["outcome"],
                    row.state,
                    _corrections(session) > clocks_before,
                    _alerts(session) - alerts_before,
                    bool(meta["case_refs"] or meta["submission_token"] or meta["threaded"]),
                )
            )
    yield results
    mailroom.engine.dispose()


def _corrections(session: Session) -> int:
    query = select(func.count()).select_from(Clock).where(Clock.kind == ClockKind.CORRECTION)
    return int(session.exec(query).one())


def _alerts(session: Session) -> int:
    return int(
        session.exec(select(func.count()).select_from(Notice).where(col(Notice.kind) == "alert")).one()
    )


def _table(outcomes: list[Outcome]) -> str:
    counts = Counter((o.expected, "clock" if o.clock else o.state) for o in outcomes)
    lines = [f"{'expected':<16} {'observed':<14} {'messages':>8}"]
    lines += [f"{e:<16} {s:<14} {n:>8}" for (e, s), n in sorted(counts.items())]
    return "\n".join(lines)


def test_the_corpus_is_big_enough(outcomes: list[Outcome]) -> None:
    kinds = Counter(o.expect for o in outcomes)
    assert kinds["rejection"] >= 60 and kinds["not_rejection"] >= 60


def test_figures(outcomes: list[Outcome]) -> None:
    rejections = [o for o in outcomes if o.expect == "rejection"]
    clocks = [o for o in outcomes if o.clock]
    true_clocks = [o for o in clocks if o.expect == "rejection"]
    missed = [o.name for o in rejections if not o.clock and o.state != InboundState.NEEDS_REVIEW]
    precision = len(true_clocks) / len(clocks)
    by_themselves = sum(o.clock for o in rejections) / len(rejections)
    print()
    print(_table(outcomes))
    print(f"clock starts: precision {precision:.0%} ({len(true_clocks)}/{len(clocks)})")
    print(f"rejections that neither start a clock nor reach needs_review: {len(missed)}")
    print(f"rejections that start the clock by themselves: {by_themselves:.0%}")
    assert [o.name for o in clocks if o.expect != "rejection"] == []
    assert missed == []
    assert by_themselves >= 0.9


def test_every_message_waiting_for_review_alerted_the_team_once(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        expected = 1 if outcome.state == InboundState.NEEDS_REVIEW else 0
        assert outcome.alerts == expected, outcome.name


def test_look_alikes_meant_for_a_person_reach_one(outcomes: list[Outcome]) -> None:
    # A DWP query or half a rejection about our case must not be filed away unseen. Mail that names none
    # of our cases (a meeting invitation, an MI reminder) is left in the inbox for people, as before.
    waiting = {InboundState.NEEDS_REVIEW, InboundState.UNMATCHED, InboundState.QUARANTINED}
    for_a_person = [o for o in outcomes if o.expected == "needs_review"]
    lost = [o.name for o in for_a_person if o.refers and o.state not in waiting]
    assert lost == []
    assert all(o.state == InboundState.IGNORED for o in for_a_person if not o.refers)


def test_acknowledgements_and_ignorable_mail_start_nothing(outcomes: list[Outcome]) -> None:
    quiet = [o for o in outcomes if o.expected in ("acknowledgement", "ignored")]
    assert quiet and not any(o.clock for o in quiet)
    assert [o.name for o in quiet if o.expected == "ignored" and o.state == InboundState.NEEDS_REVIEW] == []
