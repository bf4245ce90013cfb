"""parsers.pdf: text and font counts page by page, and one clear PdfError for every kind of bad PDF."""

from __future__ import annotations

import io
import zlib

import pdfplumber
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.errors import PdfError
from parsers.pdf import (
    FontUse,
    PageLimits,
    PastLimit,
    extract_text,
    read_pages,
    strip_subset_prefix,
)
from tests.support import pdfs

BIG = 10_000_000


def _one_page(content: bytes, *, filter_: bytes = b"", raw: bytes | None = None) -> bytes:
    """A one-page PDF in Helvetica whose page content is `content` (optionally stored compressed as `raw`)."""
    body = content if raw is None else raw
    return pdfs.minimal_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >>"
            b" /Contents 5 0 R >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d %s >>\nstream\n" % (len(body), filter_) + body + b"\nendstream",
        ]
    )


def _form_pdf(draws: int) -> bytes:
    """A page that draws form XObject /Fm1 (which shows "MH-100001") `draws` times."""
    form = b"BT /F1 12 Tf 0 0 Td (MH-100001) Tj ET"
    content = b" ".join([b"q 1 0 0 1 72 %d cm /Fm1 Do Q" % (700 - 20 * i) for i in range(draws)])
    return pdfs.minimal_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Fm1 6 0 R >> >>"
            b" /Contents 5 0 R >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 200 20] /Resources << /Font << /F1 4 0 R >> >>"
            b" /Length %d >>\nstream\n" % len(form) + form + b"\nendstream",
        ]
    )


def _messages(data: bytes, **kwargs: object) -> str:
    with pytest.raises(PdfError) as caught:
        list(read_pages(data, **{"max_pages": 50, "max_bytes": BIG, **kwargs}))  # type: ignore[arg-type]
    return str(caught.value)


class TestExtractText:
    def test_reads_every_line_of_a_report(self) -> None:
        text = extract_text(pdfs.arial_12_report())
        assert "Case reference: MH-100001" in text
        assert pdfs.EMPLOYMENT_STATEMENT in text
        assert text.startswith("Access to Work Mental Health Support Service - Support Plan")

    def test_pages_are_separated_by_a_form_feed(self) -> None:
        text = extract_text(pdfs.pages_pdf(3, lines_per_page=3))
        assert text.count("\f") == 2

    def test_reads_the_first_max_pages_and_stops(self) -> None:
        data = pdfs.report_for_other_case()  # page 2 names MH-100002
        text = extract_text(data, max_pages=1)
        assert "MH-100001" in text
        assert "MH-100002" not in text

    def test_a_pdf_over_max_bytes_is_refused_before_parsing(self) -> None:
        with pytest.raises(PdfError, match=r"is \d+ bytes; the limit is 1000"):
            extract_text(pdfs.arial_12_report(), max_bytes=1000)


class TestSameTextAsPdfplumber:
    """parsers.pdf builds its own light character dicts; the text must be what pdfplumber itself gives."""

    @pytest.mark.parametrize(
        "data",
        [
            pdfs.arial_12_report(),
            pdfs.times_10_report(),
            pdfs.report_for_other_case(),
            pdfs.pages_pdf(3, lines_per_page=6),
        ],
        ids=["arial", "times", "two-pages", "three-pages"],
    )
    def test_text_matches_page_extract_text(self, data: bytes) -> None:
        expected = "\f".join(page.extract_text() for page in pdfplumber.open(io.BytesIO(data)).pages)
        assert extract_text(data) == expected

    def test_text_inside_a_form_xobject_is_read(self) -> None:
        assert extract_text(_form_pdf(2)) == "MH-100001\nMH-100001"


class TestReasons:
    """Every failure is one PdfError whose message says what is wrong in plain words."""

    def test_encrypted(self) -> None:
        # pdfminer's PDFPasswordIncorrect has an empty str(); the reason must not be empty.
        assert "encrypted" in _messages(pdfs.encrypted_pdf())

    @pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
    def test_truncated(self, fraction: float) -> None:
        message = _messages(pdfs.truncated_pdf(fraction))
        assert "truncated" in message or "corrupt" in message

    def test_truncated_in_half_says_truncated(self) -> None:
        assert _messages(pdfs.truncated_pdf(0.5)) == "the PDF is truncated (unexpected end of file)"

    def test_empty_file(self) -> None:
        assert _messages(b"") == "the file is empty"

    @pytest.mark.parametrize(
        "data", [b"<html><body>report</body></html>", b"PK\x03\x04 a zip file", b"\x00" * 2000]
    )
    def test_not_a_pdf(self, data: bytes) -> None:
        assert _messages(data) == "not a PDF (no %PDF- header)"

    def test_header_then_garbage_is_corrupt(self) -> None:
        assert _messages(b"%PDF-1.7\nthis is not a PDF body at all") == "the PDF is corrupt (PDFSyntaxError)"

    def test_zero_pages(self) -> None:
        assert _messages(pdfs.zero_page_pdf()) == "the PDF has no pages"

    def test_messages_never_quote_the_file(self) -> None:
        secret = b"AB123456C-Jane-Example"
        data = b"%PDF-1.4\n1 0 obj << /Name (" + secret + b") /Kids [ >> endobj\ntrailer << /Root 9 0 R >>"
        message = _messages(data)
        assert "AB123456C" not in message
        assert "Jane" not in message

    def test_a_page_that_draws_too_much_is_refused_with_its_page_number(self) -> None:
        data = _one_page(b"BT /F1 6 Tf 10 10 Td (" + b"a" * 500 + b") Tj ET")
        message = _messages(data, limits=PageLimits(max_objects=100))
        assert message.startswith("page 1: draws more than 100 characters and shapes on one page")

    def test_a_small_form_drawn_many_times_counts_every_drawing(self) -> None:
        message = _messages(_form_pdf(30), limits=PageLimits(max_objects=200))
        assert message.startswith("page 1: draws more than 200 characters and shapes on one page")

    def test_a_content_stream_that_inflates_without_end_is_refused(self) -> None:
        content = b"BT /F1 6 Tf 10 10 Td (a) Tj ET" + b" " * 2_000_000
        data = _one_page(content, filter_=b"/Filter /FlateDecode", raw=zlib.compress(content, 9))
        assert len(data) < 10_000
        message = _messages(data, limits=PageLimits(max_content_bytes=1_000_000))
        assert message == "page 1: its content expands to more than 1000000 bytes"

    def test_the_same_stream_under_the_limit_is_read(self) -> None:
        content = b"BT /F1 6 Tf 10 10 Td (MH-100001) Tj ET" + b" " * 2_000_000
        data = _one_page(content, filter_=b"/Filter /FlateDecode", raw=zlib.compress(content, 9))
        assert extract_text(data) == "MH-100001"


class TestPageLimit:
    def test_fail_mode_refuses_a_pdf_that_declares_too_many_pages(self) -> None:
        message = _messages(pdfs.pages_pdf(3, lines_per_page=2), max_pages=2, past_limit=PastLimit.FAIL)
        assert message == "the PDF has 3 pages; the limit is 2"

    def test_fail_mode_counts_pages_when_the_declared_count_lies(self) -> None:
        page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"
        data = pdfs.minimal_pdf(
            [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 1 >>"]
            + [page] * 3
        )
        message = _messages(data, max_pages=2, past_limit=PastLimit.FAIL)
        assert message == "the PDF has more than 2 pages, the limit"

    def test_stop_mode_yields_exactly_max_pages(self) -> None:
        pages = list(read_pages(pdfs.pages_pdf(5, lines_per_page=2), max_pages=2, max_bytes=BIG))
        assert [p.number for p in pages] == [1, 2]


class TestFonts:
    def test_arial_report_counts_arial_12_without_subset_tags_or_spaces(self) -> None:
        (page,) = read_pages(pdfs.arial_12_report(), max_pages=5, max_bytes=BIG)
        assert set(page.fonts) == {FontUse("ArialMT", 12.0), FontUse("Arial-BoldMT", 12.0)}
        assert page.characters == sum(1 for c in page.text if not c.isspace())

    def test_times_report_counts_times_10(self) -> None:
        (page,) = read_pages(pdfs.times_10_report(), max_pages=5, max_bytes=BIG)
        assert set(page.fonts) == {FontUse("Times-Roman", 10.0)}

    def test_text_only_reading_skips_font_counts(self) -> None:
        (page,) = read_pages(pdfs.arial_12_report(), max_pages=5, max_bytes=BIG, with_fonts=False)
        assert page.fonts == {}
        assert "MH-100001" in page.text

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("ABCDEF+ArialMT", "ArialMT"),
            ("AAAAAA+Arial-BoldMT", "Arial-BoldMT"),
            ("ArialMT", "ArialMT"),
            ("abcdef+ArialMT", "abcdef+ArialMT"),  # a subset tag is capitals only
            ("ABCDE+ArialMT", "ABCDE+ArialMT"),
            ("ABCDEF+", "ABCDEF+"),
            ("", ""),
        ],
    )
    def test_strip_subset_prefix(self, name: str, expected: str) -> None:
        assert strip_subset_prefix(name) == expected


_SMALL_REPORT = pdfs.times_10_report()  # no embedded font: small and quick to mutate


def _read_all(data: bytes) -> None:
    try:
        for _page in read_pages(data, max_pages=5, max_bytes=BIG, limits=PageLimits(max_objects=20_000)):
            pass
    except PdfError as exc:
        assert str(exc)


class TestHostileInput:
    """Whatever the bytes, the result is pages or a PdfError: never another exception, never a hang."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=3000))
    def test_random_bytes_behind_a_pdf_header(self, tail: bytes) -> None:
        _read_all(b"%PDF-1.4\n" + tail)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.tuples(st.integers(0, len(_SMALL_REPORT) - 1), st.integers(0, 255)), min_size=1, max_size=12
        ),
        st.integers(200, len(_SMALL_REPORT)),
    )
    def test_mutated_report(self, changes: list[tuple[int, int]], cut: int) -> None:
        data = bytearray(_SMALL_REPORT)
        for position, value in changes:
            data[position] = value
        _read_all(bytes(data[:cut]))
