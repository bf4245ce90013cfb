"""parse_message: headers, bodies, attachments and limits, on well-formed and broken input."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from parsers.charsets import decode_bytes
from parsers.errors import MalformedMessage
from parsers.message import MAX_HEADER_CHARS, MAX_HEADERS, MAX_NEW_TEXT_CHARS, parse_message
from tests.unit.parsers.mail import INBOX, OUR_ID, multipart, pdf_with_lines, raw_message


class TestHeaders:
    def test_message_ids_keep_brackets_and_case(self) -> None:
        msg = parse_message(
            raw_message(message_id="<AbC.1@Host.Example>", headers=(("In-Reply-To", OUR_ID),))
        )
        assert msg.message_id == "<AbC.1@Host.Example>"
        assert msg.in_reply_to == OUR_ID

    def test_unbracketed_and_spaced_ids_are_normalised(self) -> None:
        msg = parse_message(
            raw_message(message_id="abc.2@host.example", headers=(("In-Reply-To", "< x@y >"),))
        )
        assert msg.message_id == "<abc.2@host.example>"
        assert msg.in_reply_to == "<x@y>"

    def test_in_reply_to_with_a_phrase_and_comment(self) -> None:
        value = f'"Provider Reports"\'s message of Mon, 23 Nov 2026 {OUR_ID} (sent by the mailroom)'
        assert parse_message(raw_message(headers=(("In-Reply-To", value),))).in_reply_to == OUR_ID

    def test_references_are_all_ids_in_order_over_folded_lines(self) -> None:
        msg = parse_message(raw_message(headers=(("References", "<a@x>\n <b@x>\n\t<a@x> <c@x>"),)))
        assert msg.references == ("<a@x>", "<b@x>", "<c@x>")

    def test_sender_is_the_addr_spec_lower_cased(self) -> None:
        msg = parse_message(raw_message(sender='"Access to Work" <AccessToWork.MHSS@DWP.GOV.UK>'))
        assert (msg.sender, msg.sender_domain) == (INBOX, "dwp.gov.uk")
        assert msg.from_addresses == (INBOX,)

    def test_display_name_that_looks_like_an_address_is_ignored(self) -> None:
        msg = parse_message(raw_message(sender=f'"{INBOX}" <someone@evil.example>'))
        assert msg.sender == "someone@evil.example"

    def test_every_from_address_is_kept_for_the_trust_check(self) -> None:
        msg = parse_message(raw_message(sender=f"{INBOX}, other@evil.example"))
        assert msg.from_addresses == (INBOX, "other@evil.example")

    def test_unparseable_from_gives_no_sender(self) -> None:
        msg = parse_message(raw_message(sender="a@dwp.gov.uk@evil.example"))
        assert msg.sender == ""
        assert msg.from_addresses == ()

    def test_missing_from_gives_an_empty_sender(self) -> None:
        msg = parse_message(b"Subject: hi\nMessage-ID: <m@x>\n\nbody\n")
        assert (msg.sender, msg.sender_domain, msg.from_addresses) == ("", "", ())

    def test_rfc2047_subject_is_decoded(self) -> None:
        msg = parse_message(
            raw_message(subject="=?utf-8?B?UsOpcG9uc2UgYXV0b21hdGlxdWU=?= =?iso-8859-1?q?=E9t=E9?=")
        )
        assert msg.subject == "Réponse automatiqueété"

    def test_raw_latin1_header_bytes_are_read_as_text(self) -> None:
        raw = raw_message(subject="Réponse").replace("Réponse".encode(), "Réponse".encode("latin-1"))
        assert parse_message(raw).subject == "Réponse"

    def test_date_is_aware(self) -> None:
        msg = parse_message(raw_message())
        assert msg.date == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        assert msg.date is not None and msg.date.utcoffset() == timedelta(0)

    def test_date_without_zone_is_read_as_utc_and_noted(self) -> None:
        msg = parse_message(raw_message().replace(b"+0000", b"-0000"))
        assert msg.date == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        assert "date-without-zone" in msg.defects

    def test_impossible_date_is_none_with_a_defect(self) -> None:
        msg = parse_message(raw_message().replace(b"Mon, 23 Nov 2026 10:00:00 +0000", b"32 Foo 2026 25:61"))
        assert msg.date is None
        assert "date-unreadable" in msg.defects

    def test_headers_are_decoded_in_order_with_lookup_helpers(self) -> None:
        msg = parse_message(raw_message(headers=(("X-Test", "one"), ("x-test", "=?utf-8?q?two?="))))
        assert msg.header("X-TEST") == "one"
        assert msg.header_all("x-test") == ("one", "two")
        assert msg.header("Absent") is None

    def test_a_huge_header_is_cut_and_noted(self) -> None:
        msg = parse_message(raw_message(headers=(("X-Junk", "A" * 300_000),)))
        assert len(msg.header("X-Junk") or "") == MAX_HEADER_CHARS
        assert "header-too-long" in msg.defects

    def test_header_count_is_bounded(self) -> None:
        many = tuple(("X-Many", str(i)) for i in range(MAX_HEADERS + 50))
        msg = parse_message(raw_message(headers=many))
        assert len(msg.headers) == MAX_HEADERS
        assert "too-many-headers" in msg.defects


class TestBodies:
    def test_plain_body(self) -> None:
        assert parse_message(raw_message("Line one.\nLine two.\n")).text.strip() == "Line one.\nLine two."

    def test_html_only_body_is_read_as_text(self) -> None:
        html = "<html><body><p>We have&nbsp;received your <b>email</b>.</p><script>x()</script></body></html>"
        msg = parse_message(raw_message(html, content_type="text/html; charset=utf-8"))
        assert msg.text == "We have received your email."

    def test_alternative_prefers_plain_text(self) -> None:
        ctype = 'multipart/alternative; boundary="alt"'
        body = (
            "--alt\nContent-Type: text/plain\n\nplain words\n"
            "--alt\nContent-Type: text/html\n\n<p>html words</p>\n--alt--\n"
        )
        assert parse_message(raw_message(body, content_type=ctype)).text.strip() == "plain words"

    def test_alternative_with_an_empty_plain_part_uses_html(self) -> None:
        ctype = 'multipart/alternative; boundary="alt"'
        body = "--alt\nContent-Type: text/plain\n\n \n--alt\nContent-Type: text/html\n\n<p>html words</p>"
        assert parse_message(raw_message(body, content_type=ctype)).text == "html words"

    def test_quoted_printable_and_base64_bodies(self) -> None:
        qp = raw_message(
            "caf=C3=A9 =\nau lait\n", headers=(("Content-Transfer-Encoding", "quoted-printable"),)
        )
        b64 = raw_message(
            base64.b64encode("thé\n".encode()).decode(), headers=(("Content-Transfer-Encoding", "base64"),)
        )
        assert parse_message(qp).text.strip() == "café au lait"
        assert parse_message(b64).text.strip() == "thé"

    def test_unknown_charset_falls_back_to_utf8_then_cp1252(self) -> None:
        utf8 = raw_message("naïve\n", content_type="text/plain; charset=x-nonsense")
        cp1252 = utf8.replace("naïve".encode(), "naïve".encode("cp1252"))
        assert parse_message(utf8).text.strip() == "naïve"
        assert parse_message(cp1252).text.strip() == "naïve"
        assert "unknown-charset" in parse_message(utf8).defects

    @pytest.mark.parametrize("charset", ["base64", "rot13", "idna", "zlib", 'utf-8"; x="', "\x00"])
    def test_non_text_or_odd_codecs_never_raise(self, charset: str) -> None:
        assert decode_bytes("plain é".encode(), charset)[0] == "plain é"

    def test_missing_boundary_is_guessed(self) -> None:
        body = (
            "--zz\nContent-Type: text/plain\n\nfirst part\n--zz\nContent-Type: text/plain\n\nsecond\n--zz--\n"
        )
        msg = parse_message(raw_message(body, content_type="multipart/mixed"))
        assert "first part" in msg.text and "second" in msg.text
        assert "Content-Type" not in msg.text
        assert "boundary-guessed" in msg.defects

    def test_deep_nesting_stops_at_the_limit(self) -> None:
        depth = 60
        opening = "".join(
            f'--n{i}\nContent-Type: multipart/mixed; boundary="n{i + 1}"\n\n' for i in range(depth)
        )
        body = opening + f"--n{depth}\nContent-Type: text/plain\n\ndeep\n"
        msg = parse_message(raw_message(body, content_type='multipart/mixed; boundary="n0"'))
        assert "mime-too-deep-or-too-many-parts" in msg.defects

    def test_new_text_drops_quoted_history(self) -> None:
        body = "Thanks, received.\n\nOn Mon, 23 Nov 2026, Reports <r@p.example> wrote:\n> It was rejected.\n"
        msg = parse_message(raw_message(body))
        assert msg.new_text == "Thanks, received."
        assert "rejected" in msg.text


class TestAttachments:
    def test_pdf_attachment_text_is_read(self) -> None:
        data = pdf_with_lines("Case reference: MH-100001", "This report has been returned for rework.")
        ctype, body = multipart(
            [
                ("Content-Type: text/plain", "See attached."),
                (
                    'Content-Type: application/pdf; name="n.pdf"\n'
                    'Content-Disposition: attachment; filename="n.pdf"\n'
                    "Content-Transfer-Encoding: base64",
                    base64.encodebytes(data).decode(),
                ),
            ]
        )
        msg = parse_message(raw_message(body, content_type=ctype))
        (attachment,) = msg.attachments
        assert (attachment.filename, attachment.content_type, attachment.data) == (
            "n.pdf",
            "application/pdf",
            data,
        )
        assert "returned for rework" in attachment.text
        assert msg.text.strip() == "See attached."

    def test_pdf_sent_as_octet_stream_is_recognised_by_its_bytes(self) -> None:
        data = pdf_with_lines("MH-100002")
        ctype, body = multipart(
            [
                (
                    "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64",
                    base64.encodebytes(data).decode(),
                )
            ]
        )
        (attachment,) = parse_message(raw_message(body, content_type=ctype)).attachments
        assert "MH-100002" in attachment.text

    def test_unreadable_pdf_is_a_defect_not_an_error(self) -> None:
        ctype, body = multipart([("Content-Type: application/pdf", "%PDF-1.7 not really")])
        msg = parse_message(raw_message(body, content_type=ctype))
        assert msg.attachments[0].text == ""
        assert any(defect.startswith("pdf-unreadable") for defect in msg.defects)

    def test_pdfs_can_be_left_unread(self) -> None:
        data = pdf_with_lines("MH-100003")
        ctype, body = multipart(
            [
                (
                    "Content-Type: application/pdf\nContent-Transfer-Encoding: base64",
                    base64.encodebytes(data).decode(),
                )
            ]
        )
        msg = parse_message(raw_message(body, content_type=ctype), read_pdfs=False)
        assert msg.attachments[0].text == ""
        assert msg.attachments[0].data == data

    def test_attached_message_keeps_its_headers_and_body_as_text(self) -> None:
        inner = f"From: a@dwp.gov.uk\nSubject: Rejected MH-100004\nMessage-ID: {OUR_ID}\nX-Other: 1\n\nNo."
        ctype, body = multipart(
            [("Content-Type: text/plain", "fyi"), ("Content-Type: message/rfc822", inner)]
        )
        (attachment,) = parse_message(raw_message(body, content_type=ctype)).attachments
        assert attachment.content_type == "message/rfc822"
        assert attachment.text.startswith("From: a@dwp.gov.uk\nSubject: Rejected MH-100004\n")
        assert f"Message-ID: {OUR_ID}" in attachment.text
        assert "X-Other" not in attachment.text
        assert attachment.text.rstrip().endswith("\n\nNo.")
        assert b"X-Other: 1" in attachment.data

    def test_text_attachment_is_text_but_not_body(self) -> None:
        ctype, body = multipart(
            [
                ("Content-Type: text/plain", "body words"),
                (
                    'Content-Type: text/plain\nContent-Disposition: attachment; filename="reasons.txt"',
                    "attached words",
                ),
            ]
        )
        msg = parse_message(raw_message(body, content_type=ctype))
        assert "attached words" not in msg.text
        assert msg.attachments[0].text.strip() == "attached words"


class TestMalformedParameters:
    def test_bare_rfc2231_parameter_does_not_stop_reading(self) -> None:
        # policy.default's header objects raise on a bare "filename*" (found by fuzzing); headers are
        # never interpreted that way here, so the message is read.
        raw = raw_message(
            "It has been returned for rework.", headers=(("Content-Disposition", "inline; filename*"),)
        )
        msg = parse_message(raw)
        assert msg.text.strip() == "It has been returned for rework."
        assert (msg.sender, msg.subject) == (INBOX, "RE: MHSS Support Plan - MH-100001 [S-000123]")


class TestNotMail:
    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"   \r\n\n",
            b"\x00\x01\x02\xff" * 50,
            b"%PDF-1.7\n1 0 obj\n",
            b"hello world\n",
            b"not: really\n\n",
        ],
        ids=["empty", "blank", "binary", "pdf", "prose", "no-known-header"],
    )
    def test_raises_malformed(self, raw: bytes) -> None:
        with pytest.raises(MalformedMessage):
            parse_message(raw)

    def test_over_the_size_limit(self) -> None:
        with pytest.raises(MalformedMessage, match="over the limit of 100"):
            parse_message(raw_message("x" * 200), max_bytes=100)

    def test_error_text_never_quotes_the_input(self) -> None:
        with pytest.raises(MalformedMessage) as caught:
            parse_message(b"Jane Example AB123456C\n")
        assert "Jane" not in str(caught.value) and "AB123456C" not in str(caught.value)

    def test_minimal_headers_only_message_is_mail(self) -> None:
        msg = parse_message(b"Subject: only a subject")
        assert (msg.subject, msg.text, msg.message_id) == ("only a subject", "", None)
        assert msg.raw_size == len(b"Subject: only a subject")


def test_rfc2047_attachment_filename_is_decoded() -> None:
    ctype, body = multipart(
        [('Content-Type: application/octet-stream; name="=?utf-8?q?Notice_=E2=80=93_MH-100001.txt?="', "x")]
    )
    (attachment,) = parse_message(raw_message(body, content_type=ctype)).attachments
    assert attachment.filename == "Notice – MH-100001.txt"


class TestHostileSizes:
    def test_huge_html_is_cut_before_conversion(self) -> None:
        html = "<p>We have received your email.</p>" + "<p>x<b>y</b></p>" * 100_000
        msg = parse_message(raw_message(html, content_type="text/html"))
        assert msg.text.startswith("We have received your email.")
        assert "html-truncated" in msg.defects

    def test_new_text_is_bounded(self) -> None:
        msg = parse_message(raw_message("word " * 100_000))
        assert len(msg.new_text) <= MAX_NEW_TEXT_CHARS
        assert len(msg.text) > MAX_NEW_TEXT_CHARS

    def test_line_and_delimiter_limits_refuse_before_parsing(self) -> None:
        with pytest.raises(MalformedMessage, match="lines, over the limit"):
            parse_message(raw_message("\n" * 1_000_001))
        with pytest.raises(MalformedMessage, match="MIME delimiter lines"):
            parse_message(raw_message("--b\n" * 10_001, content_type='multipart/mixed; boundary="b"'))

    def test_pathological_from_is_not_given_to_the_full_parser(self) -> None:
        msg = parse_message(raw_message(sender='"' * 15_000 + " <a@dwp.gov.uk>"))
        assert "from-too-long" in msg.defects
        assert msg.from_addresses == ("a@dwp.gov.uk",)
