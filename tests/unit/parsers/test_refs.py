"""References: Message-IDs, case refs, submission tokens, DWP references."""

from __future__ import annotations

import pytest

from parsers.refs import (
    find_case_refs,
    find_dwp_reference,
    find_message_case_refs,
    find_message_ids,
    find_submission_tokens,
)
from tests.unit.parsers.mail import OUR_ID, message


class TestMessageIds:
    def test_bracketed_ids_in_order_without_repeats(self) -> None:
        assert find_message_ids(f"{OUR_ID}\n <b@x> {OUR_ID}") == (OUR_ID, "<b@x>")

    def test_bare_id_is_bracketed(self) -> None:
        assert find_message_ids(" abc@host ") == ("<abc@host>",)

    @pytest.mark.parametrize("value", ["", "no id here", "<no-at-sign>", "a b@c", "<>"])
    def test_no_ids(self, value: str) -> None:
        assert find_message_ids(value) == ()

    def test_spaces_inside_brackets_are_dropped(self) -> None:
        assert find_message_ids("< left @ right.example >") == ("<left@right.example>",)


class TestCaseRefs:
    def test_found_in_order_upper_cased_without_repeats(self) -> None:
        text = "About mh-100002 and MH-100001, and again MH-100002."
        assert find_case_refs(text, r"MH-\d{6}") == ("MH-100002", "MH-100001")

    @pytest.mark.parametrize("text", ["MH-1000012", "XMH-100001", "MH-10000", "MH100001", "MH-100001a"])
    def test_partial_tokens_do_not_match(self, text: str) -> None:
        assert find_case_refs(text, r"MH-\d{6}") == ()

    def test_pattern_from_config(self) -> None:
        assert find_case_refs("ref ABC/2026/0042.", r"ABC/\d{4}/\d{4}") == ("ABC/2026/0042",)

    def test_invalid_pattern_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="not a valid regular expression"):
            find_case_refs("x", "MH-(")

    def test_message_refs_skip_quoted_history(self) -> None:
        msg = message(
            "About MH-100003.\n\nOn Mon, 23 Nov 2026, A <a@b.example> wrote:\n> MH-100009\n",
            subject="RE: MHSS Support Plan - MH-100001 [S-000123]",
        )
        assert find_message_case_refs(msg) == ("MH-100001", "MH-100003")


class TestSubmissionTokens:
    def test_tokens_in_brackets(self) -> None:
        assert find_submission_tokens("RE: Plan - MH-100001 [S-000123] [ s-000124 ]") == (
            "S-000123",
            "S-000124",
        )

    @pytest.mark.parametrize(
        "text", ["Submission S-000123 not accepted", "(S-000123)", "RE: plan - s-000123"]
    )
    def test_tokens_retyped_without_brackets(self, text: str) -> None:
        assert find_submission_tokens(text) == ("S-000123",)

    @pytest.mark.parametrize(
        "text", ["S-123", "[S-123]", "[SS-000123]", "XS-000123", "S-0001234", "MS-000123"]
    )
    def test_not_tokens(self, text: str) -> None:
        assert find_submission_tokens(text) == ()


class TestDwpReference:
    @pytest.mark.parametrize(
        ("text", "reference"),
        [
            ("Reference: ATW-123456", "ATW-123456"),
            ("Your reference number is 1234567.", "1234567"),
            ("Ref ATW 654321", "ATW-654321"),
            ("our ref: atw123456", "ATW-123456"),
            ("Reference no. 98765432", "98765432"),
        ],
    )
    def test_found(self, text: str, reference: str) -> None:
        assert find_dwp_reference(text) == reference

    @pytest.mark.parametrize(
        "text",
        [
            "Reference: MH-100001",
            "Reference: AB123456C",
            "Please quote your reference.",
            "Call 0800 121 7479",
            "Reference: 12345",
            "reference 1234567890123",
            "We received 1234567 bytes",
        ],
    )
    def test_conservative(self, text: str) -> None:
        assert find_dwp_reference(text) is None
