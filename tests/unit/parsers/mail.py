"""Small builders for inbound test messages: raw bytes shaped like what arrives from the provider's MTA."""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from parsers.message import parse_message
from parsers.types import ParsedMessage

OUR_ID = "<20261123.S-000123.abcd@provider.example>"
OUR_SUBJECT = "MHSS Support Plan - MH-100001 [S-000123]"
INBOX = "accesstowork.mhss@dwp.gov.uk"
AR_PASS = (
    "mx.provider.example; dkim=pass header.d=dwp.gov.uk header.s=s1; spf=pass smtp.mailfrom=dwp.gov.uk; "
    "dmarc=pass header.from=dwp.gov.uk"
)


def raw_message(
    body: str = "Hello.\n",
    *,
    sender: str = f"Access to Work MHSS <{INBOX}>",
    subject: str = f"RE: {OUR_SUBJECT}",
    headers: tuple[tuple[str, str], ...] = (),
    content_type: str = "text/plain; charset=utf-8",
    message_id: str = "<test.1@dwp.gov.uk>",
) -> bytes:
    """One message as raw bytes; `headers` are added after the standard ones."""
    lines = [
        f"From: {sender}",
        "To: reports@provider.example",
        f"Subject: {subject}",
        "Date: Mon, 23 Nov 2026 10:00:00 +0000",
        f"Message-ID: {message_id}",
        *(f"{name}: {value}" for name, value in headers),
        "MIME-Version: 1.0",
        f"Content-Type: {content_type}",
        "",
        body,
    ]
    return "\n".join(lines).encode("utf-8")


def message(body: str = "Hello.\n", **kwargs: Any) -> ParsedMessage:
    return parse_message(raw_message(body, **kwargs))


def pdf_with_lines(*lines: str) -> bytes:
    """A one-page PDF holding `lines` (fictional content), made with reportlab."""
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    y = 800
    for line in lines:
        page.drawString(60, y, line)
        y -= 18
    page.showPage()
    page.save()
    return buffer.getvalue()


def multipart(parts: list[tuple[str, str]], boundary: str = "b1") -> tuple[str, str]:
    """(content_type, body) for a multipart/mixed of (part headers, part body) pairs."""
    chunks = [f"--{boundary}\n{head}\n\n{body}" for head, body in parts]
    return f'multipart/mixed; boundary="{boundary}"', "\n".join(chunks) + f"\n--{boundary}--\n"
