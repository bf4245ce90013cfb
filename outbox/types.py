"""Values that cross the outbox boundary: what to compose, how to reach the relay, what the relay said.

All frozen, all keyword-only, so a caller can never pass a case reference where a token belongs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

Security = Literal["tls", "starttls", "none"]
AuthMethod = Literal["login", "xoauth2"]


@dataclass(frozen=True, kw_only=True)
class ReportRequest:
    """One submission of one report to DWP's inbox.

    `message_id` is generated (make_message_id) and stored before the first attempt, and reused on every
    retry, so a resend after an unconfirmed attempt carries the same id. `date` is the composing time.
    """

    from_address: str
    to: tuple[str, ...]
    case_ref: str
    report_type_label: str
    submission_token: str
    message_id: str
    date: datetime
    pdf: bytes = field(repr=False)
    pdf_filename: str
    cover_text: str | None = field(default=None, repr=False)
    reply_to: str | None = None
    from_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class NoticeRequest:
    """A reminder, escalation or alert we write ourselves; always marked Auto-Submitted: auto-generated."""

    from_address: str
    to: tuple[str, ...]
    subject: str
    body: str = field(repr=False)
    message_id: str
    date: datetime
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    from_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class SendReceipt:
    """What the relay said when it took the message: kept on the submission as evidence."""

    message_id: str
    accepted: tuple[str, ...]
    refused: dict[str, tuple[int, str]]
    code: int
    text: str


@dataclass(frozen=True, kw_only=True)
class SmtpOptions:
    """How to reach the relay. The password is the secret itself, read from its file by the caller."""

    host: str
    port: int
    security: Security = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth: AuthMethod = "login"
    token_provider: Callable[[], str] | None = field(default=None, repr=False)
    # Told when the relay refuses a token, so that a revoked one is not reused until it would have expired.
    token_refused: Callable[[], None] | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout: float = 30.0
    allow_insecure_loopback: bool = False
    redirect_all_to: str | None = None
    local_hostname: str | None = None


class SmtpStage(StrEnum):
    """Where in the SMTP dialogue something went wrong; named in every send error."""

    CONNECT = "connect"
    STARTTLS = "STARTTLS"
    EHLO = "EHLO"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
