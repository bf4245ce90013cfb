"""Text of a Word (.docx) attachment: DWP sometimes puts a rejection's reasons in one.

A .docx is a zip holding `word/document.xml`. Only that member is read, with its uncompressed size capped
before and while inflating (a zip bomb stops at the cap), and the text is taken from the `<w:t>` runs with
a regular expression rather than an XML parser, so no entity or DTD in a hostile file is ever expanded.
Pure: bytes in, text out; raises DocxError with a reason a person can read.
"""

from __future__ import annotations

import html
import io
import re
import zipfile

MAX_XML_BYTES = 20_000_000
MAX_TEXT_CHARS = 200_000
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

_DOCUMENT = "word/document.xml"
_NAME = re.compile(r"\.docx\s*$", re.IGNORECASE)
# A paragraph or line break ends a line; a tab is a space; a run's text is kept.
_TOKENS = re.compile(
    rb"<w:t(?:\s[^>]*)?>([^<]*)</w:t>|<w:t\s*/>|(</w:p>|<w:br\b[^>]*/>|<w:cr\b[^>]*/>)|(<w:tab\b[^>]*/>)"
)


class DocxError(Exception):
    """The attachment is not a readable .docx (not a zip, no document, too large)."""


def is_docx(content_type: str, filename: str | None) -> bool:
    return content_type == DOCX_TYPE or bool(filename and _NAME.search(filename))


def extract_text(data: bytes) -> str:
    """The document's text, one line per paragraph."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            try:
                info = archive.getinfo(_DOCUMENT)
            except KeyError:
                raise DocxError("not a Word document (no word/document.xml)") from None
            if info.file_size > MAX_XML_BYTES:
                raise DocxError(f"document text is over {MAX_XML_BYTES // 1_000_000} MB")
            with archive.open(info) as member:
                # The declared size can lie; read one byte past the cap to know.
                xml = member.read(MAX_XML_BYTES + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as exc:
        raise DocxError(f"not a readable .docx ({type(exc).__name__})") from None
    if len(xml) > MAX_XML_BYTES:
        raise DocxError(f"document text is over {MAX_XML_BYTES // 1_000_000} MB")
    return _text(xml)[:MAX_TEXT_CHARS]


def _text(xml: bytes) -> str:
    pieces: list[str] = []
    for match in _TOKENS.finditer(xml):
        run, line_end, tab = match.groups()
        if run is not None:
            pieces.append(html.unescape(run.decode("utf-8", "replace")))
        elif line_end is not None:
            pieces.append("\n")
        elif tab is not None:
            pieces.append(" ")
    lines = "".join(pieces).splitlines()
    return "\n".join(line.strip() for line in lines if line.strip())
