"""The provider's outgoing relay, on 127.0.0.1: aiosmtpd with STARTTLS and AUTH required, like a real one.

It accepts what an authenticated client sends, keeps a copy of each message in its folder (the harness's
record of everything that left the provider), and hands the message to `on_message`, which must return
quickly: the harness queues the real work (the DWP simulator, delivery to a local mailbox) on its courier.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailroom.harness.dovecot import HOST, free_ports

DATA_SIZE_LIMIT = 25 * 1024 * 1024


@dataclass(frozen=True)
class RelayedMail:
    """One message the relay accepted, as it was on the wire."""

    number: int
    mail_from: str
    recipients: tuple[str, ...]
    subject: str
    content: bytes = field(repr=False)
    path: Path


class Relay:
    """Start with start(), stop with stop(); `mail` lists what was accepted, oldest first."""

    def __init__(
        self,
        folder: Path,
        *,
        ca: trustme.CA,
        username: str,
        password: str,
        on_message: Callable[[RelayedMail], None],
    ) -> None:
        self.host = HOST
        [self.port] = free_ports(1)
        self.folder = folder
        self._username = username.encode()
        self._password = password.encode()
        self._on_message = on_message
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._mail: list[RelayedMail] = []
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(HOST, "localhost").configure_cert(self._tls)
        self._controller: Controller | None = None

    def start(self) -> None:
        # aiosmtpd logs a deprecation notice on every AUTH at INFO; it is not ours to fix.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="relay.provider.test",
            tls_context=self._tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=self._authenticate,
            data_size_limit=DATA_SIZE_LIMIT,
        )
        self._controller.start()

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def mail(self) -> list[RelayedMail]:
        with self._lock:
            return list(self._mail)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, self._username)
            and hmac.compare_digest(auth_data.password, self._password)
        )
        # handled=False: aiosmtpd answers 235 or 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def accept(self, envelope: Envelope) -> RelayedMail:
        content = envelope.original_content or b""
        headers = BytesParser(policy=default_policy).parsebytes(content, headersonly=True)
        number = next(self._numbers)
        path = self.folder / f"{number:04d}.eml"
        path.write_bytes(content)
        mail = RelayedMail(
            number=number,
            mail_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            subject=str(headers.get("Subject", "")),
            content=content,
            path=path,
        )
        with self._lock:
            self._mail.append(mail)
        self._on_message(mail)
        return mail


class _Handler:
    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        mail = self._relay.accept(envelope)
        return f"250 2.0.0 Ok: queued as H{mail.number:04d}"
