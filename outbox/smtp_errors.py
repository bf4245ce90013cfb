"""SMTP failures mapped to what the outbox does next: TransientSendError (retry with backoff) or
PermanentSendError (fail and alert), by the stage that failed and the reply code (RFC 5321 §4.2.1).
A cut or a timeout at DATA without a reply is UnconfirmedSend: transient, but the relay may have the message.
Failures before any message (connect, greeting, TLS, EHLO, AUTH) are SessionRefused (permanent) or
RelayUnavailable (temporary): about the relay or our configuration, not the message.
"""

from __future__ import annotations

import ssl

import aiosmtplib

from outbox.errors import (
    PermanentSendError,
    RelayUnavailable,
    SendError,
    SessionRefused,
    TransientSendError,
    UnconfirmedSend,
)
from outbox.types import SmtpStage

# A TLS session that ends without a close_notify: the peer dropped the connection.
_SSL_DROPS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def classify_failure(error: BaseException, stage: SmtpStage, where: str) -> SendError:
    """Map an aiosmtplib/socket/TLS error to Transient or Permanent, keeping the SMTP code and text."""
    mapped = _classify(error, stage, where)
    if isinstance(mapped, PermanentSendError) and stage in _SESSION_STAGES:
        return SessionRefused(str(mapped), code=mapped.code, text=mapped.text)
    if isinstance(mapped, TransientSendError) and stage in _SESSION_STAGES:
        return RelayUnavailable(str(mapped), code=mapped.code, text=mapped.text)
    return mapped


_SESSION_STAGES = frozenset({SmtpStage.CONNECT, SmtpStage.STARTTLS, SmtpStage.EHLO, SmtpStage.AUTH})


def _classify(error: BaseException, stage: SmtpStage, where: str) -> SendError:
    tls = _tls_failure(error)
    if isinstance(tls, ssl.SSLCertVerificationError):
        detail = tls.verify_message or tls.reason or "verification failed"
        return PermanentSendError(f"TLS certificate of SMTP relay {where} not trusted: {detail}")
    if tls is not None:
        return PermanentSendError(f"TLS with SMTP relay {where} failed at {stage}: {tls.reason or tls}")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        code, text = error.code, error.message
        kind = PermanentSendError if 500 <= code <= 599 else TransientSendError
        return kind(f"SMTP relay {where} refused {stage}: {code} {text}", code=code, text=text)
    # No reply at DATA: aiosmtplib's data() sends the command and the content in one call, so the relay may
    # hold the whole message (the duplicate window). Counted as unconfirmed even when the cut came before
    # the content went out: a resend is harmless, claiming "not delivered" when it was is not.
    kind = UnconfirmedSend if stage is SmtpStage.DATA else TransientSendError
    if isinstance(error, TimeoutError):
        return kind(f"SMTP relay {where} timed out at {stage}")
    if isinstance(error, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError):
        return kind(f"SMTP relay {where}: connection failed at {stage} ({_detail(error)})")
    # Anything else aiosmtplib raises (an extension or AUTH the relay lacks) will fail again the same way.
    return PermanentSendError(f"SMTP with relay {where} failed at {stage}: {_detail(error)}")


def all_refused(refused: dict[str, tuple[int, str]], where: str) -> SendError:
    """Every recipient refused: permanent only if every refusal was 5xx."""
    code, text = next(iter(refused.values()))
    permanent = all(500 <= c <= 599 for c, _ in refused.values())
    if not permanent:
        code, text = next((c, t) for c, t in refused.values() if not 500 <= c <= 599)
    kind = PermanentSendError if permanent else TransientSendError
    return kind(
        f"SMTP relay {where} refused all {len(refused)} recipient(s) at RCPT: {code} {text}",
        code=code,
        text=text,
    )


def is_dropped(error: BaseException) -> bool:
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return error.code == 421
    return isinstance(error, aiosmtplib.SMTPServerDisconnected | ConnectionError)


def _tls_failure(error: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError) and not isinstance(current, _SSL_DROPS):
            return current
        current = current.__cause__ or current.__context__
    return None


def _detail(error: BaseException) -> str:
    text = error.message if isinstance(error, aiosmtplib.SMTPException) else str(error)
    return text or type(error).__name__
