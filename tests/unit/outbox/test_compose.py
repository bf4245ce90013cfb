"""compose: what DWP receives, checked by parsing the bytes back as a mail client would."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbox.compose import (
    check_address,
    compose_notice,
    compose_report,
    make_message_id,
    render_report,
    report_subject,
    safe_pdf_filename,
)
from outbox.errors import HeaderInjection
from outbox.types import NoticeRequest, ReportRequest

NOW = datetime(2026, 11, 23, 10, 15, 0, tzinfo=UTC)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
MESSAGE_ID = "<S-000123.20261123T101500.0a1b2c3d4e5f@provider.example>"


def report(**changes: object) -> ReportRequest:
    base = ReportRequest(
        from_address="reports@provider.example",
        to=("accesstowork.mhss@dwp.gov.uk",),
        case_ref="MH-100001",
        report_type_label="Support Plan",
        submission_token="S-000123",
        message_id=MESSAGE_ID,
        date=NOW,
        pdf=PDF,
        pdf_filename="MH-100001-support-plan-v1.pdf",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def notice(**changes: object) -> NoticeRequest:
    base = NoticeRequest(
        from_address="reports@provider.example",
        to=("pm@dwp.gov.uk", "team@provider.example"),
        subject="MHSS escalation 1 - MH-100001 [S-000123]: no acknowledgement",
        body="Case MH-100001, submission S-000123: no acknowledgement.\n",
        message_id="<N-000007.20261123T101500.0a1b2c3d4e5f@provider.example>",
        date=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def reparse(message: EmailMessage) -> EmailMessage:
    parsed = message_from_bytes(message.as_bytes(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


class TestReport:
    def test_headers_name_the_case_type_and_token_only(self) -> None:
        parsed = reparse(compose_report(report()))
        assert parsed["Subject"] == "MHSS Support Plan - MH-100001 [S-000123]"
        assert parsed["From"] == "reports@provider.example"
        assert parsed["To"] == "accesstowork.mhss@dwp.gov.uk"
        assert parsed["Message-ID"] == MESSAGE_ID
        assert parsed["Date"].datetime == NOW
        assert parsed["Reply-To"] is None

    def test_pdf_attached_byte_for_byte_under_a_safe_name(self) -> None:
        parsed = reparse(compose_report(report(pdf_filename="uploads/../évaluation (v2).PDF")))
        attachments = list(parsed.iter_attachments())
        assert len(attachments) == 1
        part = attachments[0]
        assert part.get_content_type() == "application/pdf"
        assert part.get_filename() == "evaluation_v2.pdf"
        assert part.get_content() == PDF

    def test_cover_text_is_the_body(self) -> None:
        parsed = reparse(compose_report(report(cover_text="Dear team,\n\nThe plan is attached.\n")))
        body = parsed.get_body(preferencelist=("plain",))
        assert body is not None
        assert body.get_content() == "Dear team,\n\nThe plan is attached.\n"

    def test_default_cover_names_type_case_and_token(self) -> None:
        body = reparse(compose_report(report())).get_body(preferencelist=("plain",))
        assert body is not None
        assert body.get_content() == (
            "Please find attached the Support Plan for case MH-100001 (submission S-000123).\n"
        )

    def test_report_is_not_auto_submitted_so_dwp_inbox_acknowledges_it(self) -> None:
        parsed = reparse(compose_report(report()))
        assert parsed["Auto-Submitted"] is None

    def test_reply_to_and_display_name(self) -> None:
        parsed = reparse(compose_report(report(reply_to="team@provider.example", from_name="Acme MHSS")))
        assert parsed["Reply-To"] == "team@provider.example"
        assert parsed["From"].addresses[0].display_name == "Acme MHSS"
        assert parsed["From"].addresses[0].addr_spec == "reports@provider.example"

    def test_non_ascii_text_still_travels_as_7bit(self) -> None:
        message = compose_report(report(report_type_label="Rapport d’étape", cover_text="Café ✓ " * 30))
        wire = message.as_bytes()
        assert wire.isascii()
        parsed = reparse(message)
        assert parsed["Subject"] == "MHSS Rapport d’étape - MH-100001 [S-000123]"
        body = parsed.get_body(preferencelist=("plain",))
        assert body is not None
        assert body.get_content() == "Café ✓ " * 30 + "\n"

    def test_date_keeps_the_given_zone(self) -> None:
        london_summer = timezone(timedelta(hours=1))
        parsed = reparse(compose_report(report(date=datetime(2026, 6, 1, 9, 0, tzinfo=london_summer))))
        assert parsed["Date"].endswith("+0100")

    def test_empty_pdf_is_refused(self) -> None:
        with pytest.raises(ValueError, match="PDF is empty"):
            compose_report(report(pdf=b""))

    def test_naive_date_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            compose_report(report(date=datetime(2026, 11, 23, 10, 0)))

    def test_no_recipient_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least one recipient"):
            compose_report(report(to=()))


class TestNotice:
    def test_marked_auto_generated_and_threaded(self) -> None:
        first = "<S-000123.20261120T090000.aaaaaaaaaaaa@provider.example>"
        parsed = reparse(compose_notice(notice(in_reply_to=first, references=(first,))))
        assert parsed["Auto-Submitted"] == "auto-generated"
        assert parsed["X-Auto-Response-Suppress"] == "All"
        assert parsed["In-Reply-To"] == first
        assert parsed["References"] == first
        assert parsed["To"] == "pm@dwp.gov.uk, team@provider.example"
        assert parsed["Subject"] == "MHSS escalation 1 - MH-100001 [S-000123]: no acknowledgement"
        assert list(parsed.iter_attachments()) == []

    def test_unthreaded_notice_has_no_threading_headers(self) -> None:
        parsed = reparse(compose_notice(notice()))
        assert parsed["In-Reply-To"] is None
        assert parsed["References"] is None

    def test_empty_subject_is_refused(self) -> None:
        with pytest.raises(ValueError, match="Subject is empty"):
            compose_notice(notice(subject="  "))


@pytest.mark.parametrize(
    ("build", "changes", "header"),
    [
        (report, {"from_address": "reports@provider.example\r\nBcc: x@evil.example"}, "From"),
        (report, {"to": ("accesstowork.mhss@dwp.gov.uk\nBcc: x@evil.example",)}, "To"),
        (report, {"case_ref": "MH-100001\r\nBcc: x@evil.example"}, "case ref"),
        (report, {"report_type_label": "Plan\x0bX"}, "report type"),
        (report, {"submission_token": "S-1\x00"}, "token"),
        (report, {"reply_to": "team@provider.example\r\n"}, "Reply-To"),
        (report, {"from_name": "Acme\nBcc: x@evil.example"}, "display name"),
        (report, {"message_id": "<a@b>\r\nBcc: x@evil.example"}, "Message-ID"),
        (notice, {"subject": "Hello\u2028Bcc: x@evil.example"}, "Subject"),
        (notice, {"in_reply_to": "<a@b>\n"}, "In-Reply-To"),
        (notice, {"references": ("<a@b>", "<c@d>\rX: y")}, "References"),
    ],
)
def test_control_characters_in_any_header_value_are_refused(
    build: Callable[..., ReportRequest | NoticeRequest], changes: dict[str, object], header: str
) -> None:
    request = build(**changes)
    with pytest.raises(HeaderInjection, match=re.escape(header)) as caught:
        if isinstance(request, ReportRequest):
            compose_report(request)
        else:
            compose_notice(request)
    assert "evil" not in str(caught.value)


@given(st.text(min_size=1).filter(lambda s: s.strip()), st.sampled_from("\r\n\x00\x1b\x7f\x85\u2028"))
def test_any_subject_with_a_control_character_is_refused(text: str, control: str) -> None:
    with pytest.raises(HeaderInjection):
        compose_notice(notice(subject=text[: len(text) // 2] + control + text[len(text) // 2 :]))


@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "S", "Zs"]), min_size=1).filter(str.strip))
def test_any_printable_subject_round_trips(subject: str) -> None:
    parsed = reparse(compose_notice(notice(subject=subject)))
    assert " ".join(str(parsed["Subject"]).split()) == " ".join(subject.split())


@pytest.mark.parametrize(
    "address",
    ["", "plain", "a@", "@b.example", "a b@c.example", "Name <a@b.example>", "a@b..example", "é@b.example"],
)
def test_addresses_must_be_plain_addr_specs(address: str) -> None:
    with pytest.raises(ValueError, match="To: not a plain e-mail address"):
        check_address(address, "To")


def test_plain_addresses_pass_unchanged() -> None:
    for address in ("accesstowork.mhss@dwp.gov.uk", "o'brien+mhss@provider.example", "a@localhost"):
        assert check_address(address, "To") == address


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("MH-100001-support-plan-v1.pdf", "MH-100001-support-plan-v1.pdf"),
        ("report", "report.pdf"),
        ("REPORT.PDF", "REPORT.pdf"),
        ("../../etc/passwd", "passwd.pdf"),
        ("C:\\Users\\me\\Plan.pdf", "Plan.pdf"),
        ("Évaluation à 6 mois.pdf", "Evaluation_a_6_mois.pdf"),
        ("\u202ereverse\u202c.pdf", "reverse.pdf"),
        ("....pdf", "report.pdf"),
        ("", "report.pdf"),
        ("x" * 300 + ".pdf", "x" * 80 + ".pdf"),
    ],
)
def test_safe_pdf_filename(given_name: str, expected: str) -> None:
    assert safe_pdf_filename(given_name) == expected


def test_message_id_holds_the_token_and_is_unique() -> None:
    ids = {make_message_id("provider.example", "S-000123", NOW) for _ in range(200)}
    assert len(ids) == 200
    for message_id in ids:
        assert re.fullmatch(r"<S-000123\.20261123T101500\.[0-9a-f]{12}@provider\.example>", message_id)


def test_message_id_uses_utc_for_its_stamp() -> None:
    plus_one = datetime(2026, 6, 1, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    assert ".20260601T100000." in make_message_id("provider.example", "S-1", plus_one)


@pytest.mark.parametrize(
    ("domain", "token"), [("provider.example", "S 1"), ("provider.example", ""), ("bad domain", "S-1")]
)
def test_message_id_refuses_unsafe_parts(domain: str, token: str) -> None:
    with pytest.raises(ValueError):
        make_message_id(domain, token, NOW)


def test_report_subject_refuses_empty_parts() -> None:
    with pytest.raises(ValueError, match="case ref is empty"):
        report_subject("Support Plan", " ", "S-1")


@given(st.text(min_size=1, max_size=400))
def test_any_cover_text_renders_as_a_clean_7bit_message(cover: str) -> None:
    wire = render_report(report(cover_text=cover))
    assert wire.isascii() and all(len(line) <= 998 for line in wire.split(b"\n"))
    parsed = message_from_bytes(wire, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    parts = list(parsed.iter_parts())
    assert not parsed.defects and not any(part.defects for part in parts)
    assert [part.get_content_type() for part in parts] == ["text/plain", "application/pdf"]
    expected = cover.replace("\r\n", "\n").replace("\r", "\n")
    assert parts[0].get_content() == (expected if expected.endswith("\n") else expected + "\n")
    assert parts[1].get_content() == PDF


def test_the_boundary_never_occurs_in_the_cover_text() -> None:
    # A cover text that quotes an earlier message's delimiter must not end the text part early.
    cover = "\n".join(f"--=_mhss_{i:024x}" for i in range(50)) + "\n"
    for _ in range(20):
        parsed = compose_report(report(cover_text=cover))
        assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "application/pdf"]


def test_a_non_ascii_display_name_is_encoded_and_round_trips() -> None:
    wire = render_report(report(from_name="Prövider Ltd, North"))
    assert wire.isascii()
    parsed = message_from_bytes(wire, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    assert parsed["From"].addresses[0].display_name == "Prövider Ltd, North"


def test_control_characters_in_the_cover_text_are_quoted_printable() -> None:
    wire = render_report(report(cover_text="line one\x00\x0b\x1b end\n"))
    assert b"\x00" not in wire and b"\x1b" not in wire
    assert b"Content-Transfer-Encoding: quoted-printable" in wire
