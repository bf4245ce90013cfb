"""Sample report PDFs for the harness and the demo: fictional cases, made with reportlab, no personal data.

A real report comes out of Word in Arial ("ArialMT"). reportlab ships no Arial, so the conforming samples
are set in the Bitstream Vera face that comes with it, embedded under Arial's PostScript name; preflight then
sees what it sees in a real export. The other samples miss exactly one thing DWP looks for.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import reportlab  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

ARIAL = "ArialMT"
TIMES = "Times-Roman"  # one of PDF's built-in fonts: no embedding needed
TITLES = {
    "support-plan": "Support Plan",
    "six-month-report": "6 Month Report",
    "exit-report": "Exit Report",
    "monthly-update": "Monthly Update",
}
BODY = (
    "Support this period: fortnightly sessions with the mental health support specialist by video call.",
    "Goals agreed with the customer: plan the working week, raise workload concerns early, take breaks.",
    "Progress: the customer reports using the planning tools daily and feels more in control at work.",
    "Next steps: continue the sessions, review the goals in four weeks, agree a phased end of support.",
)


@dataclass(frozen=True)
class SampleReport:
    """One sample report and what is wrong with it, if anything."""

    case_ref: str
    report_type: str = "support-plan"
    arial_12: bool = True
    employment_statement: bool = True
    note: str = "conforms: passes preflight, DWP acknowledges it"

    @property
    def file_name(self) -> str:
        """`MH-100001_support-plan.pdf`: the name the spool folder reads the case and report type from."""
        return f"{self.case_ref}_{self.report_type}.pdf"

    def pdf(self) -> bytes:
        return _render(self)


SAMPLES = (
    SampleReport("MH-100001"),
    SampleReport(
        "MH-100002",
        arial_12=False,
        note="Times 10 pt: preflight warns (fonts do not block), DWP returns it for its format",
    ),
    SampleReport(
        "MH-100003",
        "six-month-report",
        employment_statement=False,
        note="no employment statement: preflight blocks it, it is never sent",
    ),
)


def write_samples(folder: Path, samples: tuple[SampleReport, ...] = SAMPLES) -> list[Path]:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = []
    for sample in samples:
        path = folder / sample.file_name
        path.write_bytes(sample.pdf())
        paths.append(path)
    return paths


@functools.cache
def register_arial() -> str:
    """Register reportlab's Vera under Arial's PostScript name (once per process); returns the font name."""
    vera = TTFont(ARIAL, str(Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"))
    vera.face.name = ARIAL.encode("ascii")  # the BaseFont pdfplumber reports comes from the face's name
    pdfmetrics.registerFont(vera)
    return ARIAL


def _lines(sample: SampleReport) -> list[str]:
    lines = [f"Case reference: {sample.case_ref}", "Provider: Harness Support Services (fictional)"]
    if sample.employment_statement:
        lines.append("Employment status: the customer is in employment and remains in work.")
    lines += [*BODY, "Customer's signature: signed electronically by the customer at the review meeting."]
    return lines


def _render(sample: SampleReport) -> bytes:
    font, size = (register_arial(), 12.0) if sample.arial_12 else (TIMES, 10.0)
    title = TITLES.get(sample.report_type, "Report")
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1)
    canvas.setFont(font, size)
    y = A4[1] - 72
    for line in [f"Access to Work Mental Health Support Service: {title}", "", *_lines(sample)]:
        canvas.drawString(72, y, line)
        y -= size * 1.6
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
