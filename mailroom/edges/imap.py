"""What the IMAP edge hands out and is configured with: its errors, its options, a fetched message, and the
connection-level helpers (TLS context, socket keepalive, capability and UID parsing) the Mailbox uses.
"""

from __future__ import annotations

import email.parser
import email.policy
import ipaddress
import itertools
import select
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from mailroom.core.config import AuthMethod, ImapSettings, Security
from mailroom.core.errors import MailroomError

MAX_IDLE_RENEW_MINUTES = 9  # RFC 2177 servers may drop a client idle for 30 min; NATs often sooner


_LOOPBACK_NAMES = frozenset({"localhost"})


class MailboxError(MailroomError):
    """The IMAP server refused something, or the mailbox configuration cannot work."""


class MailboxUnavailable(MailboxError, ConnectionError):
    """The server cannot be reached or dropped us (network, timeout, TLS, BYE): try again with backoff."""


class MailboxUntrusted(MailboxUnavailable):
    """The server's certificate did not verify, so nothing (no LOGIN) was sent: retried with backoff, but
    logged as an outage of its own, because it may be an attack and a person must hear of it."""


class MailboxAuthError(MailboxError):
    """The server refused the login: permanent until the credentials or configuration change."""


class UidValidityChanged(MailboxError):
    """The folder's UIDVALIDITY is not the one stored: stored UIDs mean nothing now; resync by Message-ID."""

    def __init__(self, folder: str, expected: int, actual: int) -> None:
        super().__init__(
            f"UIDVALIDITY of IMAP folder {folder} changed from {expected} to {actual}; resync by Message-ID"
        )
        self.folder = folder
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class ImapOptions:
    """How to reach the provider mailbox. Folder names use `/` for hierarchy whatever the server uses."""

    host: str
    port: int = 993
    security: Security = "tls"
    username: str = ""
    password: str = field(default="", repr=False)
    auth: AuthMethod = "login"
    token_provider: Callable[[], str] | None = field(default=None, repr=False)
    token_refused: Callable[[], None] | None = field(default=None, repr=False)  # see SmtpOptions
    ca_file: Path | None = None
    timeout: float = 60.0
    inbox_folder: str = "INBOX"
    processed_folder: str = "MHSS/Processed"
    quarantine_folder: str = "MHSS/Quarantine"
    idle_renew_minutes: int = MAX_IDLE_RENEW_MINUTES
    poll_seconds: float = 60.0
    allow_insecure_loopback: bool = False
    # Capabilities to act as if the server lacked: for servers whose MOVE or IDLE misbehaves, and for tests.
    ignore_capabilities: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.security not in ("tls", "starttls", "none"):
            raise ValueError(f"IMAP security must be tls, starttls or none, not {self.security!r}")
        if not 1 <= self.idle_renew_minutes <= MAX_IDLE_RENEW_MINUTES:
            raise ValueError(f"IMAP idle_renew_minutes must be 1 to {MAX_IDLE_RENEW_MINUTES}")
        if self.timeout <= 0 or self.poll_seconds <= 0:
            raise ValueError("IMAP timeout and poll_seconds must be positive")
        if self.auth == "xoauth2" and self.token_provider is None:
            raise ValueError("IMAP auth = xoauth2 needs a token provider")

    @classmethod
    def from_settings(
        cls,
        imap: ImapSettings,
        *,
        password: str = "",
        token_provider: Callable[[], str] | None = None,
        token_refused: Callable[[], None] | None = None,
    ) -> ImapOptions:
        """Options from the `[imap]` config section; the caller reads the password file or token command."""
        return cls(
            host=imap.host,
            port=imap.port,
            security=imap.security,
            username=imap.username,
            password=password,
            auth=imap.auth,
            token_provider=token_provider,
            token_refused=token_refused,
            ca_file=imap.ca_file,
            timeout=imap.timeout_seconds,
            inbox_folder=imap.inbox_folder,
            processed_folder=imap.processed_folder,
            quarantine_folder=imap.quarantine_folder,
            idle_renew_minutes=imap.idle_renew_minutes,
            poll_seconds=imap.poll_seconds,
            allow_insecure_loopback=imap.allow_insecure_loopback,
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class FetchedMessage:
    """One message as stored on the server: (folder, uidvalidity, uid) names it for idempotent ingest."""

    folder: str
    uidvalidity: int
    uid: int
    raw: bytes = field(repr=False)
    internaldate: datetime | None


@dataclass(frozen=True)
class Namespace:
    """Where personal folders live on this server: a prefix (often "" or "INBOX.") and the delimiter."""

    prefix: str = ""
    delimiter: str | None = "/"

    def server_name(self, folder: str) -> str:
        """Our `/`-separated folder name in the server's own spelling."""
        parts = folder.split("/")
        if parts[0].upper() == "INBOX":
            parts[0] = "INBOX"
        name = self.delimiter.join(parts) if self.delimiter else folder
        if parts[0] == "INBOX" or name.startswith(self.prefix):
            return name
        return self.prefix + name


class ImapConnection(IMAPClient):  # type: ignore[misc]  # imapclient ships no type hints
    """IMAPClient whose IDLE wait also sees responses already read into its buffer.

    imapclient's `idle()` reads the "+ idling" line through a buffered reader; a server that reports
    mail at the start of IDLE (Dovecot does) sends EXISTS in the same TLS record, so it lands in that
    buffer and `idle_check()`, which polls only the socket, would not see it until the next event.
    """

    def _poll_socket(self, sock: socket.socket, timeout: float | None = None) -> Any:
        if has_buffered_input(self._imap, sock):
            return [(sock.fileno(), select.POLLIN)]
        return super()._poll_socket(sock, timeout)


def has_buffered_input(imap: Any, sock: socket.socket) -> bool:
    reader = getattr(imap, "file", None)
    if reader is None or sock.gettimeout() != 0.0:
        return False  # only peek while idle_check has made the socket non-blocking
    try:
        return bool(reader.peek(1))
    except OSError:  # nothing buffered and nothing on the wire (SSLWantReadError, BlockingIOError)
        return False


def tls_context(options: ImapOptions) -> ssl.SSLContext:
    """One verifying context per mailbox: the configured CA file, or the system trust store."""
    try:
        context = ssl.create_default_context(cafile=str(options.ca_file) if options.ca_file else None)
    except (OSError, ssl.SSLError) as error:
        raise MailboxError(f"IMAP ca_file {options.ca_file} cannot be used: {error}") from error
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def keepalive(sock: socket.socket) -> None:
    """TCP keepalive, so a connection silently dropped by a NAT or firewall fails within minutes."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def capability_names(client: Any) -> frozenset[str]:
    return frozenset(as_text(name).upper() for name in client.capabilities())


def upper_names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name.upper() for name in names)


def uids_above(client: Any, last_uid: int) -> list[int]:
    # "N:*" always includes the highest existing UID even when it is below N (RFC 3501 §6.4.8): filter.
    return sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)


def chunks(items: list[int], size: int) -> Iterator[list[int]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def header_message_id(item: dict[bytes, Any]) -> str | None:
    raw = next((value for key, value in item.items() if key.startswith(b"BODY[")), None)
    if not isinstance(raw, bytes):
        return None
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    value = headers.get("Message-ID")
    return "".join(str(value).split()) if value is not None else None


def as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
