"""Errors raised by the outbox package.

    SendError(Exception)
    ├── TransientSendError(SendError)     4xx, refused connection, disconnect, timeout: retry with backoff
    │   ├── UnconfirmedSend               cut or timed out at DATA, no reply: the relay may have it
    │   └── RelayUnavailable              before any message: connect, greeting, TLS, EHLO or AUTH (4xx)
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


class UnconfirmedSend(TransientSendError):
    """The connection broke or timed out at DATA before the relay's final reply: the message may have been
    delivered. Retried like any temporary failure (with the same Message-ID); the caller records the
    attempt as sent-unconfirmed, so a duplicate at the relay can be told from a lost message."""


class RelayUnavailable(TransientSendError):
    """No session to send in (refused, dropped or timed out connecting, a 421 greeting, a 454 at AUTH):
    temporary, and about the relay, not the message, so callers defer the rest of a batch with it instead
    of meeting the same failure (and its timeout) once per message."""


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
