"""Errors raised by the outbox package.

    SendError(Exception)
    ├── TransientSendError(SendError)     4xx, refused connection, disconnect, timeout: retry with backoff
    ├── PermanentSendError(SendError)     5xx, TLS verification failure, auth refused: fail and alert
    │   └── SessionRefused                before any message: TLS, EHLO or AUTH refused (configuration)
    ├── PartialDelivery(SendError)        some recipients accepted, some refused (carries both)
    ├── RecipientNotAllowed(SendError)    a recipient is not on the allow-list: nothing was sent
    ├── InsecureTransport(SendError)      plain text asked for where it is not allowed: nothing was sent
    └── HeaderInjection(SendError, ValueError)  CR or LF in a header value: nothing was composed
    CryptoError(Exception)                gpg failed: missing or untrusted key, bad data, no binary

Every SendError carries the SMTP code and text when the server gave one. Messages never include
passwords, tokens or message bodies.
"""

from __future__ import annotations


class SendError(Exception):
    """Base class for failures to send."""

    def __init__(self, message: str, *, code: int | None = None, text: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.text = text


class TransientSendError(SendError):
    """Worth retrying later: 4xx, connection refused or dropped, timeout."""


class PermanentSendError(SendError):
    """Retrying will not help: 5xx, TLS verification failure, authentication refused."""


class SessionRefused(PermanentSendError):
    """The relay refused us before any message was offered (TLS, EHLO, AUTH): a configuration problem that
    every message would hit alike, so callers keep the messages queued rather than fail each one."""


class PartialDelivery(SendError):
    """The server accepted some recipients and refused others."""

    def __init__(
        self,
        message: str,
        *,
        accepted: tuple[str, ...],
        refused: dict[str, tuple[int, str]],
        code: int | None = None,
        text: str | None = None,
    ) -> None:
        super().__init__(message, code=code, text=text)
        self.accepted = accepted
        self.refused = refused


class RecipientNotAllowed(SendError):
    """A recipient is not on the outbound allow-list; no connection was opened."""


class InsecureTransport(SendError):
    """Plain-text SMTP was configured for a host where it is not allowed; no connection was opened."""


class HeaderInjection(SendError, ValueError):
    """A header value contains CR or LF."""


class CryptoError(Exception):
    """GnuPG failed: missing or untrusted key, undecryptable data, or no gpg binary."""
