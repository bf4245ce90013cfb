"""strip_quoted_history: what the sender wrote now, without earlier messages, quotes or signature."""

from __future__ import annotations

import pytest

from parsers.quoting import strip_quoted_history

OUTLOOK_BLOCK = (
    "From: Provider Reports <reports@provider.example>\nSent: 23 November 2026 09:58\n"
    "To: Access to Work MHSS <accesstowork.mhss@dwp.gov.uk>\nSubject: MHSS Support Plan - MH-100001\n\n"
    "Please find attached. The previous one was rejected.\n"
)


@pytest.mark.parametrize(
    "text",
    [
        "New words.\n\n-----Original Message-----\n" + OUTLOOK_BLOCK,
        "New words.\n\n----- Original Message -----\n" + OUTLOOK_BLOCK,
        "New words.\n\n" + OUTLOOK_BLOCK,
        "New words.\n\n________________________________\n" + OUTLOOK_BLOCK,
        "New words.\n\n*From:* Provider Reports\n*Sent:* Monday\n*To:* DWP\n*Subject:* x\n\nold rejected\n",
        "New words.\n\nOn Mon, 23 Nov 2026 at 09:58, Reports <r@p.example> wrote:\n> old rejected\n",
        "New words.\n\nOn Mon, 23 Nov 2026 at 09:58, Provider Reports\n<reports@provider.example> wrote:\n",
        "New words.\n> old rejected\n>> older\n",
        "New words.\n-- \nSam Patel\nrejected signatures are dropped too\n",
        "New words.\n\n-----Ursprüngliche Nachricht-----\nVon: x\n",
    ],
    ids=[
        "original",
        "original-spaced",
        "outlook-block",
        "underscores",
        "bold-markdown",
        "on-wrote",
        "on-wrote-wrapped",
        "angle-quotes",
        "signature",
        "german",
    ],
)
def test_history_is_cut(text: str) -> None:
    assert strip_quoted_history(text, "RE: MHSS Support Plan") == "New words."


def test_interleaved_reply_keeps_unquoted_lines() -> None:
    text = "> question one\nAnswer one.\n> question two\nAnswer two.\n"
    assert strip_quoted_history(text) == "Answer one.\nAnswer two."


def test_forward_keeps_the_forwarded_message_up_to_the_next_earlier_one() -> None:
    text = (
        "FYI\n\n-----Original Message-----\nFrom: Service Delivery <sd@dwp.gov.uk>\nSent: Tuesday\n"
        "To: Team\nSubject: Rejected\n\nThe plan has been rejected.\n\n" + OUTLOOK_BLOCK
    )
    kept = strip_quoted_history(text, "FW: Rejected")
    assert kept.startswith("FYI")
    assert "The plan has been rejected." in kept
    assert "Please find attached" not in kept


def test_forward_marker_counts_as_a_forward_whatever_the_subject() -> None:
    text = (
        "See below.\n\n---------- Forwarded message ---------\nFrom: a@b\nDate: x\nSubject: y\nTo: c\n\nbody"
    )
    assert strip_quoted_history(text, "Report").endswith("body")


def test_body_that_opens_with_a_header_block_keeps_it() -> None:
    text = "-----Original Message-----\n" + OUTLOOK_BLOCK + "\nThis has been returned for rework.\n"
    assert "returned for rework" in strip_quoted_history(text, "RE: x")


def test_reply_does_not_keep_a_header_block_after_new_text() -> None:
    text = "Hello.\n\n-----Original Message-----\n" + OUTLOOK_BLOCK
    assert strip_quoted_history(text, "RE: x") == "Hello."


def test_from_line_alone_is_not_history() -> None:
    text = "From: the team at DWP\nThe plan has been rejected.\n"
    assert strip_quoted_history(text) == text.strip()


def test_on_line_that_is_not_an_attribution_stays() -> None:
    text = "On reflection, the plan has been rejected.\nwrote: nothing\n"
    assert strip_quoted_history(text) == text.strip()
