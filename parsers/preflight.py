"""Preflight: is this report PDF fit to send to DWP for this case? (Annex F, memo 08)

Each check looks at the report one page at a time (`parsers.pdf.read_pages`, one page in memory) and ends in
one `Finding` (pass / warn / fail, the page it concerns, a one-line detail). The policy decides which failures
block sending; the report says which did. Checks:

    readable           size, page count, encryption, corruption; a fail ends the preflight, always blocks
    case_ref           the case's reference is on the report, and no other case's reference is
    report_type        the report names itself as the type it is being sent as
    employment_status  a statement that the customer is or is not in employment (Annex F §5)
    signature          evidence of the customer's signature (memo 08 §4.39, 4.47, 5.04)
    fonts              share of characters not in Arial (or a configured alias) at 12 pt (Annex F §3)

`preflight` never raises on bad input: an unreadable PDF is a report with a failed `readable` finding.
Details name pages, counts, fonts and case references, never the report's wording (it is health data).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any, Protocol

from parsers.errors import PdfError
from parsers.fonts import ARIAL_NAMES
from parsers.pdf import FontUse, PageContent, PastLimit, read_pages

__all__ = [
    "Check",
    "Finding",
    "Outcome",
    "PreflightPolicy",
    "PreflightReport",
    "normalise",
    "preflight",
]


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    WARN = "warn"
    FAIL = "fail"


class Check(StrEnum):
    READABLE = "readable"
    CASE_REF = "case_ref"
    REPORT_TYPE = "report_type"
    EMPLOYMENT_STATUS = "employment_status"
    SIGNATURE = "signature"
    FONTS = "fonts"


@dataclass(frozen=True)
class Finding:
    """The result of one check: pass / warn / fail, the page it concerns (None: the whole report), and why."""

    check: Check
    outcome: Outcome
    page: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": str(self.check),
            "outcome": str(self.outcome),
            "page": self.page,
            "detail": self.detail,
        }


# Matched, ignoring case, against the text with white space collapsed and plain dashes and apostrophes.
_QUALIFIERS = "(?:currently |still |now |not |no longer )*"
EMPLOYMENT_PATTERNS = (
    rf"\b(?:is|are|remains?) {_QUALIFIERS}(?:in|out of) (?:paid )?(?:employment|work)\b",
    rf"\b(?:is|are) {_QUALIFIERS}(?:un|self-|self )?employed\b",
    r"\bemployment status ?:? ?(?:employed|unemployed|self-employed|in employment|not in employment)\b",
    r"\bin (?:paid )?employment ?: ?(?:yes|no)\b",
    r"\b(?:remains|remained|continues|continued) (?:to be )?in (?:work|employment)\b",
    r"\b(?:has|have) (?:returned|gone back) to work\b",
    r"\bis (?:currently |still |now )*(?:not )?working\b",
)
SIGNATURE_PATTERNS = (
    r"\bsignature\b",
    r"\bsigned\b",
    r"\be-?signature\b",
    r"\be-?signed\b",
    r"(?<!\w)/s/(?!\w)",
)
REPORT_TYPE_KEYWORDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "support-plan": ("support plan",),
        "six-month-report": ("6 month report", "six month report", "6-month report", "six-month report"),
        "exit-report": ("exit report",),
        "monthly-update": ("monthly update",),
    }
)
OTHER_REPORT_TYPE = "other"


@dataclass(frozen=True)
class PreflightPolicy:
    """What preflight checks and which failures block sending. Mapped from config `[preflight]`.

    Patterns are regular expressions; an invalid one raises ValueError naming the field, at construction.
    """

    max_bytes: int = 20_000_000
    max_pages: int = 100
    case_ref_pattern: str = r"MH-\d{6}"
    allowed_fonts: tuple[str, ...] = ARIAL_NAMES
    font_aliases: tuple[str, ...] = ()
    font_size: float = 12.0
    font_size_tolerance: float = 0.5
    font_warn_share: float = 0.05
    font_fail_share: float = 0.20
    employment_patterns: tuple[str, ...] = EMPLOYMENT_PATTERNS
    signature_patterns: tuple[str, ...] = SIGNATURE_PATTERNS
    signature_missing: Outcome = Outcome.WARN
    report_type_keywords: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: REPORT_TYPE_KEYWORDS)
    blocking: frozenset[Check] = frozenset(
        {Check.READABLE, Check.CASE_REF, Check.REPORT_TYPE, Check.EMPLOYMENT_STATUS}
    )

    @classmethod
    def default(cls) -> PreflightPolicy:
        return cls()

    def __post_init__(self) -> None:
        # Config hands over lists and plain strings; store tuples and enums so the policy is a real value.
        fix = object.__setattr__
        for name in ("allowed_fonts", "font_aliases", "employment_patterns", "signature_patterns"):
            fix(self, name, tuple(getattr(self, name)))
        keywords = {code: tuple(phrases) for code, phrases in self.report_type_keywords.items()}
        fix(self, "report_type_keywords", MappingProxyType(keywords))
        try:
            fix(self, "blocking", frozenset(Check(name) for name in self.blocking))
            fix(self, "signature_missing", Outcome(self.signature_missing))
        except ValueError as exc:
            raise ValueError(f"preflight policy: {exc}") from None
        self._validate()

    def _validate(self) -> None:
        if self.max_bytes < 1 or self.max_pages < 1:
            raise ValueError("preflight policy: max_bytes and max_pages must be at least 1")
        if not 0 <= self.font_warn_share <= self.font_fail_share <= 1:
            raise ValueError("preflight policy: need 0 <= font_warn_share <= font_fail_share <= 1")
        if self.signature_missing is Outcome.PASS:
            raise ValueError("preflight policy: signature_missing must be warn or fail")
        for name, compiled in _COMPILED.items():
            try:
                getattr(self, compiled)  # compiles once, here, so a bad pattern fails at start-up
            except re.error as exc:
                raise ValueError(
                    f"preflight policy: {name}: not a valid regular expression ({exc})"
                ) from None

    @cached_property
    def case_ref_regex(self) -> re.Pattern[str]:
        """The configured case reference pattern, matched as a whole token ("MH-1000012" is no match)."""
        re.compile(self.case_ref_pattern)  # alone first: wrapped, a stray "[" could swallow the wrapping
        return re.compile(rf"(?<![A-Za-z0-9])(?:{self.case_ref_pattern})(?![A-Za-z0-9])", re.IGNORECASE)

    @cached_property
    def employment_regexes(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p, re.IGNORECASE) for p in self.employment_patterns)

    @cached_property
    def signature_regexes(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p, re.IGNORECASE) for p in self.signature_patterns)

    @cached_property
    def _font_names(self) -> frozenset[str]:
        return frozenset(name.casefold() for name in (*self.allowed_fonts, *self.font_aliases))

    def is_conforming(self, font: FontUse) -> bool:
        """Arial (or an alias) at the policy's size, within tolerance."""
        size_ok = abs(font.size - self.font_size) <= self.font_size_tolerance
        return size_ok and font.name.casefold() in self._font_names


_COMPILED = {
    "case_ref_pattern": "case_ref_regex",
    "employment_patterns": "employment_regexes",
    "signature_patterns": "signature_regexes",
}


@dataclass(frozen=True)
class PreflightReport:
    """Every finding for one PDF, with what identifies the file (size, sha256) and which checks block."""

    findings: tuple[Finding, ...]
    pages: int
    sha256: str
    size: int
    blocking: frozenset[Check]

    @property
    def blocking_failures(self) -> tuple[Finding, ...]:
        """Failed findings that stop the report being sent; an unreadable PDF always does."""
        return tuple(
            f
            for f in self.findings
            if f.outcome is Outcome.FAIL and (f.check in self.blocking or f.check is Check.READABLE)
        )

    @property
    def passed(self) -> bool:
        """True when nothing blocks sending (warnings and non-blocking failures may remain)."""
        return not self.blocking_failures

    def finding(self, check: Check) -> Finding | None:
        return next((f for f in self.findings if f.check is check), None)

    def to_dict(self) -> dict[str, Any]:
        blocked = set(self.blocking_failures)
        return {
            "passed": self.passed,
            "pages": self.pages,
            "size": self.size,
            "sha256": self.sha256,
            "blocking": sorted(map(str, self.blocking | {Check.READABLE})),
            "findings": [{**f.to_dict(), "blocks": f in blocked} for f in self.findings],
        }


def preflight(
    data: bytes, policy: PreflightPolicy, *, case_ref: str, report_type: str, font_exception: bool = False
) -> PreflightReport:
    """Check a report PDF against the policy for this case and report type; never raises on bad input.

    `font_exception` records a per-case agreement (e.g. the customer needs a larger font): font findings
    then pass with a note instead of warning or failing.
    """
    checks: list[_PageCheck] = [
        _CaseRefCheck(policy, case_ref),
        _ReportTypeCheck(policy, report_type),
        _PatternCheck(Check.EMPLOYMENT_STATUS, policy.employment_regexes, Outcome.FAIL),
        _PatternCheck(Check.SIGNATURE, policy.signature_regexes, policy.signature_missing),
        _FontCheck(policy, font_exception=font_exception),
    ]
    pages = 0
    characters = 0
    try:
        for page in read_pages(
            data, max_pages=policy.max_pages, max_bytes=policy.max_bytes, past_limit=PastLimit.FAIL
        ):
            pages, characters = page.number, characters + page.characters
            text = normalise(page.text)
            for check in checks:
                check.see(page, text)
    except PdfError as exc:
        findings: tuple[Finding, ...] = (Finding(Check.READABLE, Outcome.FAIL, None, str(exc)),)
    else:
        findings = (_readable(pages, len(data), characters), *(check.finding() for check in checks))
    return PreflightReport(
        findings=findings,
        pages=pages,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        blocking=policy.blocking,
    )


_PATTERN_DETAILS = {  # check: (detail when nothing matched, detail when found)
    Check.EMPLOYMENT_STATUS: (
        "no statement that the customer is or is not in employment (Annex F)",
        "employment status stated",
    ),
    Check.SIGNATURE: (
        "no evidence of the customer's signature found in the text",
        "signature evidence found",
    ),
}
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"))
_QUOTES = str.maketrans(dict.fromkeys("\u2018\u2019\u201b\u2032\uff07", "'"))
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Text as the checks read it: one space for any run of white space, plain dashes and apostrophes."""
    return _SPACE.sub(" ", text.translate(_DASHES).translate(_QUOTES))


def _readable(pages: int, size: int, characters: int) -> Finding:
    if characters == 0:
        detail = f"{pages} page(s) but no text: a scanned image? the other checks cannot read it"
        return Finding(Check.READABLE, Outcome.WARN, None, detail)
    return Finding(Check.READABLE, Outcome.PASS, None, f"{pages} page(s), {size} bytes")


class _PageCheck(Protocol):
    def see(self, page: PageContent, text: str) -> None: ...

    def finding(self) -> Finding: ...


class _CaseRefCheck:
    """The expected reference must appear; any other reference is a misfiled report (a data incident).

    With no expected reference (`mailroom preflight` without `--case`) it reports what the PDF names:
    one reference warns (nothing to compare it with), none or several fail.
    """

    def __init__(self, policy: PreflightPolicy, case_ref: str) -> None:
        self._pattern = policy.case_ref_regex
        self._expected = normalise(case_ref).strip().upper()
        self._literal = (
            re.compile(rf"(?<![A-Za-z0-9]){re.escape(self._expected)}(?![A-Za-z0-9])", re.IGNORECASE)
            if self._expected
            else None
        )
        self._first_page: dict[str, int] = {}  # each reference seen, with its first page (two others suffice)

    def see(self, page: PageContent, text: str) -> None:
        for ref in self._refs(text):
            if ref == self._expected or len(self._first_page) < _ENOUGH_REFS:
                self._first_page.setdefault(ref, page.number)

    def _refs(self, text: str) -> Iterable[str]:
        yield from (m.group(0).upper() for m in self._pattern.finditer(text))
        # The expected reference may not fit the configured pattern (an old scheme): look for it literally.
        if self._literal is not None and self._literal.search(text):
            yield self._expected

    def finding(self) -> Finding:
        others = [(page, ref) for ref, page in self._first_page.items() if ref != self._expected]
        found_on = self._first_page.get(self._expected)
        if not self._expected:
            return self._without_expected(sorted(others))
        if others:
            page, ref = min(others)
            detail = f"names case {ref} on page {page}, not {self._expected}: a misfiled report?"
            return Finding(Check.CASE_REF, Outcome.FAIL, page, detail)
        if found_on is None:
            return Finding(Check.CASE_REF, Outcome.FAIL, None, f"case reference {self._expected} not found")
        return Finding(Check.CASE_REF, Outcome.PASS, found_on, f"case reference {self._expected} found")

    @staticmethod
    def _without_expected(seen: list[tuple[int, str]]) -> Finding:
        if not seen:
            return Finding(Check.CASE_REF, Outcome.FAIL, None, "no case reference found")
        if len(seen) == 1:
            page, ref = seen[0]
            return Finding(Check.CASE_REF, Outcome.WARN, page, f"names case {ref}; no case given to compare")
        (page, first), (other_page, other) = seen[:2]
        detail = f"names case {first} (page {page}) and {other} (page {other_page}): a misfiled report?"
        return Finding(Check.CASE_REF, Outcome.FAIL, other_page, detail)


_ENOUGH_REFS = 3


class _ReportTypeCheck:
    """The first report type the PDF names (its title, normally) should be the one it is sent as."""

    def __init__(self, policy: PreflightPolicy, report_type: str) -> None:
        self._expected = report_type
        # "other" is no type of its own: phrases configured for it would only shadow the real types.
        self._phrases = {
            code: tuple(normalise(p).casefold() for p in phrases)
            for code, phrases in policy.report_type_keywords.items()
            if code != OTHER_REPORT_TYPE
        }
        self._first: tuple[int, str] | None = None
        self._expected_on: int | None = None

    def see(self, page: PageContent, text: str) -> None:
        folded = text.casefold()
        positions = {
            code: min(pos for p in phrases if (pos := folded.find(p)) >= 0)
            for code, phrases in self._phrases.items()
            if any(p in folded for p in phrases)
        }
        if positions and self._first is None:
            self._first = (page.number, min(positions, key=positions.__getitem__))
        if self._expected in positions and self._expected_on is None:
            self._expected_on = page.number

    def finding(self) -> Finding:
        expected = self._expected
        if expected == OTHER_REPORT_TYPE:
            return Finding(Check.REPORT_TYPE, Outcome.PASS, None, "type 'other': any report type is accepted")
        if expected not in self._phrases:
            detail = f"no phrases configured for report type {expected!r} (report_type_keywords)"
            return Finding(Check.REPORT_TYPE, Outcome.FAIL, None, detail)
        if self._first is None:
            return Finding(
                Check.REPORT_TYPE, Outcome.FAIL, None, f"no report type recognised; expected {expected}"
            )
        page, first = self._first
        if first == expected:
            return Finding(Check.REPORT_TYPE, Outcome.PASS, page, f"reads as {expected}")
        if self._expected_on is None:
            return Finding(Check.REPORT_TYPE, Outcome.FAIL, page, f"reads as {first}, not {expected}")
        detail = f"first names itself {first} (page {page}); {expected} appears on page {self._expected_on}"
        return Finding(Check.REPORT_TYPE, Outcome.WARN, page, detail)


class _PatternCheck:
    """Passes on the first page where any pattern matches; otherwise ends in `missing`."""

    def __init__(self, check: Check, patterns: tuple[re.Pattern[str], ...], missing: Outcome) -> None:
        self._check, self._patterns, self._missing = check, patterns, missing
        self._found_on: int | None = None

    def see(self, page: PageContent, text: str) -> None:
        if self._found_on is None and any(p.search(text) for p in self._patterns):
            self._found_on = page.number

    def finding(self) -> Finding:
        missing, found = _PATTERN_DETAILS[self._check]
        if self._found_on is None:
            return Finding(self._check, self._missing, None, missing)
        return Finding(self._check, Outcome.PASS, self._found_on, found)


class _FontCheck:
    """Counts characters per font and size, page by page; keeps only totals and each font's first page."""

    def __init__(self, policy: PreflightPolicy, *, font_exception: bool) -> None:
        self._policy = policy
        self._exception = font_exception
        self._total = 0
        self._off: Counter[FontUse] = Counter()
        self._first_page: dict[FontUse, int] = {}

    def see(self, page: PageContent, text: str) -> None:
        for font, count in page.fonts.items():
            self._total += count
            if not self._policy.is_conforming(font):
                self._off[font] += count
                self._first_page.setdefault(font, page.number)

    def finding(self) -> Finding:
        policy = self._policy
        if self._total == 0:
            return Finding(Check.FONTS, Outcome.WARN, None, "no text characters to check")
        off = sum(self._off.values())
        share = off / self._total
        wanted = f"Arial {policy.font_size:g} pt"
        if off == 0:
            return Finding(Check.FONTS, Outcome.PASS, None, f"all {self._total} characters are {wanted}")
        outcome = (
            Outcome.FAIL
            if share >= policy.font_fail_share
            else Outcome.WARN
            if share >= policy.font_warn_share
            else Outcome.PASS
        )
        first = min(self._first_page.values())
        detail = f"{share:.1%} of {self._total} characters are not {wanted}: {self._offenders()}"
        if self._exception and outcome is not Outcome.PASS:
            return Finding(Check.FONTS, Outcome.PASS, first, f"per-case exception; {detail}")
        return Finding(Check.FONTS, outcome, first, detail)

    def _offenders(self, top: int = 3) -> str:
        parts = [
            f"{font.name} {font.size:g} pt ({count} from page {self._first_page[font]})"
            for font, count in self._off.most_common(top)
        ]
        more = len(self._off) - top
        return ", ".join(parts) + (f" and {more} more" if more > 0 else "")
