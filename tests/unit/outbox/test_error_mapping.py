"""Error classification at the SMTP edge: which failures are retried, which fail the submission at once."""

from __future__ import annotations

import ssl

import aiosmtplib
import pytest

from outbox.errors import (
    PermanentSendError,
    RelayUnavailable,
    SendError,
    SessionRefused,
    TransientSendError,
    UnconfirmedSend,
)
from outbox.smtp_errors import all_refused, classify_failure
from outbox.types import SmtpStage

WHERE = "relay.example:587"


def chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def cert_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error.verify_message = "self-signed certificate"
    return error


@pytest.mark.parametrize(
    ("error", "stage", "kind", "code"),
    [
        (
            aiosmtplib.SMTPSenderRefused(451, "4.3.0 Try later", "a@b"),
            SmtpStage.MAIL,
            TransientSendError,
            451,
        ),
        (
            aiosmtplib.SMTPSenderRefused(553, "5.7.1 Not allowed", "a@b"),
            SmtpStage.MAIL,
            PermanentSendError,
            553,
        ),
        (
            aiosmtplib.SMTPRecipientRefused(421, "4.3.2 Closing", "a@b"),
            SmtpStage.RCPT,
            TransientSendError,
            421,
        ),
        (
            aiosmtplib.SMTPDataError(452, "4.3.1 Insufficient storage"),
            SmtpStage.DATA,
            TransientSendError,
            452,
        ),
        (aiosmtplib.SMTPDataError(554, "5.6.0 Content rejected"), SmtpStage.DATA, PermanentSendError, 554),
        (
            aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Bad credentials"),
            SmtpStage.AUTH,
            SessionRefused,
            535,
        ),
        (
            aiosmtplib.SMTPAuthenticationError(454, "4.7.0 Temporary auth failure"),
            SmtpStage.AUTH,
            RelayUnavailable,  # before any message: the outbox defers the batch, not report by report
            454,
        ),
        (
            aiosmtplib.SMTPConnectResponseError(554, "5.3.2 Not accepting mail"),
            SmtpStage.CONNECT,
            SessionRefused,
            554,
        ),
        (aiosmtplib.SMTPHeloError(501, "5.5.4 Bad EHLO"), SmtpStage.EHLO, SessionRefused, 501),
    ],
)
def test_replies_are_classified_by_their_code_and_keep_it(
    error: aiosmtplib.SMTPResponseException, stage: SmtpStage, kind: type[SendError], code: int
) -> None:
    mapped = classify_failure(error, stage, WHERE)
    assert type(mapped) is kind
    assert mapped.code == code
    assert mapped.text == error.message
    assert str(mapped) == f"SMTP relay {WHERE} refused {stage}: {code} {error.message}"


@pytest.mark.parametrize(
    ("error", "stage", "expected", "kind"),
    [
        (
            aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"),
            SmtpStage.DATA,
            "connection failed at DATA",
            UnconfirmedSend,  # the relay may have read the whole message
        ),
        (
            aiosmtplib.SMTPConnectError("Error connecting to relay.example on port 587: [Errno 111] refused"),
            SmtpStage.CONNECT,
            "connection failed at connect",
            RelayUnavailable,
        ),
        (
            ConnectionResetError(104, "Connection reset by peer"),
            SmtpStage.RCPT,
            "connection failed at RCPT",
            TransientSendError,
        ),
        (
            aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"),
            SmtpStage.DATA,
            "timed out at DATA",
            UnconfirmedSend,
        ),
        (
            aiosmtplib.SMTPConnectTimeoutError("Timed out connecting"),
            SmtpStage.CONNECT,
            "timed out at connect",
            RelayUnavailable,
        ),
        (TimeoutError(), SmtpStage.MAIL, "timed out at MAIL", TransientSendError),
        (
            chained(
                aiosmtplib.SMTPConnectError("handshake"), ssl.SSLEOFError(8, "EOF in violation of protocol")
            ),
            SmtpStage.CONNECT,
            "connection failed at connect",
            RelayUnavailable,
        ),
    ],
)
def test_drops_and_timeouts_are_transient(
    error: BaseException, stage: SmtpStage, expected: str, kind: type[TransientSendError]
) -> None:
    mapped = classify_failure(error, stage, WHERE)
    assert type(mapped) is kind and isinstance(mapped, TransientSendError)
    assert expected in str(mapped)
    assert mapped.code is None


@pytest.mark.parametrize(
    "error",
    [
        cert_error(),
        chained(aiosmtplib.SMTPConnectError("Error connecting: certificate verify failed"), cert_error()),
    ],
)
def test_certificate_verification_failure_is_permanent(error: BaseException) -> None:
    mapped = classify_failure(error, SmtpStage.STARTTLS, WHERE)
    # Permanent, and refused before any message: the whole batch waits rather than failing report by report.
    assert type(mapped) is SessionRefused
    assert isinstance(mapped, PermanentSendError)
    assert str(mapped) == f"TLS certificate of SMTP relay {WHERE} not trusted: self-signed certificate"


def test_other_tls_handshake_failures_are_permanent() -> None:
    wrong_version = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    wrong_version.reason = "WRONG_VERSION_NUMBER"
    mapped = classify_failure(
        chained(aiosmtplib.SMTPConnectError("x"), wrong_version), SmtpStage.CONNECT, WHERE
    )
    assert type(mapped) is SessionRefused
    assert "WRONG_VERSION_NUMBER" in str(mapped)


def test_missing_extension_is_permanent() -> None:
    mapped = classify_failure(aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported"), SmtpStage.MAIL, WHERE)
    assert type(mapped) is PermanentSendError
    assert "SMTPUTF8 is not supported" in str(mapped)


def test_all_recipients_refused_permanently() -> None:
    mapped = all_refused({"a@x.example": (550, "5.1.1 Unknown"), "b@x.example": (553, "5.1.3 Bad")}, WHERE)
    assert type(mapped) is PermanentSendError
    assert (mapped.code, mapped.text) == (550, "5.1.1 Unknown")
    assert "refused all 2 recipient(s) at RCPT" in str(mapped)


def test_all_refused_with_any_temporary_refusal_is_transient_and_reports_it() -> None:
    mapped = all_refused({"a@x.example": (550, "5.1.1 Unknown"), "b@x.example": (450, "4.2.1 Busy")}, WHERE)
    assert type(mapped) is TransientSendError
    assert (mapped.code, mapped.text) == (450, "4.2.1 Busy")
