"""classify: the rule table, its order, the trace, hedged wording and reason codes."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest

from parsers.classify import RULES, classify, statements
from parsers.types import Classification, ClassifyPolicy, Kind
from tests.unit.parsers.mail import INBOX, OUR_SUBJECT, message, multipart, pdf_with_lines

POLICY = ClassifyPolicy.default()
AUTO = (("Auto-Submitted", "auto-replied"),)


def kind_of(body: str, **kwargs: Any) -> Kind:
    return classify(message(body, **kwargs), POLICY).kind


def test_rule_names_are_unique_and_delivery_reports_are_read_before_the_table() -> None:
    names = [name for name, _, _ in RULES]
    assert len(names) == len(set(names))
    assert "delivery-failure" not in names  # its own step, before any rule


def test_a_bounce_is_a_bounce_whatever_it_says() -> None:
    body = (
        "Your message to accesstowork.mhss@dwp.gov.uk couldn't be delivered.\n"
        "The report has been rejected by the recipient's server. Please correct and resubmit.\n"
        "Remote Server returned '550 5.7.1 Message rejected'\n"
    )
    result = classify(
        message(body, sender="postmaster@dwp.gov.uk", subject="Undeliverable: MHSS Support Plan"), POLICY
    )
    assert result.kind is Kind.BOUNCE and result.rules == ("delivery-failure",)
    assert result.dsn is not None and result.dsn.status == "5.7.1" and result.dsn.permanent
    assert result.review is None and result.cues == ()


def test_trace_lists_every_rule_that_fired_first_one_decides() -> None:
    result = classify(message("This report has been rejected. Reasons: spelling.", headers=AUTO), POLICY)
    assert result.kind is Kind.REJECTION
    assert result.rules == ("rejection-statement", "dwp-inbox-acknowledgement", "auto-submitted")
    assert result.detail == "decided by rejection-statement; machine-sent (auto-submitted=auto-replied)"


def test_nothing_fired_is_recorded_as_otherwise() -> None:
    result = classify(message("Thanks for the call today.", sender="sam.patel@dwp.gov.uk"), POLICY)
    assert result == Classification(
        Kind.OTHER,
        (),
        ("otherwise",),
        None,
        None,
        "decided by otherwise",
        review="not confidently an acknowledgement, rejection, bounce, bulletin or out-of-office",
    )


class TestAcknowledgement:
    def test_inbox_with_machine_header_and_no_wording(self) -> None:
        assert kind_of("Thank you.", headers=AUTO) is Kind.ACKNOWLEDGEMENT

    def test_inbox_with_wording_and_no_machine_header(self) -> None:
        assert kind_of("We have received your email.") is Kind.ACKNOWLEDGEMENT

    def test_inbox_human_reply_without_either_is_other(self) -> None:
        assert kind_of("Could you resend the PDF? It would not open.") is Kind.OTHER

    def test_other_sender_needs_wording_and_automation(self) -> None:
        sender = "robot@dwp.gov.uk"
        assert kind_of("We have received your email.", sender=sender, headers=AUTO) is Kind.ACKNOWLEDGEMENT
        assert kind_of("We have received your email. This is an automated message.", sender=sender) is (
            Kind.ACKNOWLEDGEMENT
        )
        assert kind_of("We have received your email.", sender=sender) is Kind.OTHER

    def test_ack_senders_come_from_the_policy(self) -> None:
        policy = replace(POLICY, ack_senders=("Robot@DWP.gov.uk",))
        assert classify(message("Thanks.", sender="robot@dwp.gov.uk", headers=AUTO), policy).kind is (
            Kind.ACKNOWLEDGEMENT
        )

    def test_general_words_about_rejection_do_not_make_it_a_rejection(self) -> None:
        body = (
            "This is an automated response. Reports that do not meet the specified standard will be returned "
            "for rework. If your report is rejected, we will tell you within 5 working days."
        )
        assert kind_of(body, headers=AUTO) is Kind.ACKNOWLEDGEMENT

    def test_dwp_reference_is_kept(self) -> None:
        result = classify(message("We have received your email. Reference: ATW-123456", headers=AUTO), POLICY)
        assert result.dwp_reference == "ATW-123456"


class TestOutOfOffice:
    def test_person_out_of_office(self) -> None:
        body = "I am out of the office until Monday."
        assert kind_of(body, sender="jane.smith@dwp.gov.uk", subject=f"Automatic reply: {OUR_SUBJECT}") is (
            Kind.AUTO_REPLY
        )

    def test_out_of_office_wording_without_any_machine_signal_is_other(self) -> None:
        assert kind_of("I am out of the office today.", sender="jane.smith@dwp.gov.uk") is Kind.OTHER

    def test_out_of_office_beats_acknowledgement_wording(self) -> None:
        body = "Your email has been received. I am on annual leave until Friday."
        assert kind_of(body, sender="jane.smith@dwp.gov.uk", headers=AUTO) is Kind.AUTO_REPLY

    def test_machine_sent_without_wording_is_an_auto_reply(self) -> None:
        result = classify(
            message("Noted.", sender="x@example.org", headers=(("Precedence", "junk"),)), POLICY
        )
        assert (result.kind, result.rules) == (Kind.AUTO_REPLY, ("auto-submitted",))
        assert result.dwp_reference is None


class TestRejection:
    @pytest.mark.parametrize(
        "sentence",
        [
            "Your Support Plan has been returned for rework.",
            "This report has unfortunately been rejected.",
            "The 6 Month Report does not meet the specified standard.",
            "We are unable to accept this report.",
            "I have reviewed the plan and have rejected it.",
            "Rejected - see reasons below.",
            "Outcome: returned for rework",
            "Reasons for rejection:\n- spelling",
            "It is being returned for amendments, and you will need to resubmit.",
        ],
    )
    def test_statements(self, sentence: str) -> None:
        assert kind_of(sentence, sender="sam.patel@dwp.gov.uk") is Kind.REJECTION

    @pytest.mark.parametrize(
        "sentence",
        [
            "If your report is rejected you will be told.",
            "Reports that do not meet the standard will be returned.",
            "The previous version was rejected.",
            "It has not been rejected.",
            "It was never returned.",
            "Any report may be rejected.",
            "Where a report has been rejected, call us.",
            "Please confirm whether the plan was returned.",
            "Here is how to avoid being rejected: check spelling.",
        ],
    )
    def test_hedged_mentions(self, sentence: str) -> None:
        assert kind_of(sentence, sender="sam.patel@dwp.gov.uk") is Kind.OTHER

    def test_hedge_on_an_earlier_line_does_not_reach_a_new_heading(self) -> None:
        body = "If you have questions call us\nYour plan has been rejected"
        assert kind_of(body, sender="sam.patel@dwp.gov.uk") is Kind.REJECTION

    def test_subject_alone(self) -> None:
        result = classify(message("Please see attached.", subject="Report rejected - MH-100001"), POLICY)
        assert (result.kind, result.rules[0], result.reasons) == (
            Kind.REJECTION,
            "rejection-subject",
            ("other",),
        )

    @pytest.mark.parametrize(
        "subject", ["RE: Report rejected", "Automatic reply: Rejected report", "Undeliverable: Rejected"]
    )
    def test_subject_that_echoes_an_earlier_message_does_not_count(self, subject: str) -> None:
        assert kind_of("Thanks.", sender="sam.patel@dwp.gov.uk", subject=subject) is not Kind.REJECTION

    def test_forwarded_subject_counts(self) -> None:
        assert (
            kind_of("FYI", sender="sam.patel@dwp.gov.uk", subject="FW: Fwd: Report rejected")
            is Kind.REJECTION
        )

    def test_quoted_history_never_counts(self) -> None:
        body = (
            "Thanks, noted.\n\n-----Original Message-----\nFrom: a\nSent: b\nTo: c\nSubject: d\n\nRejected."
        )
        assert kind_of(body, sender="sam.patel@dwp.gov.uk") is Kind.OTHER

    def test_rejection_beats_the_inbox_acknowledgement_rule(self) -> None:
        assert kind_of("We have received your email. It has been returned for rework.", headers=AUTO) is (
            Kind.REJECTION
        )

    def test_notice_in_a_pdf_gives_reasons_from_the_pdf(self) -> None:
        data = pdf_with_lines("This report has been returned for rework.", "Reason: spelling errors.")
        ctype, body = multipart(
            [
                ("Content-Type: text/plain", "See attached."),
                (
                    "Content-Type: application/pdf\nContent-Transfer-Encoding: base64",
                    base64.encodebytes(data).decode(),
                ),
            ]
        )
        result = classify(message(body, content_type=ctype), POLICY)
        assert (result.kind, result.rules[0], result.reasons) == (
            Kind.REJECTION,
            "rejection-in-attachment",
            ("spelling-grammar",),
        )

    def test_attachment_that_is_not_a_notice_gives_no_reasons(self) -> None:
        data = pdf_with_lines("Employment status: in work.", "Written in Arial 12 point.")
        ctype, body = multipart(
            [
                (
                    "Content-Type: text/plain",
                    "This has been returned for rework. Too little detail on progress.",
                ),
                (
                    "Content-Type: application/pdf\nContent-Transfer-Encoding: base64",
                    base64.encodebytes(data).decode(),
                ),
            ]
        )
        assert classify(message(body, content_type=ctype), POLICY).reasons == ("progress-detail-missing",)

    def test_forwarded_as_attachment(self) -> None:
        inner = (
            "From: sd@dwp.gov.uk\nSubject: Your plan\n\nThe plan has been rejected: incorrect information.\n"
        )
        ctype, body = multipart(
            [("Content-Type: text/plain", "FYI"), ("Content-Type: message/rfc822", inner)]
        )
        result = classify(message(body, sender="sam.patel@dwp.gov.uk", content_type=ctype), POLICY)
        assert (result.kind, result.reasons) == (Kind.REJECTION, ("incorrect-information",))

    def test_reasons_follow_policy_order_and_the_policy_can_change_them(self) -> None:
        body = "This has been rejected: the font is wrong and there are typos."
        assert classify(message(body), POLICY).reasons == ("spelling-grammar", "format")
        policy = replace(POLICY, reason_phrases={"presentation": (r"\bfont\b",)}, unknown_reason="unlisted")
        assert classify(message(body), policy).reasons == ("presentation",)
        assert classify(message("This has been rejected."), policy).reasons == ("unlisted",)


class TestNotRejections:
    def test_accepted_after_resubmission(self) -> None:
        body = (
            "Thanks for the resubmission. The amended plan has been accepted. The earlier one was rejected."
        )
        result = classify(message(body, sender="sam.patel@dwp.gov.uk"), POLICY)
        assert result.rules[0] == "accepted-after-resubmission"
        assert result.kind is Kind.OTHER

    def test_resubmission_not_accepted_is_a_rejection(self) -> None:
        body = (
            "Thank you for the resubmission. It has not been accepted and has been returned for rework again."
        )
        assert kind_of(body, sender="sam.patel@dwp.gov.uk") is Kind.REJECTION

    @pytest.mark.parametrize(
        ("subject", "headers", "body"),
        [
            ("MHSS Provider Bulletin", (), "Reports have been rejected for spelling."),
            ("Update", (("List-Id", "<providers.lists.dwp.gov.uk>"),), "41 reports have been rejected."),
            (
                "Changes",
                (),
                "This is sent to all MHSS providers. Many reports have been returned for rework.",
            ),
        ],
    )
    def test_bulletins(self, subject: str, headers: tuple[tuple[str, str], ...], body: str) -> None:
        result = classify(message(body, subject=subject, headers=headers), POLICY)
        assert (result.kind, result.rules[0]) == (Kind.OTHER, "bulletin")


class TestPolicy:
    def test_invalid_regex_is_refused_with_the_pattern_named(self) -> None:
        with pytest.raises(ValueError, match=r"invalid regular expression 'returned \('"):
            ClassifyPolicy(rejection_phrases=("returned (",))

    def test_ack_senders_are_lower_cased(self) -> None:
        assert ClassifyPolicy(ack_senders=("A@DWP.GOV.UK",)).ack_senders == ("a@dwp.gov.uk",)

    def test_default_ack_sender_is_the_dwp_inbox(self) -> None:
        assert POLICY.ack_senders == (INBOX,)

    def test_policy_is_hashable_and_comparable(self) -> None:
        assert hash(ClassifyPolicy.default()) == hash(ClassifyPolicy())
        assert ClassifyPolicy.default() == ClassifyPolicy()

    def test_reason_phrases_cannot_be_mutated(self) -> None:
        with pytest.raises(TypeError):
            POLICY.reason_phrases["x"] = ("y",)  # type: ignore[index]


def test_statements_returns_the_sentences() -> None:
    text = "Hello. Your plan has been rejected.  Reports that fail will be returned."
    assert statements(text, POLICY.rejection_phrases, POLICY.hedge_phrases) == (
        "Your plan has been rejected.",
    )
