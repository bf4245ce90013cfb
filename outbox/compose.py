"""Turn a request into an RFC 5322 message. Pure: no clock, no I/O; the only randomness is the Message-ID's.

Every header value is checked for control characters before it is set (HeaderInjection), and every
address must be a plain addr-spec. Subjects carry the case reference, the report type and the
submission token, never a name or NI number (domain.md §7).

Reports are *not* marked Auto-Submitted: DWP's inbox answers with an automated response, and an RFC 3834
responder must stay silent for auto-submitted mail, so the header would suppress the very acknowledgement
we wait for. Notices (reminders, escalations, alerts) are always marked, so out-of-office replies skip them.

A report's bytes are written directly (`render_report`) rather than through `EmailMessage`: its shape never
varies (a text part and a PDF), and the email package's generator cost more per report than the whole SMTP
exchange. Header values still go through the email policy's folder whenever they need encoding or folding,
and `compose_report` parses the same bytes back for callers that want a message object.
"""

from __future__ import annotations

import base64
import re
import secrets
import unicodedata
from datetime import UTC, datetime
from email import message_from_bytes, policy, quoprimime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from outbox.errors import HeaderInjection
from outbox.types import NoticeRequest, ReportRequest

# C0 (tab included), DEL, C1 and the Unicode line separators: any of them can end a header line in some
# parser along the way.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_ADDRESS = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>{_DOMAIN})")
_MESSAGE_ID = re.compile(rf"<{_ATOM}(?:\.{_ATOM})*@{_DOMAIN}>")
_TOKEN = re.compile(r"[A-Za-z0-9-]{1,64}")
_NOT_7BIT_TEXT = re.compile(r"[^\t\n\x20-\x7e]")
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_FILENAME_STEM = 80
MAX_LINE = 78  # RFC 5322 §2.1.1: SHOULD; the email package folds to the same width
_POLICY = policy.default


def check_header_value(value: str, header: str) -> str:
    """Return `value` unchanged, or raise HeaderInjection naming the header (never the value)."""
    if _CONTROL.search(value):
        raise HeaderInjection(f"control character (CR, LF or similar) in the {header} header value")
    return value


def check_address(address: str, header: str) -> str:
    """Return a plain addr-spec (local@domain, ASCII, no display name) or raise.

    A display name travels separately (from_name), so nothing here needs RFC 5322 quoting.
    """
    check_header_value(address, header)
    match = _ADDRESS.fullmatch(address)
    if match is None or len(address) > 254 or len(match["local"]) > 64:
        raise ValueError(f"{header}: not a plain e-mail address (local@domain)")
    return address


def check_message_id(message_id: str, header: str = "Message-ID") -> str:
    """Return `message_id` if it is a well-formed <id@domain>, or raise."""
    check_header_value(message_id, header)
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"{header}: not a message id of the form <id@domain>")
    return message_id


def make_message_id(domain: str, token: str, now: datetime) -> str:
    """A new Message-ID holding the submission token: <S-000123.20261123T101500.9f2c4a7e1b3d@provider.org>.

    The random part comes from `secrets`, so two attempts to create an id for the same submission in the
    same second still differ; the caller stores the id once and reuses it on every retry.
    """
    if not _TOKEN.fullmatch(token):
        raise ValueError("submission token must be 1-64 letters, digits or hyphens")
    if not re.fullmatch(_DOMAIN, domain):
        raise ValueError("Message-ID domain is not a host name")
    stamp = _aware(now, "now").astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    return f"<{token}.{stamp}.{secrets.token_hex(6)}@{domain}>"


def report_subject(report_type_label: str, case_ref: str, submission_token: str) -> str:
    """`MHSS Support Plan - MH-100001 [S-000123]`: what DWP and our inbox matching both read."""
    for value, name in (
        (report_type_label, "report type"),
        (case_ref, "case ref"),
        (submission_token, "token"),
    ):
        check_header_value(value, f"Subject ({name})")
        if not value.strip():
            raise ValueError(f"Subject: {name} is empty")
    return f"MHSS {report_type_label} - {case_ref} [{submission_token}]"


def safe_pdf_filename(name: str) -> str:
    """An attachment name every mail client and DWP's systems accept: ASCII letters, digits, `._-`, `.pdf`.

    Path parts are dropped, accents folded (é → e), anything else becomes `_`.
    """
    base = re.split(r"[/\\]", name)[-1]
    folded = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"\.pdf$", "", folded.strip(), flags=re.IGNORECASE)
    stem = _UNSAFE_FILENAME_CHARS.sub("_", stem).strip("._-")[:MAX_FILENAME_STEM].rstrip("._-")
    return f"{stem or 'report'}.pdf"


def render_report(req: ReportRequest) -> bytes:
    """The report e-mail as the bytes DATA carries (LF line ends): cover text, and the PDF attached under a
    safe file name. multipart/mixed, 7-bit clean (quoted-printable text, base64 PDF)."""
    if not req.pdf:
        raise ValueError("report PDF is empty")
    headers = _addressing(req.from_address, req.from_name, req.to)
    if req.reply_to is not None:
        headers.append(("Reply-To", check_address(req.reply_to, "Reply-To")))
    headers += [
        ("Subject", report_subject(req.report_type_label, req.case_ref, req.submission_token)),
        ("Date", format_datetime(_aware(req.date, "date"))),
        ("Message-ID", check_message_id(req.message_id)),
    ]
    text_cte, text = _text_body(req.cover_text or _default_cover(req))
    filename = safe_pdf_filename(req.pdf_filename)
    pdf = base64.encodebytes(req.pdf).decode("ascii")
    boundary = _boundary(text, pdf)
    head = "".join(_header(name, value) for name, value in headers)
    return (
        f"{head}MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n'
        "\n"
        f"--{boundary}\n"
        'Content-Type: text/plain; charset="utf-8"\n'
        f"Content-Transfer-Encoding: {text_cte}\n"
        "\n"
        f"{text}\n"  # the line break before a delimiter belongs to the delimiter (RFC 2046 §5.1.1)
        f"--{boundary}\n"
        f'Content-Type: application/pdf; name="{filename}"\n'
        "Content-Transfer-Encoding: base64\n"
        f'Content-Disposition: attachment;\n filename="{filename}"\n'
        "\n"
        f"{pdf}\n"
        f"--{boundary}--\n"
    ).encode("ascii")


def compose_report(req: ReportRequest) -> EmailMessage:
    """`render_report` as a message object (for callers that inspect or re-send it)."""
    message = message_from_bytes(render_report(req), policy=_POLICY)
    assert isinstance(message, EmailMessage)
    return message


def compose_notice(req: NoticeRequest) -> EmailMessage:
    """A reminder, escalation or alert: plain text, threaded by In-Reply-To/References when given."""
    msg = EmailMessage()
    _set_addressing(msg, req.from_address, req.from_name, req.to)
    if not req.subject.strip():
        raise ValueError("Subject is empty")
    msg["Subject"] = check_header_value(req.subject, "Subject")
    msg["Date"] = format_datetime(_aware(req.date, "date"))
    msg["Message-ID"] = check_message_id(req.message_id)
    if req.in_reply_to is not None:
        msg["In-Reply-To"] = check_message_id(req.in_reply_to, "In-Reply-To")
    if req.references:
        msg["References"] = " ".join(check_message_id(r, "References") for r in req.references)
    msg["Auto-Submitted"] = "auto-generated"
    # Exchange's equivalent of RFC 3834: no out-of-office or read receipts back to the mailroom.
    msg["X-Auto-Response-Suppress"] = "All"
    _set_text(msg, req.body)
    return msg


def _set_addressing(msg: EmailMessage, from_address: str, from_name: str | None, to: tuple[str, ...]) -> None:
    for name, value in _addressing(from_address, from_name, to):
        msg[name] = value


def _addressing(from_address: str, from_name: str | None, to: tuple[str, ...]) -> list[tuple[str, str]]:
    if not to:
        raise ValueError("To: at least one recipient is required")
    sender = check_address(from_address, "From")
    if from_name is not None:
        check_header_value(from_name, "From (display name)")
        # str(Address) quotes a display name with specials; _header encodes one that is not ASCII.
        sender = str(Address(display_name=from_name, addr_spec=sender))
    return [("From", sender), ("To", ", ".join(check_address(a, "To") for a in to))]


def _header(name: str, value: str) -> str:
    """One header line; values that are not short ASCII are encoded (RFC 2047) and folded by the policy."""
    if value.isascii() and len(name) + 2 + len(value) <= MAX_LINE:
        return f"{name}: {value}\n"
    return str(_POLICY.header_factory(name, value).fold(policy=_POLICY))


def _text_body(text: str) -> tuple[str, str]:
    """The cover text with LF line ends, and the transfer encoding that keeps it 7-bit and short-lined."""
    body = _normal_lines(text)
    if _is_plain(body):
        return "7bit", body
    # As the email package does it: encode as UTF-8, then quoted-printable over the bytes as latin-1.
    encoded = quoprimime.body_encode(body.encode("utf-8").decode("latin-1"), 76)
    return "quoted-printable", encoded if encoded.endswith("\n") else encoded + "\n"


def _boundary(*parts: str) -> str:
    # Neither base64 nor quoted-printable can contain "=_", but 7-bit cover text is free text: check.
    while True:
        boundary = f"=_mhss_{secrets.token_hex(12)}"
        if not any(boundary in part for part in parts):
            return boundary


def _normal_lines(text: str) -> str:
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    return body if body.endswith("\n") else body + "\n"


def _is_plain(body: str) -> bool:
    # 7bit means printable ASCII in short lines (RFC 2045 §2.7): no NUL, no bare control characters.
    return not _NOT_7BIT_TEXT.search(body) and all(len(line) <= MAX_LINE for line in body.split("\n"))


def _set_text(msg: EmailMessage, text: str) -> None:
    body = _normal_lines(text)
    # Quoted-printable for anything else keeps the message 7-bit clean: no 8BITMIME needed on any relay.
    msg.set_content(body, charset="utf-8", cte="7bit" if _is_plain(body) else "quoted-printable")


def _default_cover(req: ReportRequest) -> str:
    return (
        f"Please find attached the {req.report_type_label} for case {req.case_ref} "
        f"(submission {req.submission_token}).\n"
    )


def _aware(value: datetime, name: str) -> datetime:
    # A naive time has no meaning in a Date header or an id that must sort across servers.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value
