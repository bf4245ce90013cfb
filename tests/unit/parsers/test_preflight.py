"""parsers.preflight on generated report PDFs (tests/support/pdfs.py): each check, outcome and policy."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.preflight import (
    Check,
    Finding,
    Outcome,
    PreflightPolicy,
    PreflightReport,
    normalise,
    preflight,
)
from tests.support import pdfs

POLICY = PreflightPolicy.default()


def check(
    data: bytes,
    policy: PreflightPolicy = POLICY,
    *,
    case_ref: str = pdfs.CASE_REF,
    report_type: str = "support-plan",
    font_exception: bool = False,
) -> PreflightReport:
    return preflight(data, policy, case_ref=case_ref, report_type=report_type, font_exception=font_exception)


def finding(report: PreflightReport, which: Check) -> Finding:
    found = report.finding(which)
    assert found is not None, f"no {which} finding in {report.to_dict()}"
    return found


class TestConformingReport:
    def test_arial_12_passes_every_check(self) -> None:
        report = check(pdfs.arial_12_report())
        assert [(f.check, f.outcome) for f in report.findings] == [(c, Outcome.PASS) for c in Check]
        assert report.passed
        assert report.blocking_failures == ()

    def test_identifies_the_file(self) -> None:
        data = pdfs.arial_12_report()
        report = check(data)
        assert (report.size, report.sha256, report.pages) == (len(data), hashlib.sha256(data).hexdigest(), 1)

    def test_to_dict_is_json_with_every_finding(self) -> None:
        as_dict = json.loads(json.dumps(check(pdfs.report_without_employment_statement()).to_dict()))
        assert as_dict["passed"] is False
        assert [f["check"] for f in as_dict["findings"]] == [str(c) for c in Check]
        employment = as_dict["findings"][3]
        assert employment == {
            "check": "employment_status",
            "outcome": "fail",
            "page": None,
            "detail": "no statement that the customer is or is not in employment (Annex F)",
            "blocks": True,
        }
        assert as_dict["blocking"] == ["case_ref", "employment_status", "readable", "report_type"]

    def test_200_pages_are_read_page_by_page(self) -> None:
        report = check(pdfs.pages_pdf(200, lines_per_page=2), PreflightPolicy(max_pages=200))
        assert report.passed
        assert report.pages == 200
        assert finding(report, Check.SIGNATURE).page == 200


class TestReadable:
    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (pdfs.encrypted_pdf(), "the PDF is encrypted (password protected); send it without a password"),
            (pdfs.truncated_pdf(0.5), "the PDF is truncated (unexpected end of file)"),
            (pdfs.zero_page_pdf(), "the PDF has no pages"),
            (b"", "the file is empty"),
            (b"<html>not a pdf</html>", "not a PDF (no %PDF- header)"),
        ],
        ids=["encrypted", "truncated", "zero-pages", "empty", "not-a-pdf"],
    )
    def test_unreadable_pdf_is_one_blocking_failure_with_the_reason(self, data: bytes, reason: str) -> None:
        report = check(data)
        assert report.findings == (Finding(Check.READABLE, Outcome.FAIL, None, reason),)
        assert report.blocking_failures == report.findings
        assert not report.passed

    def test_oversized(self) -> None:
        report = check(pdfs.arial_12_report(), PreflightPolicy(max_bytes=10_000))
        assert finding(report, Check.READABLE).detail.endswith("bytes; the limit is 10000")
        assert not report.passed

    def test_too_many_pages(self) -> None:
        report = check(pdfs.pages_pdf(3, lines_per_page=2), PreflightPolicy(max_pages=2))
        assert report.findings == (
            Finding(Check.READABLE, Outcome.FAIL, None, "the PDF has 3 pages; the limit is 2"),
        )

    def test_unreadable_always_blocks_whatever_the_policy_says(self) -> None:
        report = check(pdfs.encrypted_pdf(), PreflightPolicy(blocking=frozenset()))
        assert not report.passed

    def test_a_pdf_without_text_warns_that_it_cannot_be_checked(self) -> None:
        blank = pdfs.minimal_pdf(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
            ]
        )
        report = check(blank)
        assert finding(report, Check.READABLE).outcome is Outcome.WARN
        assert finding(report, Check.FONTS).outcome is Outcome.WARN
        assert finding(report, Check.CASE_REF).outcome is Outcome.FAIL


class TestCaseRef:
    def test_missing_case_ref_fails(self) -> None:
        report = check(pdfs.report_without_case_ref())
        assert finding(report, Check.CASE_REF) == Finding(
            Check.CASE_REF, Outcome.FAIL, None, "case reference MH-100001 not found"
        )
        assert not report.passed

    def test_another_case_named_on_page_2_fails_naming_page_and_case(self) -> None:
        result = finding(check(pdfs.report_for_other_case()), Check.CASE_REF)
        assert (result.outcome, result.page) == (Outcome.FAIL, 2)
        assert "MH-100002" in result.detail

    def test_report_for_a_different_case_fails(self) -> None:
        result = finding(check(pdfs.arial_12_report(), case_ref="MH-100009"), Check.CASE_REF)
        assert (result.outcome, result.page) == (Outcome.FAIL, 1)
        assert result.detail == "names case MH-100001 on page 1, not MH-100009: a misfiled report?"

    def test_without_a_case_one_reference_warns_and_is_named(self) -> None:
        result = finding(check(pdfs.arial_12_report(), case_ref=""), Check.CASE_REF)
        assert result == Finding(
            Check.CASE_REF, Outcome.WARN, 1, "names case MH-100001; no case given to compare"
        )

    def test_without_a_case_two_references_fail(self) -> None:
        result = finding(check(pdfs.report_for_other_case(), case_ref=""), Check.CASE_REF)
        assert (result.outcome, result.page) == (Outcome.FAIL, 2)
        assert "MH-100001 (page 1) and MH-100002 (page 2)" in result.detail

    def test_without_a_case_no_reference_fails(self) -> None:
        result = finding(check(pdfs.report_without_case_ref(), case_ref=""), Check.CASE_REF)
        assert (result.outcome, result.detail) == (Outcome.FAIL, "no case reference found")

    def test_a_longer_number_is_not_the_case_ref(self) -> None:
        data = pdfs.times_10_report(case_ref=None, extra_lines=((1, "Invoice MH-1000012"),))
        assert finding(check(data), Check.CASE_REF).outcome is Outcome.FAIL

    def test_typographic_dash_and_lower_case_still_match(self) -> None:
        data = pdfs.times_10_report(case_ref=None, extra_lines=((1, "Case: mh\u2013100001"),))
        assert finding(check(data), Check.CASE_REF).outcome is Outcome.PASS

    def test_a_case_ref_outside_the_configured_pattern_is_found_literally(self) -> None:
        data = pdfs.times_10_report(case_ref="OLD/77")
        report = check(data, case_ref="OLD/77")
        assert finding(report, Check.CASE_REF).outcome is Outcome.PASS


class TestReportType:
    def test_sent_as_another_type_fails(self) -> None:
        result = finding(check(pdfs.arial_12_report(), report_type="exit-report"), Check.REPORT_TYPE)
        assert result == Finding(Check.REPORT_TYPE, Outcome.FAIL, 1, "reads as support-plan, not exit-report")

    @pytest.mark.parametrize("report_type", ["six-month-report", "exit-report", "monthly-update"])
    def test_each_type_is_recognised_from_its_title(self, report_type: str) -> None:
        data = pdfs.times_10_report(report_type=report_type)
        assert finding(check(data, report_type=report_type), Check.REPORT_TYPE).outcome is Outcome.PASS

    def test_six_month_report_in_words(self) -> None:
        data = pdfs.times_10_report(report_type="?", extra_lines=((1, "SIX-MONTH REPORT"),))
        assert finding(check(data, report_type="six-month-report"), Check.REPORT_TYPE).outcome is Outcome.PASS

    def test_expected_type_named_after_another_warns(self) -> None:
        data = pdfs.times_10_report(extra_lines=((1, "This exit report closes the support."),))
        result = finding(check(data, report_type="exit-report"), Check.REPORT_TYPE)
        assert (result.outcome, result.page) == (Outcome.WARN, 1)

    def test_no_recognisable_type_fails(self) -> None:
        data = pdfs.times_10_report(report_type="?")
        result = finding(check(data), Check.REPORT_TYPE)
        assert result == Finding(
            Check.REPORT_TYPE, Outcome.FAIL, None, "no report type recognised; expected support-plan"
        )

    def test_other_always_passes(self) -> None:
        data = pdfs.times_10_report(report_type="?")
        assert finding(check(data, report_type="other"), Check.REPORT_TYPE).outcome is Outcome.PASS

    def test_phrases_configured_for_other_never_shadow_a_real_type(self) -> None:
        keywords = {**POLICY.report_type_keywords, "other": ("report", "access to work")}
        policy = PreflightPolicy(report_type_keywords=keywords)
        data = pdfs.times_10_report(report_type="six-month-report")
        result = finding(check(data, policy, report_type="six-month-report"), Check.REPORT_TYPE)
        assert result.outcome is Outcome.PASS

    def test_a_type_without_configured_phrases_fails_and_says_so(self) -> None:
        result = finding(check(pdfs.arial_12_report(), report_type="annual-review"), Check.REPORT_TYPE)
        assert result.outcome is Outcome.FAIL
        assert "report_type_keywords" in result.detail


class TestEmploymentStatus:
    def test_missing_statement_fails_and_blocks(self) -> None:
        report = check(pdfs.report_without_employment_statement())
        assert [f.check for f in report.blocking_failures] == [Check.EMPLOYMENT_STATUS]

    @pytest.mark.parametrize(
        "sentence",
        [
            "The customer is currently in employment.",
            "The customer is not currently in employment.",
            "She is no longer employed.",
            "He is self-employed as a joiner.",
            "The customer is unemployed.",
            "Employment status: self-employed",
            "Employment  status:\nemployed",
            "In employment: No",
            "The customer remains in work.",
            "They have returned to work part time.",
            "The customer is not working at present.",
            "The customer is out of work.",
        ],
    )
    def test_statements_that_count(self, sentence: str) -> None:
        text = normalise(sentence)
        assert any(p.search(text) for p in POLICY.employment_regexes), sentence

    @pytest.mark.parametrize(
        "sentence",
        [
            "Employment status:",
            "We discussed employment support and the employer's role.",
            "The workplace adjustments were agreed.",
        ],
    )
    def test_phrases_that_do_not(self, sentence: str) -> None:
        text = normalise(sentence)
        assert not any(p.search(text) for p in POLICY.employment_regexes), sentence


class TestSignature:
    def test_missing_signature_warns_and_does_not_block_by_default(self) -> None:
        report = check(pdfs.arial_12_report(signature=False))
        assert finding(report, Check.SIGNATURE).outcome is Outcome.WARN
        assert report.passed

    def test_policy_can_make_it_a_blocking_failure(self) -> None:
        policy = PreflightPolicy(signature_missing=Outcome.FAIL, blocking=POLICY.blocking | {Check.SIGNATURE})
        report = check(pdfs.arial_12_report(signature=False), policy)
        assert [f.check for f in report.blocking_failures] == [Check.SIGNATURE]

    def test_found_on_the_last_page(self) -> None:
        assert finding(check(pdfs.pages_pdf(3, lines_per_page=3)), Check.SIGNATURE).page == 3


class TestFonts:
    def test_times_10_fails_naming_font_size_and_page(self) -> None:
        result = finding(check(pdfs.times_10_report()), Check.FONTS)
        assert (result.outcome, result.page) == (Outcome.FAIL, 1)
        assert result.detail.startswith("100.0% of ")
        assert "Times-Roman 10 pt" in result.detail
        assert "from page 1" in result.detail

    def test_font_failures_do_not_block_by_default(self) -> None:
        assert check(pdfs.times_10_report()).passed

    def test_policy_can_make_fonts_block(self) -> None:
        policy = PreflightPolicy(blocking=POLICY.blocking | {Check.FONTS})
        assert [f.check for f in check(pdfs.times_10_report(), policy).blocking_failures] == [Check.FONTS]

    def test_per_case_exception_turns_a_fail_into_a_pass_with_a_note(self) -> None:
        result = finding(check(pdfs.times_10_report(), font_exception=True), Check.FONTS)
        assert result.outcome is Outcome.PASS
        assert result.detail.startswith("per-case exception; 100.0% of")

    def test_share_thresholds_decide_warn_and_fail(self) -> None:
        data = pdfs.arial_12_report(title_font=pdfs.TIMES)  # only the title line is off
        outcome = {
            (warn, fail): finding(
                check(data, PreflightPolicy(font_warn_share=warn, font_fail_share=fail)), Check.FONTS
            ).outcome
            for warn, fail in [(0.5, 0.9), (0.01, 0.9), (0.01, 0.02)]
        }
        assert outcome == {(0.5, 0.9): Outcome.PASS, (0.01, 0.9): Outcome.WARN, (0.01, 0.02): Outcome.FAIL}

    @pytest.mark.parametrize(
        ("size", "expected"), [(12.4, Outcome.PASS), (11.6, Outcome.PASS), (13.0, Outcome.FAIL)]
    )
    def test_size_tolerance(self, size: float, expected: Outcome) -> None:
        assert finding(check(pdfs.arial_12_report(size=size)), Check.FONTS).outcome is expected

    def test_an_alias_counts_as_arial(self) -> None:
        policy = PreflightPolicy(font_aliases=("Times-Roman",), font_size=10.0)
        assert finding(check(pdfs.times_10_report(), policy), Check.FONTS).outcome is Outcome.PASS


class TestPolicy:
    def test_config_values_are_normalised(self) -> None:
        policy = PreflightPolicy(
            blocking=frozenset({"readable", "fonts"}),  # type: ignore[arg-type]
            allowed_fonts=["ArialMT"],  # type: ignore[arg-type]
            signature_missing="fail",  # type: ignore[arg-type]
        )
        assert policy.blocking == {Check.READABLE, Check.FONTS}
        assert all(isinstance(c, Check) for c in policy.blocking)
        assert policy.allowed_fonts == ("ArialMT",)
        assert policy.signature_missing is Outcome.FAIL

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"employment_patterns": ("(unclosed",)}, "employment_patterns: not a valid regular expression"),
            ({"case_ref_pattern": "["}, "case_ref_pattern: not a valid regular expression"),
            ({"blocking": frozenset({"spelling"})}, "'spelling' is not a valid Check"),
            ({"font_warn_share": 0.5, "font_fail_share": 0.1}, "font_warn_share <= font_fail_share"),
            ({"max_pages": 0}, "must be at least 1"),
            ({"signature_missing": "pass"}, "signature_missing must be warn or fail"),
        ],
    )
    def test_bad_values_are_refused_with_the_field_name(
        self, changes: dict[str, object], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            PreflightPolicy(**changes)  # type: ignore[arg-type]


_SMALL_REPORT = pdfs.times_10_report()


class TestHostileInput:
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.tuples(st.integers(0, len(_SMALL_REPORT) - 1), st.binary(min_size=1, max_size=8)), max_size=8
        ),
        st.integers(1, len(_SMALL_REPORT)),
    )
    def test_preflight_returns_a_report_for_any_damage(
        self, changes: list[tuple[int, bytes]], cut: int
    ) -> None:
        data = bytearray(_SMALL_REPORT)
        for position, chunk in changes:
            data[position : position + len(chunk)] = chunk
        report = check(bytes(data[:cut]))
        assert report.findings
        assert report.findings[0].check is Check.READABLE
        assert report.size == len(data[:cut])
