"""What DWP's MHSS inbox sends back, built the way it arrives: the automated response and a rejection
notice returned for rework with Annex F reasons.

Pure: message in, message out. The boundary MTA's Authentication-Results header is added as the
provider's own MX would add it for genuine DWP mail, so the trust rules see what they see in production.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

DWP_INBOX = "accesstowork.mhss@dwp.gov.uk"
DWP_DOMAIN = "dwp.gov.uk"

# How DWP's rework notices word each Annex F reason (§5); the classifier maps them back to codes.
REASON_WORDING = {
    "incorrect-information": "The report contains incorrect information.",
    "employment-status-missing": "The report does not confirm the customer's employment status.",
    "spelling-grammar": "The report contains spelling and grammar errors.",
    "support-not-justified": "The support is not fully justified or detailed.",
    "progress-detail-missing": "There is not enough detail on progress during the support period.",
    "benefit-not-explained": "The report does not explain how the support will help the customer.",
    "format": "The report is not in Arial 12 point.",
}


def _base(
    original: EmailMessage, *, subject: str, now: datetime, authserv_id: str, sender: str
) -> EmailMessage:
    reply = EmailMessage()
    reply["Authentication-Results"] = (
        f"{authserv_id}; dkim=pass header.d={DWP_DOMAIN} header.s=selector1; "
        f"spf=pass smtp.mailfrom={DWP_DOMAIN}; dmarc=pass (p=REJECT) header.from={DWP_DOMAIN}"
    )
    reply["From"] = f"Access to Work MHSS <{sender}>"
    reply["To"] = str(original["From"])
    reply["Subject"] = subject
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = f"<{secrets.token_hex(12)}@{DWP_DOMAIN}>"
    original_id = str(original["Message-ID"])
    reply["In-Reply-To"] = original_id
    reply["References"] = original_id
    return reply


def acknowledgement(original: EmailMessage, *, now: datetime, authserv_id: str) -> EmailMessage:
    """The inbox's automated response: proof of receipt, never approval."""
    reply = _base(
        original,
        subject=f"Automatic reply: {original['Subject']}",
        now=now,
        authserv_id=authserv_id,
        sender=DWP_INBOX,
    )
    reply["Auto-Submitted"] = "auto-replied"
    reply["X-Auto-Response-Suppress"] = "All"
    reply.set_content(
        "Thank you for contacting the Access to Work Mental Health Support Service mailbox.\n\n"
        "This is an automated response to confirm that we have received your email. "
        "Please do not reply to this message.\n\nAccess to Work\nDepartment for Work and Pensions\n"
    )
    return reply


def rejection(
    original: EmailMessage, reasons: Sequence[str], *, now: datetime, authserv_id: str, case_ref: str
) -> EmailMessage:
    """A report returned for rework, with the reasons in Annex F's words."""
    reply = _base(
        original,
        subject=f"RE: {original['Subject']} - returned for rework",
        now=now,
        authserv_id=authserv_id,
        sender=DWP_INBOX,
    )
    listed = "\n".join(f"- {REASON_WORDING.get(code, code)}" for code in reasons)
    reply.set_content(
        f"Dear provider,\n\nThe MHSS report for case {case_ref} has been returned to you for rework "
        f"because it does not meet the specified standard, for the following reasons:\n\n{listed}\n\n"
        "Please amend the report and resubmit it within 5 working days.\n\n"
        "Access to Work Service Delivery\nDepartment for Work and Pensions\n"
    )
    return reply
