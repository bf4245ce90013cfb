"""parsers.docx: the text of a Word attachment, and nothing a hostile file could make it do."""

from __future__ import annotations

import io
import zipfile

import pytest

from parsers import docx
from parsers.docx import DocxError, extract_text, is_docx
from parsers.message import parse_message


def word_file(document_xml: bytes, *, member: str = "word/document.xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(member, document_xml)
    return buffer.getvalue()


def body(*paragraphs: str) -> bytes:
    runs = "".join(f'<w:p><w:r><w:t xml:space="preserve">{p}</w:t></w:r></w:p>' for p in paragraphs)
    return f'<?xml version="1.0"?><w:document xmlns:w="x"><w:body>{runs}</w:body></w:document>'.encode()


def test_paragraphs_become_lines_and_entities_are_decoded() -> None:
    xml = body("Report MH-100801 returned:", "Spelling &amp; grammar &lt;see page 2&gt;")
    assert extract_text(word_file(xml)) == "Report MH-100801 returned:\nSpelling & grammar <see page 2>"


def test_runs_split_mid_word_are_joined_and_tabs_and_breaks_kept() -> None:
    xml = (
        b'<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>rej</w:t></w:r><w:r><w:t>ected</w:t></w:r>'
        b"<w:r><w:tab/><w:t>reason</w:t><w:br/><w:t>next line</w:t></w:r></w:p>"
        b"<w:tbl><w:tr><w:tc><w:p><w:r><w:t>cell</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:body></w:document>"
    )
    assert extract_text(word_file(xml)) == "rejected reason\nnext line\ncell"


def test_entities_declared_in_a_doctype_are_never_expanded() -> None:
    xml = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b'<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>&b;&b;</w:t></w:r></w:p></w:body></w:document>'
    )
    assert extract_text(word_file(xml)) == "&b;&b;"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04 truncated", "not a readable .docx"),
        (b"not a zip at all", "not a readable .docx"),
        (word_file(body("x"), member="word/other.xml"), "no word/document.xml"),
    ],
)
def test_unreadable_files_raise_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DocxError, match=reason):
        extract_text(data)


def test_an_inflating_bomb_stops_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docx, "MAX_XML_BYTES", 100_000)
    bomb = word_file(b"<w:t>" + b"A" * 5_000_000 + b"</w:t>")
    assert len(bomb) < 20_000
    with pytest.raises(DocxError, match="over"):
        extract_text(bomb)


def test_recognised_by_type_or_name() -> None:
    assert is_docx(docx.DOCX_TYPE, None)
    assert is_docx("application/octet-stream", "Feedback.DOCX")
    assert not is_docx("application/msword", "feedback.doc")


def test_a_broken_word_attachment_is_a_defect_not_an_error() -> None:
    raw = (
        b"From: a@dwp.gov.uk\nTo: b@provider.example\nSubject: feedback\nMessage-ID: <x@dwp.gov.uk>\n"
        b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
        b"See attached.\n--b\nContent-Type: application/octet-stream\n"
        b'Content-Disposition: attachment; filename="feedback.docx"\nContent-Transfer-Encoding: base64\n\n'
        b"bm90IGEgemlw\n--b--\n"
    )
    parsed = parse_message(raw)
    assert [a.text for a in parsed.attachments] == [""]
    assert any(d.startswith("docx-unreadable") for d in parsed.defects)
