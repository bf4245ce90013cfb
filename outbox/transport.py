"""SMTP sending with aiosmtplib: verified TLS, AUTH, the allow-list first, failures classified at the edge.

    transport = SmtpTransport(options, allow_list)      # checks the config, builds ONE ssl.SSLContext
    async with transport.session() as smtp:             # one connection for a batch of queued submissions
        receipt = await smtp.send(message)              # SendReceipt, or a SendError subclass
    receipt = await transport.send(message)             # one-shot: connect, send, QUIT

Rules (docs/sending.md has the table):
- Recipients are checked against the allow-list before any connection is opened.
- `security = "tls"` is implicit TLS (port 465), `"starttls"` requires the relay to offer STARTTLS (a relay
  that does not is a permanent failure: we never fall back to plain text), `"none"` is only allowed to a
  loopback host with `allow_insecure_loopback` (local harnesses).
- Certificates are always verified, with hostname checking, against `ca_file` or the system store. The
  context is built once: aiosmtplib's `cert_bundle=` would reload the CA store on every connection (27 ms).
- 4xx replies, refused or dropped connections and timeouts raise TransientSendError (RelayUnavailable
  before any message, UnconfirmedSend when DATA got no reply); 5xx replies, TLS verification failures and
  relays lacking STARTTLS or a usable AUTH raise PermanentSendError (SessionRefused before any message).
  Each is raised `from` the aiosmtplib error and keeps the SMTP code and text.
- A session reconnects by itself when the relay closed an idle connection: if MAIL on a reused connection
  meets a disconnect or a 421, nothing of the message was sent yet, so it reconnects and tries once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from types import TracebackType
from typing import TypeVar

import aiosmtplib
from aiosmtplib import SMTPResponse

from outbox.allowlist import AllowList
from outbox.compose import check_address
from outbox.errors import (
    InsecureTransport,
    PartialDelivery,
    PermanentSendError,
    RelayUnavailable,
)
from outbox.smtp_errors import all_refused, classify_failure, is_dropped
from outbox.types import SendReceipt, SmtpOptions, SmtpStage

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# LF line ends: aiosmtplib's data() turns every line end into CRLF anyway, and serialising with CRLF
# directly costs twice as long (3.2 ms against 1.8 ms for a 50 KB report).
_WIRE_POLICY = email.policy.default
_SMTP_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)
# aiosmtplib starts the DATA reply timer once the content is buffered, not sent: a large report on a slow
# link would time out while still uploading. Beyond the first MiB, allow a second per 64 KiB.
_DATA_ALLOWANCE_FREE = 1024 * 1024
_DATA_ALLOWANCE_RATE = 64 * 1024


@dataclass(frozen=True)
class Envelope:
    """One message ready for the wire: checked recipients, the bytes DATA will carry."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    content: bytes

    @property
    def wire_size(self) -> int:
        """Octets DATA will carry once every line end is CRLF (RFC 1870 SIZE)."""
        content = self.content
        return len(content) + content.count(b"\n") - content.count(b"\r\n")


class _Client(aiosmtplib.SMTP):
    """aiosmtplib's client, closing without waiting for the relay's TLS close_notify.

    Its close() starts a graceful TLS shutdown, which waits up to 30 s for a relay that may be hung or
    gone; if the event loop ends first (a CLI command, a test) the socket underneath is never closed.
    Every close happens after QUIT was answered or when the connection is being thrown away, so
    cutting it loses nothing.
    """

    def close(self) -> None:
        transport = self.transport
        super().close()
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()


class _StepFailed(Exception):
    """Internal: an aiosmtplib error and the SMTP stage it happened at, classified once at the top."""

    def __init__(self, stage: SmtpStage, error: BaseException) -> None:
        super().__init__(stage.value)
        self.stage = stage
        self.error = error


class SmtpTransport:
    """Holds the checked options, the TLS context and the allow-list; hands out sessions."""

    def __init__(self, options: SmtpOptions, allow_list: AllowList) -> None:
        _check_security(options)
        _check_auth(options)
        self.options = options
        self.allow_list = allow_list
        self.where = f"{options.host}:{options.port}"
        self.tls_context = build_tls_context(options.ca_file) if options.security != "none" else None
        self.redirect_to = (
            check_address(options.redirect_all_to, "redirect_all_to") if options.redirect_all_to else None
        )
        self._local_hostname = options.local_hostname or None
        if self.redirect_to:
            log.warning(
                "REDIRECT ACTIVE: every message goes to %s instead of its recipients (X-Original-To keeps "
                "them). Test systems only: nothing will reach DWP.",
                self.redirect_to,
            )

    def session(self) -> SmtpSession:
        """A connection for several messages, opened on the first send, closed (QUIT) on exit."""
        return SmtpSession(self)

    async def send(self, message: EmailMessage, recipients: Sequence[str] | None = None) -> SendReceipt:
        """Send one message over a connection of its own."""
        envelope = self.envelope(message, recipients)
        async with self.session() as smtp:
            return await smtp.send_envelope(envelope)

    async def verify(self) -> None:
        """Connect, TLS, EHLO, AUTH and QUIT: for `mailroom doctor`. Raises a SendError on failure."""
        async with self.session() as smtp:
            await smtp.connect()

    def envelope(self, message: EmailMessage, recipients: Sequence[str] | None = None) -> Envelope:
        """Check the recipients against the allow-list and serialise; nothing touches the network."""
        message_id = str(message.get("Message-ID", "")).strip()
        if not message_id:
            raise ValueError("message has no Message-ID: it must be generated and stored before sending")
        if message.get_all("Bcc"):
            raise ValueError("message has a Bcc header; pass extra recipients as recipients= instead")
        original = tuple(recipients) if recipients is not None else _header_recipients(message)
        return self.envelope_for(
            message_id, _sender(message), original, message.as_bytes(policy=_WIRE_POLICY)
        )

    def envelope_for(
        self, message_id: str, sender: str, recipients: Sequence[str], content: bytes
    ) -> Envelope:
        """The same for a message already rendered to bytes (`outbox.compose.render_report`)."""
        original = tuple(recipients)
        self.allow_list.check(original)
        if self.redirect_to is None:
            return Envelope(message_id, sender, original, content)
        header = b"X-Original-To: " + ", ".join(original).encode("ascii") + b"\n"
        return Envelope(message_id, sender, (self.redirect_to,), header + content)

    async def local_hostname(self) -> str:
        if self._local_hostname is None:
            # getfqdn may wait on DNS; resolve once per transport, off the event loop.
            self._local_hostname = await asyncio.to_thread(_fqdn)
        return self._local_hostname


class SmtpSession:
    """One SMTP connection reused for a batch of messages; not for concurrent use by several tasks."""

    def __init__(self, transport: SmtpTransport) -> None:
        self._transport = transport
        self._options = transport.options
        self._client: aiosmtplib.SMTP | None = None
        self._busy = asyncio.Lock()  # one SMTP dialogue at a time, even if two tasks share the session
        self.connections_opened = 0
        self.messages_sent = 0

    async def __aenter__(self) -> SmtpSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def send(self, message: EmailMessage, recipients: Sequence[str] | None = None) -> SendReceipt:
        """Send one message, reconnecting if needed; SendReceipt on success, else a SendError."""
        return await self.send_envelope(self._transport.envelope(message, recipients))

    async def send_envelope(self, envelope: Envelope) -> SendReceipt:
        """Send an envelope made by SmtpTransport.envelope (allow-list already checked)."""
        try:
            async with self._busy:
                return await self._deliver(envelope)
        except _StepFailed as failed:
            raise classify_failure(failed.error, failed.stage, self._transport.where) from failed.error

    async def connect(self) -> None:
        """Open (or keep) the connection now: TLS verified and AUTH done."""
        try:
            await self._connection()
        except _StepFailed as failed:
            raise classify_failure(failed.error, failed.stage, self._transport.where) from failed.error

    async def close(self) -> None:
        """QUIT politely, then close the socket at once."""
        client, self._client = self._client, None
        if client is None:
            return
        if client.is_connected:
            with contextlib.suppress(*_SMTP_ERRORS):
                await client.quit()
        client.close()
        await asyncio.sleep(0)  # let the loop run the socket's close callback before the caller moves on

    async def _deliver(self, envelope: Envelope) -> SendReceipt:
        client, reused = await self._connection()
        try:
            receipt = await self._transaction(client, envelope)
        except _StepFailed as failed:
            if not (reused and failed.stage is SmtpStage.MAIL and is_dropped(failed.error)):
                raise
            log.info("SMTP relay %s closed the idle connection; reconnecting", self._transport.where)
            self._drop()
            client, _ = await self._connection()
            receipt = await self._transaction(client, envelope)
        self.messages_sent += 1
        return receipt

    async def _connection(self) -> tuple[aiosmtplib.SMTP, bool]:
        if self._client is not None and self._client.is_connected:
            return self._client, True
        self._drop()
        self._client = await self._open()
        self.connections_opened += 1
        return self._client, False

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _open(self) -> aiosmtplib.SMTP:
        options = self._options
        client = _Client(
            hostname=options.host,
            port=options.port,
            local_hostname=await self._transport.local_hostname(),
            timeout=options.timeout,
            use_tls=options.security == "tls",
            start_tls=False,
            tls_context=self._transport.tls_context,
        )
        try:
            await _step(SmtpStage.CONNECT, client.connect())
            if options.security == "starttls":
                await self._start_tls(client)
            await _step(SmtpStage.EHLO, client.ehlo())
            await self._authenticate(client)
        except BaseException:
            client.close()
            raise
        if log.isEnabledFor(logging.DEBUG):
            log.debug("connected to SMTP relay %s (%s)", self._transport.where, _tls_version(client))
        return client

    async def _start_tls(self, client: aiosmtplib.SMTP) -> None:
        await _step(SmtpStage.EHLO, client.ehlo())
        if not client.supports_extension("starttls"):
            raise PermanentSendError(
                f"SMTP relay {self._transport.where} does not offer STARTTLS; refusing to send in plain text"
            )
        await _step(SmtpStage.STARTTLS, client.starttls())

    async def _authenticate(self, client: aiosmtplib.SMTP) -> None:
        options = self._options
        if not options.username:
            return
        offered = client.server_auth_methods
        if options.auth == "xoauth2":
            self._require_mechanism(offered, "xoauth2")
            token = await self._oauth_token()
            try:
                await _step(SmtpStage.AUTH, client.auth_xoauth2(options.username, token))
            except _StepFailed:
                if options.token_refused is not None:
                    options.token_refused()
                raise
            return
        password = options.password or ""
        if "plain" in offered:
            await _step(SmtpStage.AUTH, client.auth_plain(options.username, password))
        else:
            self._require_mechanism(offered, "login")
            await _step(SmtpStage.AUTH, client.auth_login(options.username, password))

    def _require_mechanism(self, offered: list[str], mechanism: str) -> None:
        if mechanism not in offered:
            shown = " ".join(offered).upper() or "none"
            where = self._transport.where
            raise PermanentSendError(f"SMTP relay {where} offers no AUTH {mechanism.upper()} (only: {shown})")

    async def _oauth_token(self) -> str:
        provider = self._options.token_provider
        assert provider is not None  # _check_auth guarantees it
        try:
            # A provider usually runs a command or an HTTP call: keep it off the event loop.
            token = (await asyncio.to_thread(provider)).strip()
        except Exception as exc:
            raise RelayUnavailable(f"OAuth2 token for {self._transport.where} not obtained") from exc
        if not token:
            # Before any message, like a 454 at AUTH: the outbox defers the batch with it.
            raise RelayUnavailable(f"OAuth2 token for {self._transport.where} is empty")
        return token

    async def _transaction(self, client: aiosmtplib.SMTP, envelope: Envelope) -> SendReceipt:
        try:
            accepted, refused, reply = await self._exchange(client, envelope)
        except Exception:
            await _reset_quietly(client)
            raise
        except BaseException:
            # Cancelled mid-dialogue: the relay's state is unknown, so the connection cannot be reused.
            client.close()
            raise
        return self._receipt(envelope, accepted, refused, reply)

    async def _exchange(
        self, client: aiosmtplib.SMTP, envelope: Envelope
    ) -> tuple[tuple[str, ...], dict[str, tuple[int, str]], SMTPResponse]:
        await _step(SmtpStage.MAIL, client.mail(envelope.sender, options=_mail_options(client, envelope)))
        accepted, refusals = await _recipients(client, envelope.recipients)
        refused = {r.recipient: (r.code, r.message) for r in refusals}
        if not accepted:
            raise all_refused(refused, self._transport.where) from aiosmtplib.SMTPRecipientsRefused(refusals)
        timeout = (
            self._options.timeout + max(0, envelope.wire_size - _DATA_ALLOWANCE_FREE) / _DATA_ALLOWANCE_RATE
        )
        reply = await _step(SmtpStage.DATA, client.data(envelope.content, timeout=timeout))
        return accepted, refused, reply

    def _receipt(
        self,
        envelope: Envelope,
        accepted: tuple[str, ...],
        refused: dict[str, tuple[int, str]],
        reply: SMTPResponse,
    ) -> SendReceipt:
        where = self._transport.where
        if refused:
            raise PartialDelivery(
                f"SMTP relay {where} took {envelope.message_id} for {len(accepted)} recipient(s) "
                f"and refused {len(refused)}",
                accepted=accepted,
                refused=refused,
                code=reply.code,
                text=reply.message,
            )
        log.info(
            "sent %s to %d recipient(s) via %s: %d %s",
            envelope.message_id,
            len(accepted),
            where,
            reply.code,
            reply.message,
        )
        return SendReceipt(
            message_id=envelope.message_id, accepted=accepted, refused={}, code=reply.code, text=reply.message
        )


def build_tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification and hostname checks on; `ca_file` replaces the system store when given."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise PermanentSendError(f"SMTP ca_file {ca_file} cannot be loaded: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP literal; any other name could resolve anywhere."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _step(stage: SmtpStage, command: Awaitable[_T]) -> _T:
    try:
        return await command
    except _SMTP_ERRORS as exc:
        raise _StepFailed(stage, exc) from exc


async def _recipients(
    client: aiosmtplib.SMTP, recipients: tuple[str, ...]
) -> tuple[tuple[str, ...], list[aiosmtplib.SMTPRecipientRefused]]:
    accepted: list[str] = []
    refusals: list[aiosmtplib.SMTPRecipientRefused] = []
    for recipient in recipients:
        try:
            await client.rcpt(recipient)
        except aiosmtplib.SMTPRecipientRefused as exc:
            # 421 closes the session: that is the relay going away, not a verdict on this recipient.
            if exc.code == 421 or not client.is_connected:
                raise _StepFailed(SmtpStage.RCPT, exc) from exc
            refusals.append(exc)
        except _SMTP_ERRORS as exc:
            raise _StepFailed(SmtpStage.RCPT, exc) from exc
        else:
            accepted.append(recipient)
    return tuple(accepted), refusals


def _mail_options(client: aiosmtplib.SMTP, envelope: Envelope) -> list[str]:
    options = []
    if client.supports_extension("size"):
        options.append(f"SIZE={envelope.wire_size}")
    if not envelope.content.isascii():
        if not client.supports_extension("8bitmime"):
            raise PermanentSendError(
                f"{envelope.message_id} is not 7-bit and the relay does not offer 8BITMIME"
            )
        options.append("BODY=8BITMIME")
    return options


async def _reset_quietly(client: aiosmtplib.SMTP) -> None:
    """Clear the half-built envelope so the connection can carry the next message; drop it if that fails."""
    if not client.is_connected:
        return
    try:
        await client.rset()
    except _SMTP_ERRORS:
        client.close()


def _tls_version(client: aiosmtplib.SMTP) -> str:
    ssl_object = client.get_transport_info("ssl_object")
    return str(ssl_object.version()) if ssl_object is not None else "plain text"


def _fqdn() -> str:
    return socket.getfqdn()


def _header_recipients(message: EmailMessage) -> tuple[str, ...]:
    fields = [str(v) for name in ("To", "Cc") for v in message.get_all(name, [])]
    seen: dict[str, str] = {}
    for _, address in getaddresses(fields):
        if address:
            seen.setdefault(address.lower(), address)
    return tuple(seen.values())


def _sender(message: EmailMessage) -> str:
    fields = [str(v) for v in (message.get_all("Sender") or message.get_all("From") or [])]
    addresses = [a for _, a in getaddresses(fields) if a]
    if len(addresses) != 1:
        raise ValueError("message needs exactly one From (or Sender) address for the envelope")
    return check_address(addresses[0], "From")


def _check_security(options: SmtpOptions) -> None:
    if options.security not in ("tls", "starttls", "none"):
        raise ValueError(f"SMTP security must be tls, starttls or none, not {options.security!r}")
    if options.security != "none":
        return
    if not is_loopback(options.host):
        raise InsecureTransport(
            f"plain-text SMTP to {options.host} refused: only a loopback host may be used"
        )
    if not options.allow_insecure_loopback:
        raise InsecureTransport(
            f"plain-text SMTP to {options.host} refused: allow_insecure_loopback is off (harnesses only)"
        )


def _check_auth(options: SmtpOptions) -> None:
    if options.auth == "xoauth2" and (not options.username or options.token_provider is None):
        raise ValueError("SMTP auth = xoauth2 needs a username and a token provider")
    if options.auth == "login" and options.username and options.password is None:
        raise ValueError("SMTP username given without a password")
