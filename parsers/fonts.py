"""Font names that count as Arial (Annex F §3), as PDF producers write them once a subset tag
(`ABCDEF+`) is removed. Kept apart from `parsers.preflight` so configuration can use the list without
loading pdfplumber.
"""

from __future__ import annotations

ARIAL_NAMES = (
    "Arial",
    "ArialMT",
    "Arial-BoldMT",
    "Arial-ItalicMT",
    "Arial-BoldItalicMT",
    "Arial-Bold",
    "Arial-Italic",
    "Arial-BoldItalic",
    "Arial,Bold",
    "Arial,Italic",
    "Arial,BoldItalic",
)
