"""parse_dsn: RFC 3464 delivery reports and the common non-standard bounces."""

from __future__ import annotations

from parsers.bounce import parse_dsn
from parsers.message import parse_message
from tests.unit.parsers.mail import INBOX, OUR_ID, OUR_SUBJECT, multipart, raw_message

ORIGINAL = f"From: reports@provider.example\nTo: {INBOX}\nSubject: {OUR_SUBJECT}\nMessage-ID: {OUR_ID}\n"


def report(*recipients: str, original: str = "message/rfc822", subject: str = "Undelivered Mail") -> bytes:
    status = "Reporting-MTA: dns; mx.provider.example\n\n" + "\n\n".join(recipients)
    ctype, body = multipart(
        [
            ("Content-Type: text/plain", "notification"),
            ("Content-Type: message/delivery-status", status),
            (f"Content-Type: {original}", ORIGINAL + ("\nbody\n" if original == "message/rfc822" else "")),
        ],
    )
    ctype = ctype.replace("multipart/mixed", "multipart/report; report-type=delivery-status")
    return raw_message(body, sender="MAILER-DAEMON@provider.example", subject=subject, content_type=ctype)


FAILED = (
    "Final-Recipient: rfc822; accesstowork.mhss@dwp.gov.uk\nAction: failed\nStatus: 5.1.1\n"
    "Diagnostic-Code: smtp; 550 5.1.1 User unknown"
)
DELAYED = "Final-Recipient: rfc822;accesstowork.mhss@dwp.gov.uk\nAction: delayed\nStatus: 4.4.1"
DELIVERED = "Final-Recipient: rfc822; pm@provider.example\nAction: delivered\nStatus: 2.0.0"


def test_failed_report() -> None:
    dsn = parse_dsn(parse_message(report(FAILED)))
    assert dsn is not None
    assert (dsn.action, dsn.status, dsn.recipients) == ("failed", "5.1.1", ("accesstowork.mhss@dwp.gov.uk",))
    assert dsn.original_message_id == OUR_ID
    assert dsn.diagnostic == "550 5.1.1 User unknown"


def test_delayed_report_with_rfc822_headers() -> None:
    dsn = parse_dsn(parse_message(report(DELAYED, original="text/rfc822-headers")))
    assert dsn is not None
    assert (dsn.action, dsn.status, dsn.original_message_id) == ("delayed", "4.4.1", OUR_ID)


def test_most_serious_action_wins() -> None:
    dsn = parse_dsn(parse_message(report(DELIVERED, DELAYED, FAILED)))
    assert dsn is not None and dsn.action == "failed"
    assert dsn.recipients == ("accesstowork.mhss@dwp.gov.uk",)


def test_success_report() -> None:
    dsn = parse_dsn(parse_message(report(DELIVERED)))
    assert dsn is not None and (dsn.action, dsn.status) == ("delivered", "2.0.0")


def test_folded_diagnostic_is_unfolded() -> None:
    folded = FAILED.replace("User unknown", "Recipient\n    address rejected")
    dsn = parse_dsn(parse_message(report(folded)))
    assert dsn is not None and dsn.diagnostic == "550 5.1.1 Recipient address rejected"


def test_bounce_with_a_broken_report_is_read_from_its_words() -> None:
    dsn = parse_dsn(parse_message(report("Final-Recipient: rfc822; a@b")))
    assert dsn is not None and (dsn.action, dsn.original_message_id) == ("failed", OUR_ID)


def test_broken_report_without_bounce_subject_is_not_a_dsn() -> None:
    assert parse_dsn(parse_message(report("Final-Recipient: rfc822; a@b", subject="Your report"))) is None


def test_exchange_undeliverable_without_a_report_part() -> None:
    ctype, body = multipart(
        [
            (
                "Content-Type: text/plain",
                "Your message did not reach some or all of the intended recipients.\n"
                "   550 5.1.1 RESOLVER.ADR.RecipNotFound",
            ),
            ("Content-Type: message/rfc822", ORIGINAL + "\nbody\n"),
        ]
    )
    raw = raw_message(
        body, sender="postmaster@dwp.gov.uk", subject=f"Undeliverable: {OUR_SUBJECT}", content_type=ctype
    )
    dsn = parse_dsn(parse_message(raw))
    assert dsn is not None
    assert (dsn.action, dsn.status, dsn.original_message_id) == ("failed", "5.1.1", OUR_ID)


def test_mail_delivery_subsystem_with_inline_original() -> None:
    body = (
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
        "<accesstowork.mhss@dwp.gov.uk>:\nRemote host said: 552 5.2.2 Mailbox full\n\n"
        "--- Below this line is a copy of the message.\n\n" + ORIGINAL
    )
    raw = raw_message(
        body, sender="Mail Delivery Subsystem <mailer-daemon@relay.example>", subject="failure notice"
    )
    dsn = parse_dsn(parse_message(raw))
    assert dsn is not None
    assert (dsn.action, dsn.status) == ("failed", "5.2.2")
    assert dsn.recipients == ("accesstowork.mhss@dwp.gov.uk",)
    assert dsn.original_message_id == OUR_ID


def test_prose_bounce_that_says_it_will_retry_is_delayed() -> None:
    raw = raw_message(
        "Delivery to the following recipient has been delayed. The server will retry.\n",
        sender="postmaster@relay.example",
        subject="Delivery delayed: report",
    )
    dsn = parse_dsn(parse_message(raw))
    assert dsn is not None and (dsn.action, dsn.status) == ("delayed", None)


def test_undeliverable_subject_from_a_person_is_not_a_bounce() -> None:
    raw = raw_message(
        "Undeliverable post is returned to sender.",
        sender="sam.patel@dwp.gov.uk",
        subject="Undeliverable post",
    )
    assert parse_dsn(parse_message(raw)) is None


def test_ordinary_reply_is_not_a_dsn() -> None:
    assert parse_dsn(parse_message(raw_message("Thanks."))) is None
