"""SmtpTransport's rules that hold before any socket exists: TLS policy, allow-list, redirect, envelope."""

from __future__ import annotations

import logging
import ssl
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from outbox.allowlist import AllowList
from outbox.compose import compose_notice
from outbox.errors import InsecureTransport, PermanentSendError, RecipientNotAllowed
from outbox.transport import SmtpTransport, build_tls_context, is_loopback
from outbox.types import NoticeRequest, SmtpOptions

DWP = "accesstowork.mhss@dwp.gov.uk"
PM = "pm@dwp.gov.uk"
ALLOW = AllowList(frozenset({DWP, PM}))
OPTIONS = SmtpOptions(host="relay.provider.example", port=587, username="mailroom", password="s3cret")
# Envelope tests need no TLS context (loading the system CA store costs ~0.1 s per transport).
PLAIN = replace(OPTIONS, host="127.0.0.1", security="none", allow_insecure_loopback=True)


def message(to: tuple[str, ...] = (DWP,)) -> EmailMessage:
    return compose_notice(
        NoticeRequest(
            from_address="reports@provider.example",
            to=to,
            subject="MHSS Support Plan - MH-100001 [S-000123]",
            body="Plain body.\n" * 20,
            message_id="<S-000123.20261123T101500.0a1b2c3d4e5f@provider.example>",
            date=datetime(2026, 11, 23, 10, 15, tzinfo=UTC),
        )
    )


class TestSecurity:
    def test_plain_text_to_a_remote_host_is_refused_even_when_allowed(self) -> None:
        options = replace(OPTIONS, security="none", allow_insecure_loopback=True)
        with pytest.raises(InsecureTransport, match="only a loopback host"):
            SmtpTransport(options, ALLOW)

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.53"])
    def test_plain_text_to_loopback_needs_the_explicit_switch(self, host: str) -> None:
        with pytest.raises(InsecureTransport, match="allow_insecure_loopback is off"):
            SmtpTransport(replace(OPTIONS, host=host, security="none"), ALLOW)
        transport = SmtpTransport(
            replace(OPTIONS, host=host, security="none", allow_insecure_loopback=True), ALLOW
        )
        assert transport.tls_context is None

    def test_unknown_security_value_is_refused(self) -> None:
        with pytest.raises(ValueError, match="tls, starttls or none"):
            SmtpTransport(replace(OPTIONS, security="ssl"), ALLOW)  # type: ignore[arg-type]

    @pytest.mark.parametrize("security", ["tls", "starttls"])
    def test_one_verifying_context_is_built_at_construction(self, security: str) -> None:
        transport = SmtpTransport(replace(OPTIONS, security=security), ALLOW)  # type: ignore[arg-type]
        context = transport.tls_context
        assert context is not None
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2

    def test_ca_file_replaces_the_system_store(self, tmp_path: Path) -> None:
        import trustme

        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        context = build_tls_context(str(tmp_path / "ca.pem"))
        assert [c["subject"] for c in context.get_ca_certs()] == [
            c["subject"] for c in ssl.create_default_context(cafile=str(tmp_path / "ca.pem")).get_ca_certs()
        ]
        assert len(context.get_ca_certs()) == 1

    def test_unreadable_ca_file_is_a_permanent_configuration_error(self, tmp_path: Path) -> None:
        with pytest.raises(PermanentSendError, match=r"ca_file .*missing\.pem cannot be loaded"):
            build_tls_context(str(tmp_path / "missing.pem"))


class TestAuthOptions:
    def test_xoauth2_needs_a_token_provider(self) -> None:
        with pytest.raises(ValueError, match="xoauth2 needs a username and a token provider"):
            SmtpTransport(replace(OPTIONS, auth="xoauth2"), ALLOW)

    def test_username_without_password_is_refused(self) -> None:
        with pytest.raises(ValueError, match="without a password"):
            SmtpTransport(replace(OPTIONS, password=None), ALLOW)

    def test_secrets_stay_out_of_repr(self) -> None:
        options = replace(OPTIONS, token_provider=lambda: "tok-123")
        assert "s3cret" not in repr(options)
        assert "tok-123" not in repr(options)


class TestEnvelope:
    def test_recipients_come_from_to_and_cc_and_are_checked(self) -> None:
        msg = message(to=(DWP,))
        msg["Cc"] = PM
        envelope = SmtpTransport(PLAIN, ALLOW).envelope(msg)
        assert envelope.recipients == (DWP, PM)
        assert envelope.sender == "reports@provider.example"
        assert envelope.message_id == "<S-000123.20261123T101500.0a1b2c3d4e5f@provider.example>"

    def test_a_recipient_off_the_list_stops_everything(self) -> None:
        with pytest.raises(RecipientNotAllowed, match="1 of 2"):
            SmtpTransport(PLAIN, ALLOW).envelope(message(to=(DWP, "someone@gmail.example")))

    def test_explicit_recipients_are_checked_too(self) -> None:
        with pytest.raises(RecipientNotAllowed):
            SmtpTransport(PLAIN, ALLOW).envelope(message(), recipients=["someone@gmail.example"])

    def test_bcc_header_is_refused(self) -> None:
        msg = message()
        msg["Bcc"] = PM
        with pytest.raises(ValueError, match="Bcc"):
            SmtpTransport(PLAIN, ALLOW).envelope(msg)

    def test_message_without_message_id_is_refused(self) -> None:
        msg = message()
        del msg["Message-ID"]
        with pytest.raises(ValueError, match="no Message-ID"):
            SmtpTransport(PLAIN, ALLOW).envelope(msg)

    def test_wire_size_counts_crlf_line_ends(self) -> None:
        envelope = SmtpTransport(PLAIN, ALLOW).envelope(message())
        assert envelope.wire_size == len(envelope.content.replace(b"\n", b"\r\n"))

    def test_redirect_rewrites_the_envelope_and_records_the_original(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="outbox.transport"):
            transport = SmtpTransport(replace(PLAIN, redirect_all_to="qa@provider.example"), ALLOW)
        assert [r.getMessage() for r in caplog.records if "REDIRECT ACTIVE" in r.getMessage()] == [
            "REDIRECT ACTIVE: every message goes to qa@provider.example instead of its recipients "
            "(X-Original-To keeps them). Test systems only: nothing will reach DWP."
        ]
        envelope = transport.envelope(message(to=(DWP, PM)))
        assert envelope.recipients == ("qa@provider.example",)
        assert envelope.content.startswith(f"X-Original-To: {DWP}, {PM}\n".encode())

    def test_redirect_still_applies_the_allow_list_to_the_original_recipients(self) -> None:
        transport = SmtpTransport(replace(PLAIN, redirect_all_to="qa@provider.example"), ALLOW)
        with pytest.raises(RecipientNotAllowed):
            transport.envelope(message(to=("someone@gmail.example",)))

    def test_redirect_target_must_be_an_address(self) -> None:
        with pytest.raises(ValueError, match="redirect_all_to"):
            SmtpTransport(replace(PLAIN, redirect_all_to="qa@provider.example\r\nX: y"), ALLOW)

    def test_envelope_does_not_change_the_callers_message(self) -> None:
        msg = message()
        before = msg.as_bytes()
        SmtpTransport(replace(PLAIN, redirect_all_to="qa@provider.example"), ALLOW).envelope(msg)
        assert msg.as_bytes() == before


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True), ("LOCALHOST.", True),
     ("10.0.0.1", False), ("relay.example", False), ("localhost.evil.example", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
