"""is_auto_submitted: the machine-sent signals of RFC 3834 and the headers real auto-responders add."""

from __future__ import annotations

import pytest

from parsers.autoreply import is_auto_submitted
from tests.unit.parsers.mail import OUR_SUBJECT, message


@pytest.mark.parametrize(
    ("header", "value", "signal"),
    [
        ("Auto-Submitted", "auto-replied", "auto-submitted=auto-replied"),
        (
            "Auto-Submitted",
            "Auto-Generated; owner-email=x@y",
            "auto-submitted=auto-generated; owner-email=x@y",
        ),
        ("X-Auto-Response-Suppress", "All", "x-auto-response-suppress=all"),
        ("Precedence", "bulk", "precedence=bulk"),
        ("Precedence", "junk", "precedence=junk"),
        ("Precedence", "auto_reply", "precedence=auto_reply"),
        ("X-Autoreply", "yes", "x-autoreply=yes"),
        ("X-Autorespond", "on", "x-autorespond=on"),
        (
            "X-MS-Exchange-Inbox-Rules-Loop",
            "jane@dwp.gov.uk",
            "x-ms-exchange-inbox-rules-loop=jane@dwp.gov.uk",
        ),
    ],
)
def test_header_signals(header: str, value: str, signal: str) -> None:
    assert is_auto_submitted(message(subject="Hello", headers=((header, value),))) == signal


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Auto-Submitted", "no"),
        ("Auto-Submitted", "No (a person wrote this)"),
        ("Precedence", "list"),
        ("Precedence", "first-class"),
        ("X-Autoreply", "no"),
    ],
)
def test_values_that_are_not_signals(header: str, value: str) -> None:
    assert is_auto_submitted(message(subject="Hello", headers=((header, value),))) is None


@pytest.mark.parametrize(
    "subject",
    [
        f"Automatic reply: {OUR_SUBJECT}",
        f"Out of Office: {OUR_SUBJECT}",
        "Auto-Reply: hello",
        "AutoReply: x",
        "Réponse automatique : x",
        "Out of the office",
    ],
)
def test_subject_signals(subject: str) -> None:
    signal = is_auto_submitted(message(subject=subject))
    assert signal is not None and signal.startswith("subject=")


def test_a_plain_reply_is_not_machine_sent() -> None:
    assert is_auto_submitted(message(subject=f"RE: {OUR_SUBJECT}")) is None


def test_header_signal_wins_over_subject_and_is_first_in_order() -> None:
    msg = message(
        subject="Automatic reply: x", headers=(("Precedence", "bulk"), ("Auto-Submitted", "auto-replied"))
    )
    assert is_auto_submitted(msg) == "auto-submitted=auto-replied"


def test_long_values_are_shortened_in_the_signal() -> None:
    signal = is_auto_submitted(message(headers=(("X-Autorespond", "x" * 500),)))
    assert signal is not None and len(signal) <= len("x-autorespond=") + 40
