"""Non-delivery reports for the end-to-end tests, in the shapes Microsoft 365, Mimecast and Postfix send.

Each takes the report we sent (as the relay received it) and returns raw bytes ready for LMTP. Written
here from those systems' published layouts; all names and hosts are fictional.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

AUTHSERV = "mx.provider.example"
DWP_INBOX = "accesstowork.mhss@dwp.gov.uk"


def _original_headers(original: EmailMessage) -> str:
    names = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version")
    return "".join(f"{name}: {original[name]}\n" for name in names if original[name] is not None)


def _dwp_authenticated() -> str:
    return (
        f"Authentication-Results: {AUTHSERV}; dkim=pass header.d=dwp.gov.uk header.s=selector2; "
        "spf=pass smtp.mailfrom=dwp.gov.uk; dmarc=pass (p=REJECT) header.from=dwp.gov.uk\n"
    )


def m365_ndr(original: EmailMessage, *, now: datetime) -> bytes:
    """Exchange Online's NDR from DWP's own tenant: trusted, and it says the message was rejected."""
    boundary = f"_{secrets.token_hex(8)}_"
    alt = f"_{secrets.token_hex(8)}_alt"
    host = "CWLP265MB4417.GBRP265.PROD.OUTLOOK.COM"
    return f"""Return-Path: <>
{_dwp_authenticated()}From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@dwp.gov.uk>
To: {original["From"]}
Date: {format_datetime(now)}
Subject: Undeliverable: {original["Subject"]}
Message-ID: <{secrets.token_hex(10)}@{host}>
Auto-Submitted: auto-replied
Content-Language: en-GB
X-MS-Exchange-Message-Is-Ndr:
X-MS-PublicTrafficType: Email
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Type: multipart/alternative; differences=Content-Type; boundary="{alt}"

--{alt}
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

Your message to {DWP_INBOX} couldn't be delivered.
The message was rejected by the recipient's server.

Action Required                                   Recipient
Message rejected

How to Fix It
The report has been received by Exchange Online but was rejected when it was relayed onward.
Contact the recipient by some other means and ask them to check the mailbox.

Diagnostic information for administrators:
Generating server: {host}
{DWP_INBOX}
Remote Server returned '550 5.7.1 Message rejected as spam by Content Filtering.'

--{alt}
Content-Type: text/html; charset="us-ascii"

<html><body><p>Your message to {DWP_INBOX} couldn't be delivered.</p>
<p>The message was rejected by the recipient's server.</p></body></html>

--{alt}--

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns;{host}
Received-From-MTA: dns;mail.provider.example
Arrival-Date: {format_datetime(now)}

Final-Recipient: rfc822;{DWP_INBOX}
Action: failed
Status: 5.7.1
Diagnostic-Code: smtp;550 5.7.1 Message rejected as spam by Content Filtering.

--{boundary}
Content-Type: message/rfc822

{_original_headers(original)}
(body omitted)

--{boundary}--
""".encode()


def mimecast_ndr(original: EmailMessage, *, now: datetime) -> bytes:
    """Mimecast's HTML notification, no report part: the original's headers quoted in the body."""
    boundary = f"=-{secrets.token_hex(8)}"
    quoted = "".join(f"  {line}\n" for line in _original_headers(original).splitlines())
    return f"""Return-Path: <>
{_dwp_authenticated()}From: Postmaster <postmaster@dwp.gov.uk>
To: {original["From"]}
Date: {format_datetime(now)}
Subject: Mimecast Undeliverable Notification
Message-ID: <mc-{secrets.token_hex(8)}@eu-smtp-delivery-1.mimecast.com>
X-MC-Unique: {secrets.token_hex(11)}
Auto-Submitted: auto-generated
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=utf-8

Your message couldn't be delivered

Your message to {DWP_INBOX} was received by our gateway but was rejected by the recipient's
mail server, and will not be retried.

Reason: Rejected by recipient
Detail: 550 5.1.1 Recipient address rejected: mailbox unavailable

Original message headers:
{quoted}
This notification was sent by the Mimecast gateway.

--{boundary}
Content-Type: text/html; charset=utf-8

<html><body><h2>Your message couldn't be delivered</h2>
<table><tr><td>Reason</td><td>Rejected by recipient</td></tr></table></body></html>

--{boundary}--
""".encode()


def postfix_delay(original: EmailMessage, *, now: datetime) -> bytes:
    """Our own relay's warning that delivery to DWP is still being retried: temporary."""
    boundary = f"{secrets.token_hex(6).upper()}.1764000000/mail.provider.example"
    return f"""Return-Path: <>
Authentication-Results: {AUTHSERV}; spf=none smtp.mailfrom=<>
From: MAILER-DAEMON@mail.provider.example (Mail Delivery System)
To: {original["From"]}
Date: {format_datetime(now)}
Subject: Delayed Mail (still being retried)
Message-ID: <{secrets.token_hex(8)}.delay@mail.provider.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.provider.example.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 4 hour(s).
It will be retried until it is 5 day(s) old.

<{DWP_INBOX}>: connect to cluster1.eu.messagelabs.com[192.0.2.80]:25: Connection timed out

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.provider.example

Final-Recipient: rfc822; {DWP_INBOX}
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to cluster1.eu.messagelabs.com[192.0.2.80]:25: Connection timed out
Will-Retry-Until: {format_datetime(now)}

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{_original_headers(original)}
--{boundary}--
""".encode()
