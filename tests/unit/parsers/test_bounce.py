"""parsers/bounce.py beyond the RFC 3464 basics (test_dsn.py): lenient reports, vendor prose, look-alikes."""

from __future__ import annotations

import json

import pytest

from parsers.bounce import is_abuse_report, parse_dsn
from parsers.classify import classify
from parsers.message import parse_message
from parsers.types import Kind
from tests.unit.parsers.mail import INBOX, OUR_ID, OUR_SUBJECT, multipart, raw_message

ORIGINAL = f"From: reports@provider.example\nTo: {INBOX}\nSubject: {OUR_SUBJECT}\nMessage-ID: {OUR_ID}\n"


def report(fields: str, *, report_type: str = "message/delivery-status") -> bytes:
    ctype, body = multipart(
        [
            ("Content-Type: text/plain", "Delivery to the recipient failed."),
            (f"Content-Type: {report_type}", f"Reporting-MTA: dns; mx.example\n\n{fields}"),
            ("Content-Type: text/rfc822-headers", ORIGINAL),
        ]
    )
    ctype = ctype.replace("multipart/mixed", "multipart/report; report-type=delivery-status")
    return raw_message(body, sender="MAILER-DAEMON@mx.example", subject="Returned mail", content_type=ctype)


@pytest.mark.parametrize(
    ("fields", "action", "status"),
    [
        (f"Final-Recipient: rfc822; {INBOX}\nAction: failure\nStatus: 5.1.1", "failed", "5.1.1"),
        (f"Final-Recipient: rfc822; {INBOX}\nAction: error", "failed", None),
        (f"Final-Recipient: rfc822; {INBOX}\nAction: expired\nStatus: 4.4.7", "failed", "4.4.7"),
        (
            f"Final-Recipient: rfc822; {INBOX}\nAction: failed (bad destination mailbox address)",
            "failed",
            None,
        ),
        (f"FINAL-RECIPIENT: {INBOX}\nDIAGNOSTIC-CODE: smtp; 550 5.2.2 Mailbox full", "failed", "5.2.2"),
        (f"Final-Recipient: rfc822; {INBOX}\nAction: delayed\nStatus: 4.4.1", "delayed", "4.4.1"),
    ],
)
def test_lenient_report_fields(fields: str, action: str, status: str | None) -> None:
    dsn = parse_dsn(parse_message(report(fields)))
    assert dsn is not None and dsn.reader == "report"
    assert (dsn.action, dsn.status, dsn.recipients) == (action, status, (INBOX,))
    assert dsn.permanent is (action == "failed")
    assert dsn.original_message_id == OUR_ID


def test_global_delivery_status() -> None:
    fields = f"Final-Recipient: rfc822; {INBOX}\nAction: failed\nStatus: 5.1.1"
    dsn = parse_dsn(parse_message(report(fields, report_type="message/global-delivery-status")))
    assert dsn is not None and (dsn.action, dsn.status) == ("failed", "5.1.1")


EXIM = f"""This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {INBOX}
    host mx.dwp.gov.uk [192.0.2.7]
    SMTP error from remote mail server after RCPT TO:<{INBOX}>:
    550 5.1.1 User unknown

------ This is a copy of the message, including all the headers. ------

{ORIGINAL}
The report was received and rejected, please resubmit.
"""


def test_exim_prose_with_the_copy_inline() -> None:
    raw = raw_message(
        EXIM,
        sender="Mail Delivery System <Mailer-Daemon@mail.provider.example>",
        subject="Mail delivery failed: returning message to sender",
        headers=(("X-Failed-Recipients", INBOX),),
    )
    result = classify(parse_message(raw))
    assert result.kind is Kind.BOUNCE
    dsn = result.dsn
    assert dsn is not None and dsn.reader == "exim"
    assert (dsn.action, dsn.status, dsn.recipients, dsn.original_message_id) == (
        "failed",
        "5.1.1",
        (INBOX,),
        OUR_ID,
    )


def test_qmail_recipient_lines() -> None:
    body = (
        "Hi. This is the qmail-send program at mail.example.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
        f"<{INBOX}>:\n192.0.2.7 does not like recipient.\nRemote host said: 550 sorry, no mailbox here\n"
    )
    dsn = parse_dsn(
        parse_message(raw_message(body, sender="MAILER-DAEMON@mail.example", subject="failure notice"))
    )
    assert dsn is not None and dsn.reader == "qmail" and dsn.recipients == (INBOX,)
    assert dsn.status is None and dsn.diagnostic is not None and dsn.diagnostic.startswith("550 sorry")


def test_a_delay_in_prose_is_temporary_and_an_expiry_is_permanent() -> None:
    delay = raw_message(
        "This is just a warning: delivery to the recipient has been delayed and will be retried.\n",
        sender="MAILER-DAEMON@mail.example",
        subject="Delivery Status Notification (Delay)",
    )
    expired = raw_message(
        "Delivery to the recipient has failed: retry timeout exceeded.\n451 4.4.7 Message expired\n",
        sender="MAILER-DAEMON@mail.example",
        subject="Undelivered Mail Returned to Sender",
    )
    delayed, failed = parse_dsn(parse_message(delay)), parse_dsn(parse_message(expired))
    assert delayed is not None and delayed.action == "delayed" and not delayed.permanent
    assert failed is not None and failed.action == "failed" and failed.permanent and failed.status == "4.4.7"


def test_a_persons_reply_about_a_bounce_is_their_mail() -> None:
    raw = raw_message(
        "I got this back, was it delivered?\n\n> Your message to x@dwp.gov.uk couldn't be delivered.\n",
        sender="Sam Patel <sam.patel@dwp.gov.uk>",
        subject="RE: Undeliverable: MHSS Support Plan",
    )
    assert parse_dsn(parse_message(raw)) is None


def test_an_out_of_office_with_a_null_sender_is_not_a_bounce() -> None:
    raw = raw_message(
        "I am out of the office until Monday. Your message has been received.\n",
        sender="Jo Bloggs <jo.bloggs@dwp.gov.uk>",
        subject="Automatic reply: MHSS Support Plan",
        headers=(("Return-Path", "<>"), ("Auto-Submitted", "auto-replied")),
    )
    assert parse_dsn(parse_message(raw)) is None
    assert classify(parse_message(raw)).kind is Kind.AUTO_REPLY


def test_an_abuse_report_is_neither_bounce_nor_rejection() -> None:
    ctype, body = multipart(
        [
            ("Content-Type: text/plain", "This is an abuse report. The message was rejected as spam."),
            (
                "Content-Type: message/feedback-report",
                "Feedback-Type: abuse\nUser-Agent: FBL/1.0\nVersion: 1",
            ),
            ("Content-Type: text/rfc822-headers", ORIGINAL),
        ]
    )
    ctype = ctype.replace("multipart/mixed", "multipart/report; report-type=feedback-report")
    msg = parse_message(
        raw_message(body, sender="fbl@isp.example", subject="Abuse report", content_type=ctype)
    )
    assert is_abuse_report(msg) and parse_dsn(msg) is None
    result = classify(msg)
    assert result.kind is Kind.OTHER and result.rules == ("abuse-report",) and result.review


@pytest.mark.parametrize(
    "body",
    ["550 Unknown user\n", "Your message was rejected.\n\n  Reason: 550 Rejected\n"],
)
def test_a_mailers_own_message_with_an_smtp_reply_line_is_a_bounce(body: str) -> None:
    raw = raw_message(body, sender="Mail Delivery System <MAILER-DAEMON@carrier.example>", subject="Notice")
    result = classify(parse_message(raw))
    assert result.kind is Kind.BOUNCE and result.dsn is not None
    assert (result.dsn.reader, result.dsn.permanent) == ("smtp-reply", True)


def test_an_automated_acknowledgement_with_numbers_in_it_is_not_a_bounce() -> None:
    raw = raw_message(
        "We have received your report.\n\nRoom 401 Caxton House\nReference: 550 Support Plan\n",
        subject=f"Automatic reply: {OUR_SUBJECT}",
        headers=(("Return-Path", "<>"), ("Auto-Submitted", "auto-replied")),
    )
    assert parse_dsn(parse_message(raw)) is None
    assert classify(parse_message(raw)).kind is Kind.ACKNOWLEDGEMENT


def test_an_address_is_read_whole_after_a_tab_separated_label() -> None:
    body = f"Delivery Failure Report\n\nYour document:\t{OUR_SUBJECT}\nwas not delivered to:\t{INBOX}\n"
    raw = raw_message(body, sender="Mail Router <mailrouter@notes.example>", subject="DELIVERY FAILURE")
    dsn = parse_dsn(parse_message(raw))
    assert dsn is not None and dsn.recipients == (INBOX,)


def test_a_status_of_class_only_gives_way_to_the_remote_reply() -> None:
    fields = (
        f"Final-Recipient: rfc822; {INBOX}\nAction: failed\nStatus: 5.0.0\nDiagnostic-Code: smtp; 550 5.1.1 x"
    )
    dsn = parse_dsn(parse_message(report(fields)))
    assert dsn is not None and dsn.status == "5.1.1"


SES_BOUNCE = (
    '{"notificationType":"Bounce","bounce":{"bounceType":"Transient","bounceSubType":"MailboxFull",'
    f'"bouncedRecipients":[{{"emailAddress":"{INBOX}","action":"failed","status":"4.2.2",'
    '"diagnosticCode":"smtp; 452 4.2.2 Mailbox full"}],"timestamp":"2026-11-23T10:00:00.000Z"},'
    f'"mail":{{"source":"reports@provider.example","commonHeaders":{{"messageId":"{OUR_ID}",'
    '"subject":"MHSS Support Plan"}}}\n'
)


@pytest.mark.parametrize(
    "body",
    [SES_BOUNCE, '{"Type" : "Notification", "Message" : ' + json.dumps(SES_BOUNCE) + "}\n"],
    ids=["bare", "in-an-sns-envelope"],
)
def test_an_amazon_ses_bounce_notification_is_a_bounce(body: str) -> None:
    raw = raw_message(body, sender="SES <no-reply@sns.amazonaws.com>", subject="AWS Notification Message")
    dsn = parse_dsn(parse_message(raw))
    assert dsn is not None and dsn.reader == "ses"
    assert (dsn.action, dsn.permanent, dsn.status, dsn.recipients) == ("failed", True, "4.2.2", (INBOX,))
    assert dsn.original_message_id == OUR_ID


def test_an_amazon_ses_delivery_or_complaint_notification_is_not_a_bounce() -> None:
    for kind in ("Delivery", "Complaint"):
        body = f'{{"notificationType":"{kind}","mail":{{"source":"reports@provider.example"}}}}\n'
        raw = raw_message(body, sender="SES <no-reply@sns.amazonaws.com>", subject="AWS Notification Message")
        assert parse_dsn(parse_message(raw)) is None


def test_a_null_sender_with_the_original_attached_and_a_systems_words_is_a_bounce() -> None:
    ctype, body = multipart(
        [
            (
                "Content-Type: text/plain",
                f"Your mail sent on: Mon, 23 Nov 2026\n  Could not be delivered to: <{INBOX}>\n",
            ),
            ("Content-Type: message/rfc822", ORIGINAL),
        ]
    )
    raw = raw_message(
        body,
        sender="no-reply@carrier.example",
        subject="Mail",
        content_type=ctype,
        headers=(("Return-Path", "<>"),),
    )
    dsn = parse_dsn(parse_message(raw))
    assert dsn is not None and dsn.recipients == (INBOX,) and dsn.original_message_id == OUR_ID


@pytest.mark.parametrize(
    ("sender", "subject", "body"),
    [
        (
            "System Administrator <postmaster@corp.example>",
            "E",
            f"Your message\n  Subject: MHSS\ndid not reach the following recipient(s):\n{INBOX} on Mon\n",
        ),
        (
            "MAILER-DAEMON@mx.example",
            "failed delivery",
            f"Unable to deliver message to the following address(es).\n<{INBOX}>:\nConnection timed out\n",
        ),
        ("post_master@mx.example", "Re: MHSS", "Error: Invalid user address\n550 - no such user here\n"),
        ("no-reply@carrier.example.jp", "メールエラー通知", f"Could not be delivered to: <{INBOX}>\n"),
    ],
    ids=["exchange-did-not-reach", "unable-to-deliver", "post_master", "japanese-subject"],
)
def test_more_mail_systems_own_shapes(sender: str, subject: str, body: str) -> None:
    raw = raw_message(body, sender=sender, subject=subject, headers=(("Return-Path", "<>"),))
    result = classify(parse_message(raw))
    assert result.kind is Kind.BOUNCE and result.dsn is not None and result.dsn.action == "failed"
