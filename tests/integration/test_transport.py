"""SmtpTransport against a real aiosmtpd relay: STARTTLS with a test CA, AUTH, and injected faults.

Every outcome is checked twice: from what send() returned or raised, and from what the relay received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage

import aiosmtplib
import pytest

from outbox.allowlist import AllowList
from outbox.compose import compose_report, make_message_id
from outbox.errors import (
    InsecureTransport,
    PartialDelivery,
    PermanentSendError,
    RecipientNotAllowed,
    TransientSendError,
)
from outbox.transport import SmtpTransport
from outbox.types import ReportRequest, SmtpOptions
from tests.support.smtpd import DEFAULT_PASSWORD, DEFAULT_USERNAME, SmtpServer, free_port

pytestmark = pytest.mark.integration

DWP = "accesstowork.mhss@dwp.gov.uk"
PM = "pm@dwp.gov.uk"
ALLOW = AllowList(frozenset({DWP, PM, "team@provider.example"}))
NOW = datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
PDF = b"%PDF-1.7\n" + b"0123456789abcdef" * 3200 + b"\n%%EOF\n"


@pytest.fixture(scope="module")
def shared_relay() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def relay(shared_relay: SmtpServer) -> Iterator[SmtpServer]:
    shared_relay.reset()
    yield shared_relay
    shared_relay.reset()


def options_for(relay: SmtpServer, **changes: object) -> SmtpOptions:
    base = SmtpOptions(
        host=relay.host,
        port=relay.port,
        security="starttls",
        username=DEFAULT_USERNAME,
        password=DEFAULT_PASSWORD,
        ca_file=str(relay.ca_pem),
        timeout=2.0,
        local_hostname="mailroom.test",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def transport_for(relay: SmtpServer, **changes: object) -> SmtpTransport:
    return SmtpTransport(options_for(relay, **changes), ALLOW)


def report(submission: str = "S-000123", to: tuple[str, ...] = (DWP,)) -> ReportRequest:
    return ReportRequest(
        from_address="reports@provider.example",
        to=to,
        case_ref="MH-100001",
        report_type_label="Support Plan",
        submission_token=submission,
        message_id=make_message_id("provider.example", submission, NOW),
        date=NOW,
        pdf=PDF,
        pdf_filename="MH-100001-support-plan-v1.pdf",
    )


async def test_report_is_delivered_over_verified_starttls_with_auth(relay: SmtpServer) -> None:
    request = report()
    receipt = await transport_for(relay).send(compose_report(request))

    assert receipt.message_id == request.message_id
    assert receipt.accepted == (DWP,)
    assert receipt.refused == {}
    assert receipt.code == 250
    assert receipt.text.startswith("2.0.0 Ok: queued as ")

    [got] = relay.messages
    assert got.tls is True
    assert got.auth_user == DEFAULT_USERNAME
    assert (got.mail_from, got.rcpt_tos) == ("reports@provider.example", (DWP,))
    assert got.mail_options == (f"SIZE={len(got.content)}",)  # RFC 1870: exactly the octets DATA carried
    assert got.message_id == request.message_id
    assert receipt.text.endswith(f"X{got.sequence:06d}")  # the relay's own queue id came back as evidence
    parsed = got.message()
    assert parsed["Subject"] == "MHSS Support Plan - MH-100001 [S-000123]"
    [attachment] = parsed.iter_attachments()
    assert attachment.get_filename() == "MH-100001-support-plan-v1.pdf"
    assert attachment.get_content() == PDF


async def test_implicit_tls_relay() -> None:
    async with SmtpServer(security="tls") as relay:
        receipt = await transport_for(relay, security="tls").send(compose_report(report()))
        assert receipt.code == 250
        [got] = relay.messages
        assert got.tls is True
        assert got.auth_user == DEFAULT_USERNAME


async def test_the_system_trust_store_refuses_the_test_certificate(relay: SmtpServer) -> None:
    with pytest.raises(PermanentSendError, match=r"TLS certificate of SMTP relay .* not trusted") as caught:
        await transport_for(relay, ca_file=None).send(compose_report(report()))
    assert "self-signed" in str(caught.value) or "unable to get local issuer" in str(caught.value)
    assert relay.auth_attempts == []
    assert relay.transactions == []


async def test_a_certificate_for_another_host_name_is_refused() -> None:
    async with SmtpServer(cert_names=("relay.elsewhere.example",)) as relay:
        with pytest.raises(PermanentSendError, match="not trusted: IP address mismatch"):
            await transport_for(relay).send(compose_report(report()))
        assert relay.auth_attempts == []
        assert relay.transactions == []


async def test_wrong_password_is_permanent_and_never_echoed(relay: SmtpServer) -> None:
    secret = "not-the-relay-secret-4711"
    with pytest.raises(PermanentSendError) as caught:
        await transport_for(relay, password=secret).send(compose_report(report()))
    error = caught.value
    assert (error.code, error.text) == (535, "5.7.8 Authentication credentials invalid")
    assert "refused AUTH" in str(error)
    assert isinstance(error.__cause__, aiosmtplib.SMTPAuthenticationError)
    assert secret not in f"{error} {error!r} {error.text} {error.__cause__!r}"
    assert [(a.mechanism, a.login, a.success) for a in relay.auth_attempts] == [
        ("PLAIN", DEFAULT_USERNAME, False)
    ]
    assert relay.transactions == []


async def test_auth_login_when_the_relay_offers_no_plain() -> None:
    async with SmtpServer(auth_mechanisms=("LOGIN",)) as relay:
        await transport_for(relay).send(compose_report(report()))
        assert [a.mechanism for a in relay.auth_attempts] == ["LOGIN"]
        assert len(relay.messages) == 1


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
@pytest.mark.parametrize(
    ("code", "kind"), [(451, TransientSendError), (452, TransientSendError), (554, PermanentSendError)]
)
async def test_refusal_at_each_stage_is_classified_and_keeps_the_reply(
    relay: SmtpServer, stage: str, code: int, kind: type[Exception]
) -> None:
    text = f"{code // 100}.3.0 injected at {stage}"
    relay.fail_next(stage, code, text)  # type: ignore[arg-type]
    request = report()
    with pytest.raises(kind) as caught:
        await transport_for(relay).send(compose_report(request))
    error = caught.value
    assert (error.code, error.text) == (code, text)  # type: ignore[attr-defined]
    cause = aiosmtplib.SMTPRecipientsRefused if stage == "RCPT" else aiosmtplib.SMTPResponseException
    assert isinstance(error.__cause__, cause)
    assert relay.messages == []
    if stage == "DATA":
        # The content reached the relay, which refused it: what a resend must repeat exactly.
        [seen] = relay.transactions
        assert (seen.reply_code, seen.message_id) == (code, request.message_id)
    else:
        assert relay.transactions == []


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
async def test_421_and_disconnect_is_transient(relay: SmtpServer, stage: str) -> None:
    relay.reply_421_and_disconnect_at(stage)  # type: ignore[arg-type]
    with pytest.raises(TransientSendError) as caught:
        await transport_for(relay).send(compose_report(report()))
    assert caught.value.code == 421
    assert relay.messages == []
    assert relay.connections == 1


async def test_hang_up_after_data_is_transient_and_the_relay_holds_the_content(relay: SmtpServer) -> None:
    relay.hang_up_after_data()
    request = report()
    with pytest.raises(TransientSendError, match="connection failed at DATA") as caught:
        await transport_for(relay).send(compose_report(request))
    assert caught.value.code is None
    assert isinstance(caught.value.__cause__, aiosmtplib.SMTPServerDisconnected)
    [seen] = relay.transactions
    assert seen.reply_code is None  # read but never answered: an unconfirmed attempt
    assert seen.message_id == request.message_id


@pytest.mark.parametrize("stage", ["EHLO", "MAIL", "DATA"])
async def test_a_reply_slower_than_the_timeout_is_transient(relay: SmtpServer, stage: str) -> None:
    relay.slow(stage, 1.5)  # type: ignore[arg-type]
    request = report()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TransientSendError, match=f"timed out at {stage}"):
        await transport_for(relay, timeout=0.3).send(compose_report(request))
    assert loop.time() - started < 1.2
    # A slow final reply: the relay took the message but we never heard so. The resend repeats the id.
    expected = [request.message_id] if stage == "DATA" else []
    assert [m.message_id for m in relay.messages] == expected


async def test_a_large_report_gets_time_to_upload_before_the_data_reply_times_out(relay: SmtpServer) -> None:
    relay.slow("DATA", 0.8)
    request = replace(report(), pdf=PDF * 24)  # about 1.7 MB on the wire: 0.3 s + ~11 s allowance
    receipt = await transport_for(relay, timeout=0.3).send(compose_report(request))
    assert receipt.code == 250
    assert [m.message_id for m in relay.messages] == [request.message_id]


async def test_an_8bit_message_is_announced_as_8bitmime(relay: SmtpServer) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Message-ID"] = (
        "reports@provider.example",
        DWP,
        "<8bit@provider.example>",
    )
    message.set_content("Café\n", cte="8bit")
    await transport_for(relay).send(message)
    [got] = relay.messages
    assert "BODY=8BITMIME" in got.mail_options
    assert "Café".encode() in got.content


async def test_connection_refused_is_transient() -> None:
    options = SmtpOptions(host="127.0.0.1", port=free_port(), security="starttls", timeout=1.0)
    with pytest.raises(TransientSendError, match="connection failed at connect"):
        await SmtpTransport(options, ALLOW).send(compose_report(report()))


async def test_partial_refusal_delivers_to_the_rest(relay: SmtpServer) -> None:
    relay.refuse_recipient(PM, 550, "5.1.1 No such mailbox")
    with pytest.raises(PartialDelivery) as caught:
        await transport_for(relay).send(compose_report(report(to=(DWP, PM))))
    error = caught.value
    assert error.accepted == (DWP,)
    assert error.refused == {PM: (550, "5.1.1 No such mailbox")}
    assert error.code == 250
    assert error.text is not None
    assert error.text.startswith("2.0.0 Ok: queued as ")
    [got] = relay.messages
    assert got.rcpt_tos == (DWP,)


@pytest.mark.parametrize(
    ("codes", "kind"), [((550, 553), PermanentSendError), ((550, 450), TransientSendError)]
)
async def test_every_recipient_refused(
    relay: SmtpServer, codes: tuple[int, int], kind: type[Exception]
) -> None:
    relay.refuse_recipient(DWP, codes[0])
    relay.refuse_recipient(PM, codes[1])
    with pytest.raises(kind, match="refused all 2 recipient"):
        await transport_for(relay).send(compose_report(report(to=(DWP, PM))))
    assert relay.transactions == []


async def test_allow_list_refusal_opens_no_connection(relay: SmtpServer) -> None:
    transport = transport_for(relay)
    with pytest.raises(RecipientNotAllowed):
        await transport.send(compose_report(report(to=(DWP, "a.customer@gmail.example"))))
    async with transport.session() as smtp:
        with pytest.raises(RecipientNotAllowed):
            await smtp.send(compose_report(report(to=("a.customer@gmail.example",))))
    assert relay.connections == 0
    assert relay.transactions == []


async def test_plain_text_only_to_loopback_with_the_switch() -> None:
    async with SmtpServer(security="none") as relay:
        with pytest.raises(InsecureTransport):
            transport_for(relay, security="none")
        with pytest.raises(InsecureTransport):
            transport_for(relay, security="none", host="relay.example", allow_insecure_loopback=True)
        assert relay.connections == 0
        receipt = await transport_for(relay, security="none", allow_insecure_loopback=True).send(
            compose_report(report())
        )
        assert receipt.code == 250
        [got] = relay.messages
        assert got.tls is False


async def test_starttls_is_required_when_configured() -> None:
    async with SmtpServer(security="none") as relay:
        with pytest.raises(PermanentSendError, match="does not offer STARTTLS"):
            await transport_for(relay).send(compose_report(report()))
        assert relay.connections == 1
        assert relay.auth_attempts == []
        assert relay.transactions == []


async def test_redirect_all_to_sends_everything_to_one_address(relay: SmtpServer) -> None:
    transport = transport_for(relay, redirect_all_to="qa@provider.example")
    receipt = await transport.send(compose_report(report(to=(DWP, PM))))
    assert receipt.accepted == ("qa@provider.example",)
    [got] = relay.messages
    assert got.rcpt_tos == ("qa@provider.example",)
    parsed = got.message()
    assert parsed["X-Original-To"] == f"{DWP}, {PM}"
    assert parsed["To"] == f"{DWP}, {PM}"


async def test_one_connection_carries_a_batch(relay: SmtpServer) -> None:
    requests = [report(submission=f"S-{n:06d}") for n in range(1, 6)]
    async with transport_for(relay).session() as smtp:
        receipts = [await smtp.send(compose_report(r)) for r in requests]
        assert smtp.connections_opened == 1
    assert [r.message_id for r in receipts] == [r.message_id for r in requests]
    assert relay.connections == 1
    assert [m.message_id for m in relay.messages] == [r.message_id for r in requests]
    assert {m.connection for m in relay.messages} == {1}
    assert [a.success for a in relay.auth_attempts] == [True]


async def test_a_refusal_does_not_spoil_the_connection_for_the_next_message(relay: SmtpServer) -> None:
    relay.fail_next("RCPT", 550, "5.1.1 injected")
    second = report(submission="S-000002")
    async with transport_for(relay).session() as smtp:
        with pytest.raises(PermanentSendError):
            await smtp.send(compose_report(report(submission="S-000001")))
        await smtp.send(compose_report(second))
    assert relay.connections == 1
    assert [m.message_id for m in relay.messages] == [second.message_id]


async def test_session_reconnects_after_the_relay_dropped_an_idle_connection(relay: SmtpServer) -> None:
    async with transport_for(relay).session() as smtp:
        await smtp.send(compose_report(report(submission="S-000001")))
        relay.disconnect_all()
        await asyncio.sleep(0.05)
        await smtp.send(compose_report(report(submission="S-000002")))
        assert smtp.connections_opened == 2
    assert relay.connections == 2
    assert [m.connection for m in relay.messages] == [1, 2]


async def test_session_retries_once_when_a_reused_connection_answers_mail_with_421(relay: SmtpServer) -> None:
    first, second = report(submission="S-000001"), report(submission="S-000002")
    async with transport_for(relay).session() as smtp:
        await smtp.send(compose_report(first))
        relay.reply_421_and_disconnect_at("MAIL")  # e.g. the relay's idle timeout fired
        receipt = await smtp.send(compose_report(second))
    assert receipt.code == 250
    assert relay.connections == 2
    assert [m.message_id for m in relay.messages] == [first.message_id, second.message_id]


async def test_a_fresh_connection_is_not_retried(relay: SmtpServer) -> None:
    relay.reply_421_and_disconnect_at("MAIL", count=2)
    with pytest.raises(TransientSendError):
        async with transport_for(relay).session() as smtp:
            await smtp.send(compose_report(report()))
    assert relay.connections == 1


async def test_xoauth2() -> None:
    token = "ya29.test-access-token"
    async with SmtpServer(xoauth2_tokens={"reports@provider.example": token}) as relay:
        calls: list[int] = []

        def provider() -> str:
            calls.append(1)
            return token + "\n"

        transport = transport_for(
            relay, auth="xoauth2", username="reports@provider.example", password=None, token_provider=provider
        )
        receipt = await transport.send(compose_report(report()))
        assert receipt.code == 250
        assert calls == [1]
        assert [(a.mechanism, a.login, a.success) for a in relay.auth_attempts] == [
            ("XOAUTH2", "reports@provider.example", True)
        ]
        assert relay.messages[0].auth_user == "reports@provider.example"


async def test_xoauth2_with_a_stale_token_is_permanent_and_the_token_stays_secret() -> None:
    async with SmtpServer(xoauth2_tokens={"reports@provider.example": "fresh-token"}) as relay:
        transport = transport_for(
            relay,
            auth="xoauth2",
            username="reports@provider.example",
            password=None,
            token_provider=lambda: "stale-token-0815",
        )
        with pytest.raises(PermanentSendError) as caught:
            await transport.send(compose_report(report()))
        assert caught.value.code == 535
        assert "stale-token-0815" not in f"{caught.value} {caught.value!r} {caught.value.__cause__!r}"
        assert relay.transactions == []


async def test_verify_logs_in_and_quits(relay: SmtpServer) -> None:
    await transport_for(relay).verify()
    assert relay.connections == 1
    assert [a.success for a in relay.auth_attempts] == [True]
    assert relay.transactions == []
    with pytest.raises(PermanentSendError):
        await transport_for(relay, password="wrong").verify()
