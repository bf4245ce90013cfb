"""The scored reading of a rejection (parsers/cues.py) and what a classification says a person must read."""

from __future__ import annotations

import pytest

from parsers.classify import classify
from parsers.cues import Cues, read_cues
from parsers.types import ClassifyPolicy, Kind
from tests.unit.parsers.mail import message

POLICY = ClassifyPolicy.default()
SENDER = "Sam Patel <sam.patel@dwp.gov.uk>"


@pytest.mark.parametrize(
    "body",
    [
        "Your report could not be accepted. Please correct it and return it to us.",
        "I'm afraid we are unable to approve the support plan. Could you amend it and send it again?",
        "The plan needs amending before it can be processed: please send an updated version.",
        "This progress update hasn't been signed off. Kindly revise the employment section and resubmit.",
        "Unfortunately the report doesn't meet the standard.\n\n- the font is wrong\n\nPlease fix this "
        "and send it back.",
        "Mae eich adroddiad wedi'i wrthod. Cywirwch yr adroddiad os gwelwch yn dda.",
    ],
)
def test_outcome_and_action_about_a_report_is_a_rejection(body: str) -> None:
    result = classify(message(body, sender=SENDER), POLICY)
    assert result.kind is Kind.REJECTION
    assert any(c.startswith("outcome: ") for c in result.cues)
    assert any(c.startswith("action: ") for c in result.cues)
    assert result.review is None


@pytest.mark.parametrize(
    ("body", "half"),
    [
        ("This report cannot be processed in its current form.", "a negative outcome"),
        ("Please amend the report and let us know when that is done.", "a request to correct"),
        ("Mae'r adroddiad wedi'i ddychwelyd.", "a negative outcome"),
    ],
)
def test_one_half_of_a_rejection_asks_for_a_person_and_starts_nothing(body: str, half: str) -> None:
    result = classify(message(body, sender=SENDER), POLICY)
    assert result.kind is Kind.OTHER
    assert result.review is not None and half in result.review


@pytest.mark.parametrize(
    "body",
    [
        "Reports will be returned if they do not meet the standard.",
        "The plan was rejected last month and is now accepted. Thank you for the corrections.",
        "Any reports that need amending are returned within 5 working days.",
        "If you need to resubmit, please use the same subject line.",
    ],
)
def test_hedged_cues_do_not_count(body: str) -> None:
    cues = read_cues(body, "RE: MHSS Support Plan", POLICY)
    assert not cues.rejection
    assert classify(message(body, sender=SENDER), POLICY).kind is not Kind.REJECTION


def test_quoted_history_is_not_read() -> None:
    body = (
        "Thanks, this version is fine.\n\n"
        "On Mon, 23 Nov 2026 at 10:00, DWP wrote:\n"
        "> Your report could not be accepted. Please correct it and return it to us.\n"
    )
    result = classify(message(body, sender=SENDER), POLICY)
    assert result.kind is not Kind.REJECTION
    assert not any(c.startswith("outcome: ") for c in result.cues)


def test_a_report_must_be_named_for_both_cues_to_be_a_rejection() -> None:
    cues = read_cues("We were unable to accept it. Please correct and resend.", "Hello", POLICY)
    assert cues.outcome and cues.action and not cues.report
    assert not cues.rejection and cues.partial


def test_cues_merge_without_repeats() -> None:
    merged = Cues(("rejected",), (), False) | Cues(("rejected", "sent back"), ("resubmit",), True)
    assert merged == Cues(("rejected", "sent back"), ("resubmit",), True)
    assert merged.describe() == (
        "outcome: rejected",
        "outcome: sent back",
        "action: resubmit",
        "report: named",
    )


def test_a_person_is_asked_in_our_words_only() -> None:
    # The review reason goes into the team's alert: no text of DWP's (which may name the customer).
    body = "Jane Doe's report (QQ123456C) cannot be processed in its current form."
    result = classify(message(body, sender=SENDER), POLICY)
    assert result.review is not None
    for words in ("Jane", "Doe", "QQ123456C", "current form"):
        assert words not in result.review


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ("I am out of the office until Monday.", (("Auto-Submitted", "auto-replied"),)),
        ("Thank you. This is an automated response: we have received your email.", ()),
    ],
)
def test_what_is_certain_needs_no_person(body: str, headers: tuple[tuple[str, str], ...]) -> None:
    result = classify(message(body, sender=SENDER, headers=headers), POLICY)
    assert result.kind in (Kind.AUTO_REPLY, Kind.ACKNOWLEDGEMENT)
    assert result.review is None


def test_mail_no_rule_reads_is_for_a_person() -> None:
    result = classify(message("Please confirm the customer's start date.", sender=SENDER), POLICY)
    assert result.kind is Kind.OTHER and result.review is not None
