"""PDF text and font facts, one page at a time: the only module that imports pdfplumber.

A PDF comes from outside (a report to check before sending, or an attachment on a DWP notice) and may be
hostile. Everything here therefore:

- refuses input over a byte limit before parsing it, and reads at most a page limit;
- builds one pdfplumber page at a time and closes it (its layout freed) before the next, and drops the
  streams pdfminer cached for it, so memory follows the largest page, not the document;
- caps what one page may cost: the objects it draws and the size its content inflates to;
- turns every failure of the PDF libraries into a `PdfError` with one line that says what is wrong and never
  quotes the file's content (it may be personal data).

Text comes from pdfplumber's own text extraction (`pdfplumber.utils.text.extract_text`), fed with small
character dicts built from pdfminer's layout: the same text as `page.extract_text()`, at a third of the cost.

Page limits differ by caller: `extract_text` (inbound notices) reads the first `max_pages` pages and stops,
because the matching text of a notice is near the front; `read_pages(..., past_limit=PastLimit.FAIL)`
(preflight) treats a report over the limit as unreadable.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import pdfplumber
from pdfminer.layout import LTChar, LTContainer, LTPage
from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError
from pdfminer.pdfinterp import PDFPageInterpreter
from pdfminer.pdfpage import PDFPage
from pdfminer.pdftypes import PDFStream, resolve1
from pdfminer.psexceptions import PSEOF
from pdfplumber.page import Page, PDFPageAggregatorWithMarkedContent, fix_fontname_bytes
from pdfplumber.utils.exceptions import PdfminerException
from pdfplumber.utils.text import extract_text as extract_chars_text

from parsers.errors import PdfError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PAGES",
    "FontUse",
    "PageContent",
    "PageLimits",
    "PastLimit",
    "extract_text",
    "read_pages",
    "strip_subset_prefix",
]

# pdfminer and pdfplumber log warnings about malformed files that quote the file's bytes ("Invalid
# dictionary construct: ...", metadata values), and a report is health data. This module is their only
# door into the process, so it keeps them quiet; raise the level again by hand when debugging a file.
for _name in ("pdfminer", "pdfplumber"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

DEFAULT_MAX_BYTES = 20_000_000
DEFAULT_MAX_PAGES = 50
PDF_MAGIC = b"%PDF-"
# The PDF spec lets the header start anywhere in the first 1,024 bytes (Acrobat tolerates junk before it).
_HEADER_WINDOW = 1024
# A subset-embedded font is named with six capital letters and a plus, e.g. "ABCDEF+ArialMT".
_SUBSET_TAG_LENGTH = 7


class PastLimit(StrEnum):
    """What to do with a PDF that has more pages than `max_pages`."""

    STOP = "stop"  # read the first max_pages pages and ignore the rest (inbound notices)
    FAIL = "fail"  # refuse the whole PDF (preflight: a report over the limit is not sent)


class FontUse(NamedTuple):
    """A font as a reader sees it: the name without its subset tag, and the size in points (0.1 pt)."""

    name: str
    size: float


@dataclass(frozen=True)
class PageContent:
    """What one page says and how it is set: its text, and its non-blank characters counted per font."""

    number: int
    text: str
    fonts: Mapping[FontUse, int]

    @property
    def characters(self) -> int:
        return sum(self.fonts.values())


def strip_subset_prefix(fontname: str) -> str:
    """'ABCDEF+ArialMT' → 'ArialMT'; any other name is returned unchanged."""
    head = fontname[: _SUBSET_TAG_LENGTH - 1]
    if len(fontname) > _SUBSET_TAG_LENGTH and fontname[6] == "+" and head.isascii() and head.isupper():
        return fontname[_SUBSET_TAG_LENGTH:]
    return fontname


# Memory is spent per drawn object (pdfminer's LTChar plus pdfplumber's dict: about 2 KB a character), not
# per byte of file: a few kilobytes of PDF can draw millions of characters (a long TJ string, or one form
# drawn again and again). A dense A4 page of 8 pt text has under 10,000 characters.
MAX_PAGE_OBJECTS = 60_000
# A page's content that inflates past this is a decompression bomb, not a report: 20 MB of Flate can
# expand to gigabytes, and pdfminer inflates a stream in one call with no limit.
MAX_PAGE_CONTENT_BYTES = 16_000_000


class _BusyPage(Exception):
    """Raised inside pdfminer's interpreter when a page draws more objects than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class _CountingDevice(PDFPageAggregatorWithMarkedContent):
    """pdfplumber's layout device, stopping the page once it has drawn `limit` characters, paths or images."""

    def __init__(self, *args: Any, limit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limit = self._left = limit

    def _drawn(self) -> None:
        self._left -= 1
        if self._left < 0:
            raise _BusyPage(self._limit)

    def render_char(self, *args: Any, **kwargs: Any) -> float:
        self._drawn()
        advance: float = super().render_char(*args, **kwargs)
        return advance

    def paint_path(self, *args: Any, **kwargs: Any) -> None:
        self._drawn()
        super().paint_path(*args, **kwargs)

    def render_image(self, *args: Any, **kwargs: Any) -> None:
        self._drawn()
        super().render_image(*args, **kwargs)


@dataclass(frozen=True)
class PageLimits:
    """Per-page ceilings that keep one hostile page from exhausting memory; far above any real report."""

    max_objects: int = MAX_PAGE_OBJECTS
    max_content_bytes: int = MAX_PAGE_CONTENT_BYTES


class _BoundedPage(Page):
    """A pdfplumber page whose layout is built by `_CountingDevice`; everything else is pdfplumber's."""

    def __init__(self, pdf: Any, page_obj: PDFPage, page_number: int, max_objects: int) -> None:
        super().__init__(pdf, page_obj, page_number=page_number)
        self.max_objects = max_objects

    @property
    def layout(self) -> LTPage:
        if not hasattr(self, "_layout"):
            device = _CountingDevice(
                self.pdf.rsrcmgr, pageno=self.page_number, laparams=self.pdf.laparams, limit=self.max_objects
            )
            PDFPageInterpreter(self.pdf.rsrcmgr, device).process_page(self.page_obj)
            # "_layout" is the name pdfplumber's flush_cache() / close() clears.
            self._layout: LTPage = device.get_result()
        return self._layout


def extract_text(
    data: bytes, *, max_pages: int = DEFAULT_MAX_PAGES, max_bytes: int = DEFAULT_MAX_BYTES
) -> str:
    """The text of a PDF, page by page (pages joined by a form feed), reading at most `max_pages` pages.

    Raises PdfError when the PDF is over `max_bytes`, not a PDF, encrypted, truncated, corrupt or empty.
    """
    pages = read_pages(data, max_pages=max_pages, max_bytes=max_bytes, with_fonts=False)
    return "\f".join(page.text for page in pages)


def read_pages(
    data: bytes,
    *,
    max_pages: int,
    max_bytes: int,
    past_limit: PastLimit = PastLimit.STOP,
    with_fonts: bool = True,
    limits: PageLimits = PageLimits(),
) -> Iterator[PageContent]:
    """Yield each page's content in order, holding one page in memory at a time.

    Checks the size and header before parsing; raises PdfError as soon as something is wrong, which may be
    after some pages were yielded (a corrupt page 7 is found on page 7).
    """
    _check_envelope(data, max_bytes)
    with _translated_errors():
        # Never pdf.close(): it walks pdf.pages, which builds a Page for every page in the file. There is
        # nothing to release but memory, and that goes with the last reference.
        pdf = pdfplumber.open(io.BytesIO(data))
        declared = _declared_page_count(pdf.doc)
        if past_limit is PastLimit.FAIL and declared is not None and declared > max_pages:
            raise PdfError(f"the PDF has {declared} pages; the limit is {max_pages}")
        number = 0
        for number, page_obj in enumerate(PDFPage.create_pages(pdf.doc), start=1):
            if number > max_pages:
                if past_limit is PastLimit.FAIL:
                    raise PdfError(f"the PDF has more than {max_pages} pages, the limit")
                break
            with _translated_errors(page=number):
                content = _read_page(pdf, page_obj, number, limits, with_fonts=with_fonts)
            yield content
        if number == 0:
            raise PdfError("the PDF has no pages")


def _check_envelope(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise PdfError(f"the PDF is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise PdfError("the file is empty")
    if PDF_MAGIC not in data[:_HEADER_WINDOW]:
        raise PdfError("not a PDF (no %PDF- header)")


def _read_page(
    pdf: Any, page_obj: PDFPage, number: int, limits: PageLimits, *, with_fonts: bool
) -> PageContent:
    _check_content_size(page_obj, number, limits.max_content_bytes)
    page = _BoundedPage(pdf, page_obj, number, limits.max_objects)
    try:
        chars = _page_chars(page)
        text = extract_chars_text(chars)
        fonts = _count_fonts(chars) if with_fonts else {}
    finally:
        page.close()
        _forget_streams(pdf.doc)
    return PageContent(number=number, text=text, fonts=fonts)


def _forget_streams(doc: PDFDocument) -> None:
    """Drop the streams pdfminer cached while reading a page; keep the small objects (fonts, resources).

    pdfminer keeps every object it resolves for the document's life, streams with their decoded data
    included: that, not the page count, is what grows. Small objects stay, or every page would parse its
    fonts' width tables again.
    """
    cache = doc._cached_objs
    for objid in [objid for objid, (obj, _gen) in cache.items() if isinstance(obj, PDFStream)]:
        del cache[objid]


def _page_chars(page: _BoundedPage) -> list[dict[str, Any]]:
    """The page's characters as the small dicts pdfplumber's text extraction reads.

    The coordinates follow pdfplumber's `Page.process_object` (top-down, MediaBox offset applied). Its own
    `page.chars` resolves every attribute of every object, colours included, and costs three to four
    times as much for the same text.
    """
    mb_x0, mb_top = page.mediabox[0], page.mediabox[1]
    height = page.height
    return [
        {
            "text": char.get_text(),
            "fontname": _font_name(char.fontname),
            "size": char.size,
            "upright": char.upright,
            "x0": char.x0 + mb_x0,
            "x1": char.x1 + mb_x0,
            "top": height - char.y1 + mb_top,
            "bottom": height - char.y0 + mb_top,
            "doctop": height - char.y1 + mb_top,
            "width": char.width,
            "height": char.height,
            "matrix": char.matrix,
        }
        for char in _layout_chars(page.layout)
    ]


def _layout_chars(layout: LTPage) -> Iterator[LTChar]:
    """Every character on the page in drawing order, including those inside forms (LTFigure)."""
    stack: list[Iterator[Any]] = [iter(layout)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, LTChar):
            yield item
        elif isinstance(item, LTContainer):
            stack.append(iter(item))


def _font_name(name: object) -> str:
    # pdfminer hands over a (rare) byte-encoded font name undecoded; pdfplumber decodes it the same way.
    return fix_fontname_bytes(name) if isinstance(name, bytes) else str(name)


def _count_fonts(chars: list[dict[str, Any]]) -> dict[FontUse, int]:
    counts: Counter[FontUse] = Counter(
        FontUse(strip_subset_prefix(char["fontname"]), round(float(char["size"]), 1))
        for char in chars
        if not char["text"].isspace()
    )
    return dict(counts)


def _check_content_size(page_obj: PDFPage, number: int, limit: int) -> None:
    """Inflate the page's Flate content streams with a ceiling before pdfminer inflates them without one."""
    total = 0
    for ref in page_obj.contents:
        stream = resolve1(ref)
        raw = getattr(stream, "rawdata", None)
        if raw is None or "Flate" not in str(stream.get("Filter", "")):
            continue  # not Flate (or already decoded): nothing can expand much
        inflater = zlib.decompressobj()
        try:
            total += len(inflater.decompress(raw, limit - total + 1))
        except zlib.error:
            continue  # pdfminer copes with (or reports) broken Flate itself
        if total > limit:
            raise PdfError(f"page {number}: its content expands to more than {limit} bytes")


def _declared_page_count(doc: Any) -> int | None:
    """The page count the document's page tree declares, or None when it does not say (or says nonsense)."""
    try:
        count = resolve1(resolve1(doc.catalog.get("Pages")).get("Count"))
    except Exception:  # a broken page tree is reported when the pages are read
        return None
    return count if isinstance(count, int) and count >= 0 else None


@contextmanager
def _translated_errors(page: int | None = None) -> Iterator[None]:
    """Turn whatever pdfplumber and pdfminer raise on bad input into one PdfError with a plain reason.

    pdfminer raises many unrelated types on malformed input (its own, KeyError, TypeError, zlib.error,
    struct.error, RecursionError on cyclic trees, ...), so this edge catches Exception and reports the
    type only: the message text may quote the file's bytes.
    """
    try:
        yield
    except PdfError:
        raise
    except Exception as exc:
        cause = exc.args[0] if isinstance(exc, PdfminerException) and exc.args else exc
        where = "" if page is None else f"page {page}: "
        raise PdfError(where + _reason(cause)) from None


def _reason(cause: object) -> str:
    if isinstance(cause, PDFEncryptionError):
        return "the PDF is encrypted (password protected); send it without a password"
    if isinstance(cause, PSEOF):
        return "the PDF is truncated (unexpected end of file)"
    if isinstance(cause, RecursionError):
        return "the PDF is corrupt (its object structure nests without end)"
    if isinstance(cause, _BusyPage):
        return f"draws more than {cause.limit} characters and shapes on one page (a report has far fewer)"
    if isinstance(cause, MemoryError):
        return "the PDF is corrupt (reading it needs more memory than is available)"
    return f"the PDF is corrupt ({type(cause).__name__})"
