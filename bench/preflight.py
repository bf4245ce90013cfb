"""Preflight speed and memory on a long report: time per page and peak RSS (goal: < 300 MB at 200 pages).

    .venv/bin/python bench/preflight.py [--pages 200] [--lines 40]

The report is generated first (tests/support/pdfs.py, about 100 characters a line), then measured in a fresh
child process so that reportlab's own memory does not count. For contrast the same file is read the
naive way in a second child: pdfplumber's `pdf.pages`, every page's characters and text, nothing closed.
A third child reads a hostile one-page PDF that draws just under the per-page object limit, the most
memory a single page may take.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _measure(path: Path, how: str) -> dict[str, float]:
    data = path.read_bytes()
    from parsers.preflight import PreflightPolicy, preflight

    baseline = _peak_rss_mb()
    started = time.perf_counter()
    if how in ("preflight", "busy-page"):
        policy = PreflightPolicy(max_pages=10_000)
        report = preflight(data, policy, case_ref="MH-100001", report_type="support-plan")
        pages = report.pages
        assert report.findings[0].outcome != "fail", report.to_dict()
    else:
        import io

        import pdfplumber

        pdf = pdfplumber.open(io.BytesIO(data))
        kept = [(page.extract_text(), page.chars) for page in pdf.pages]
        pages = len(kept)
    elapsed = time.perf_counter() - started
    return {"pages": pages, "seconds": elapsed, "baseline_mb": baseline, "peak_mb": _peak_rss_mb()}


def _child(path: Path, how: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", how, str(path)], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--lines", type=int, default=40, help="lines of body text per page")
    parser.add_argument("--measure", nargs=2, metavar=("HOW", "PDF"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(_measure(Path(args.measure[1]), args.measure[0])))
        return

    from tests.support.pdfs import pages_pdf

    with tempfile.TemporaryDirectory() as folder:
        path, busy = Path(folder) / "report.pdf", Path(folder) / "busy.pdf"
        path.write_bytes(pages_pdf(args.pages, lines_per_page=args.lines))
        busy.write_bytes(_busy_page_pdf())
        print(f"report: {args.pages} pages, {args.lines} lines a page, {path.stat().st_size / 1e6:.1f} MB")
        for how, file in (("preflight", path), ("naive", path), ("busy-page", busy)):
            r = _child(file, how)
            print(
                f"{how:>9}: {r['seconds'] / r['pages'] * 1000:6.1f} ms/page, {r['seconds']:5.1f} s total, "
                f"peak RSS {r['peak_mb']:6.1f} MB (after imports {r['baseline_mb']:.1f} MB)"
            )
    print("goal: preflight peak RSS < 300 MB for 200 pages")


def _busy_page_pdf() -> bytes:
    """One page drawing one character fewer than parsers.pdf's per-page limit, in a single string."""
    from parsers.pdf import MAX_PAGE_OBJECTS
    from tests.support.pdfs import minimal_pdf

    content = b"BT /F1 4 Tf 10 800 Td (MH-100001 " + b"a" * (MAX_PAGE_OBJECTS - 11) + b") Tj ET"
    return minimal_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >>"
            b" /Contents 5 0 R >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        ]
    )


if __name__ == "__main__":
    main()
