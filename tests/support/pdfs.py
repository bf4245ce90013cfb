"""Report PDFs made on the fly for tests and benches: fictional cases, no real personal data.

reportlab's built-in fonts are Helvetica and Times, so "Arial" here is the Bitstream Vera TTF shipped inside
reportlab, registered under the PostScript names Word gives Arial ("ArialMT", "Arial-BoldMT"). pdfplumber
then reports the characters as "AAAAAA+ArialMT": a subset-embedded Arial, as in a real exported report.
Nothing outside the reportlab wheel is needed.

Every builder returns the PDF bytes and is deterministic (reportlab's invariant mode), so a failing test can
be reproduced byte for byte.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import reportlab
from reportlab.lib.pagesizes import A4
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

ARIAL = "ArialMT"
ARIAL_BOLD = "Arial-BoldMT"
TIMES = "Times-Roman"

CASE_REF = "MH-100001"
OTHER_CASE_REF = "MH-100002"
EMPLOYMENT_STATEMENT = "The customer is currently in employment as an administrator and remains in work."
SIGNATURE_LINE = "Customer's signature: digitally signed by the customer on 3 February 2025."

_FILLER = (
    "Progress this period: the customer attended four sessions and practised the agreed coping strategies.",
    "Support will continue to focus on managing workload, planning the week and talking to the line manager.",
    "The specialist and the customer reviewed the goals in the plan and agreed the next steps together.",
    "Sessions were held by video call at a time that suited the customer's working pattern and duties.",
)
_TITLES = {
    "support-plan": "Support Plan",
    "six-month-report": "6 Month Report",
    "exit-report": "Exit Report",
    "monthly-update": "Monthly Update",
}


@functools.cache
def _register_arial() -> None:
    """Register Vera (shipped with reportlab) under Arial's PostScript names; once per process."""
    fonts = Path(reportlab.__file__).parent / "fonts"
    for name, file in ((ARIAL, "Vera.ttf"), (ARIAL_BOLD, "VeraBd.ttf")):
        font = TTFont(name, str(fonts / file))
        # The PDF's BaseFont comes from the face's PostScript name; this is what pdfplumber reports.
        font.face.name = name.encode("ascii")
        pdfmetrics.registerFont(font)


@dataclass(frozen=True)
class ReportSpec:
    """What a generated report contains and how it is set. Defaults make a report that passes preflight."""

    case_ref: str | None = CASE_REF
    report_type: str = "support-plan"
    font: str = ARIAL
    title_font: str = ARIAL_BOLD
    size: float = 12.0
    employment: bool = True
    signature: bool = True
    pages: int = 1
    lines_per_page: int = 12
    extra_lines: tuple[tuple[int, str], ...] = ()  # (page number, line) drawn before the body text
    user_password: str | None = None

    def with_(self, **changes: Any) -> ReportSpec:
        return replace(self, **changes)


def report_pdf(spec: ReportSpec | None = None) -> bytes:
    """A report as laid out by `spec`: a bold title and the case reference on page 1, then body lines."""
    return _build(spec or ReportSpec())


@functools.lru_cache(maxsize=64)
def _build(spec: ReportSpec) -> bytes:
    # Cached: embedding the TTF subset is most of the cost, and many tests ask for the same report.
    _register_arial()
    buffer = io.BytesIO()
    encrypt = StandardEncryption(spec.user_password, "owner-secret") if spec.user_password else None
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1, encrypt=encrypt)
    for number in range(1, spec.pages + 1):
        lines = _page_lines(spec, number)
        _draw_page(pdf, spec, lines, title=_TITLES.get(spec.report_type, "Report") if number == 1 else None)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _page_lines(spec: ReportSpec, number: int) -> list[str]:
    lines: list[str] = []
    if number == 1:
        if spec.case_ref:
            lines.append(f"Case reference: {spec.case_ref}")
        lines.append("Provider: Example Support Services Ltd")
        if spec.employment:
            lines.append(EMPLOYMENT_STATEMENT)
    lines.extend(line for page, line in spec.extra_lines if page == number)
    body = max(spec.lines_per_page - len(lines) - 1, 0)
    lines.extend(_FILLER[i % len(_FILLER)] for i in range(body))
    if number == spec.pages and spec.signature:
        lines.append(SIGNATURE_LINE)
    return lines


def _draw_page(pdf: canvas.Canvas, spec: ReportSpec, lines: list[str], *, title: str | None) -> None:
    y = A4[1] - 72
    if title is not None:
        pdf.setFont(spec.title_font, spec.size)
        pdf.drawString(72, y, f"Access to Work Mental Health Support Service - {title}")
        y -= spec.size * 2
    pdf.setFont(spec.font, spec.size)
    for line in lines:
        pdf.drawString(72, y, line)
        y -= spec.size * 1.5


def arial_12_report(**changes: Any) -> bytes:
    """A conforming report: Arial 12 pt, case MH-100001, employment statement and signature."""
    return report_pdf(ReportSpec().with_(**changes))


def times_10_report(**changes: Any) -> bytes:
    """Same content as `arial_12_report`, all in Times 10 pt."""
    return report_pdf(ReportSpec(font=TIMES, title_font=TIMES, size=10.0).with_(**changes))


def report_without_employment_statement() -> bytes:
    return report_pdf(ReportSpec(employment=False))


def report_without_case_ref() -> bytes:
    return report_pdf(ReportSpec(case_ref=None))


def report_for_other_case(other: str = OTHER_CASE_REF) -> bytes:
    """Case MH-100001 on page 1, and another case named on page 2: a misfiled report."""
    return report_pdf(
        ReportSpec(pages=2, extra_lines=((2, f"See also case {other} for the previous plan."),))
    )


def encrypted_pdf(password: str = "customer-secret") -> bytes:  # noqa: S107 - a test fixture
    """A conforming report that needs a user password to open (RC4 128-bit, reportlab's standard)."""
    return report_pdf(ReportSpec(user_password=password))


def truncated_pdf(fraction: float = 0.5) -> bytes:
    """A conforming report cut to `fraction` of its length, as after an interrupted upload."""
    data = report_pdf(ReportSpec(pages=3))
    return data[: int(len(data) * fraction)]


def pages_pdf(pages: int, *, lines_per_page: int = 40) -> bytes:
    """A conforming report of `pages` pages of body text (about 100 characters a line)."""
    return report_pdf(ReportSpec(pages=pages, lines_per_page=lines_per_page))


def zero_page_pdf() -> bytes:
    """A well-formed PDF whose page tree is empty (reportlab always writes a page, so this is hand-built)."""
    return minimal_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [] /Count 0 >>",
        ]
    )


def minimal_pdf(objects: Sequence[bytes]) -> bytes:
    """A PDF of `objects` (numbered from 1; object 1 is the catalog) with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
