"""Matching decides from evidence and never guesses: table tests over the pure core."""

from __future__ import annotations

import pytest

from mailroom.core.matching import Candidate, Method, OpenSubmission, decide, needs_open_submissions

M = Method


@pytest.mark.parametrize(
    ("candidates", "open_subs", "named", "expected"),
    [
        # Threading on our own Message-ID wins, even when a case ref is also in the text.
        ([Candidate(M.IN_REPLY_TO, 1, 10), Candidate(M.CASE_REF, 1)], [], [], (1, 10, M.IN_REPLY_TO)),
        ([Candidate(M.SUBJECT_TOKEN, 1, 11)], [], [], (1, 11, M.SUBJECT_TOKEN)),
        ([Candidate(M.DSN_ORIGINAL, 2, 20)], [], [], (2, 20, M.DSN_ORIGINAL)),
        # A case ref alone: the one report DWP could be talking about.
        ([Candidate(M.CASE_REF, 1)], [OpenSubmission(10, "support-plan", 1)], [], (1, 10, M.CASE_REF)),
        # Two versions of one report type: the latest sent.
        (
            [Candidate(M.NINO, 1)],
            [OpenSubmission(10, "exit-report", 1), OpenSubmission(12, "exit-report", 5)],
            [],
            (1, 12, M.NINO),
        ),
        # Two report types, and the notice names one.
        (
            [Candidate(M.CASE_REF, 1)],
            [OpenSubmission(10, "support-plan", 1), OpenSubmission(11, "exit-report", 2)],
            ["exit-report"],
            (1, 11, M.CASE_REF),
        ),
    ],
)
def test_evidence_that_agrees_matches(
    candidates: list[Candidate],
    open_subs: list[OpenSubmission],
    named: list[str],
    expected: tuple[object, ...],
) -> None:
    match = decide(candidates, open_subs, report_types_named=named)
    assert match.matched and (match.case_id, match.submission_id, match.method) == expected
    assert match.trace


@pytest.mark.parametrize(
    ("candidates", "open_subs", "problem"),
    [
        ([], [], "no reference"),
        ([Candidate(M.IN_REPLY_TO, 1, 10), Candidate(M.CASE_REF, 2)], [], "2 different cases"),
        ([Candidate(M.CASE_REF, 1), Candidate(M.NINO, 3)], [], "2 different cases"),
        ([Candidate(M.REFERENCES, 1, 10), Candidate(M.SUBJECT_TOKEN, 1, 11)], [], "more than one submission"),
        ([Candidate(M.CASE_REF, 1)], [], "no sent submission"),
        (
            [Candidate(M.CASE_REF, 1)],
            [OpenSubmission(10, "support-plan", 1), OpenSubmission(11, "exit-report", 2)],
            "does not say which",
        ),
    ],
)
def test_anything_else_goes_to_a_person(
    candidates: list[Candidate], open_subs: list[OpenSubmission], problem: str
) -> None:
    match = decide(candidates, open_subs)
    assert not match.matched
    assert match.problem and problem in match.problem


def test_open_submissions_are_fetched_only_for_one_case_without_a_strong_link() -> None:
    assert needs_open_submissions([Candidate(M.CASE_REF, 1), Candidate(M.NINO, 1)])
    assert not needs_open_submissions([Candidate(M.CASE_REF, 1), Candidate(M.NINO, 2)])
    assert not needs_open_submissions([Candidate(M.IN_REPLY_TO, 1, 10)])
