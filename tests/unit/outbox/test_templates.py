"""templates: package defaults, per-file overrides, and loud failures instead of blanks."""

from __future__ import annotations

from pathlib import Path

import pytest

from outbox.templates import TemplateError, Templates

COVER_VALUES = {
    "report_type": "Support Plan",
    "case_ref": "MH-100001",
    "submission_token": "S-000123",
    "provider_name": "Acme MHSS",
}
NOTICE_VALUES = {
    **COVER_VALUES,
    "version": "1",
    "what": "correction",
    "waiting_for": "a corrected report",
    "due_date": "Mon 30 Nov 2026",
    "days_left": "2",
    "level": "1",
    "next_step": "Submit the corrected report.",
    "evidence": "Case: MH-100001",
    "missing": "no acknowledgement",
    "headline": "was not delivered",
    "reason": "550 5.1.1 mailbox unavailable",
    "message_id": "<S-000123.x@provider.example>",
    "dwp_inbox": "accesstowork.mhss@dwp.gov.uk",
    "submission_id": "7",
}
DEFAULT_NOTICES = ("reminder", "escalation", "send-failure")


def test_default_cover_text_renders() -> None:
    text = Templates().render_cover("cover", COVER_VALUES)
    assert "Support Plan for case MH-100001 (submission S-000123)" in text
    assert "$" not in text


@pytest.mark.parametrize("name", DEFAULT_NOTICES)
def test_default_notices_render_with_case_ref_and_token_in_the_subject(name: str) -> None:
    rendered = Templates().render_notice(name, NOTICE_VALUES)
    assert "MH-100001 [S-000123]" in rendered.subject
    assert "\n" not in rendered.subject
    assert "$" not in rendered.subject + rendered.body
    assert rendered.body.strip()


@pytest.mark.parametrize("name", ("cover", *DEFAULT_NOTICES))
def test_default_templates_use_only_documented_placeholders(name: str) -> None:
    Templates().check(name, NOTICE_VALUES)


def test_missing_values_are_named_in_the_error() -> None:
    values = {k: v for k, v in NOTICE_VALUES.items() if k not in {"due_date", "days_left"}}
    with pytest.raises(
        TemplateError, match=r"reminder \(package default\) needs values for: days_left, due_date"
    ):
        Templates().render_notice("reminder", values)


def test_a_folder_overrides_one_template_and_the_rest_come_from_the_package(tmp_path: Path) -> None:
    (tmp_path / "cover.txt").write_text("Report $case_ref attached. $$5 fee.\n", encoding="utf-8")
    templates = Templates(tmp_path)
    assert templates.render_cover("cover", COVER_VALUES) == "Report MH-100001 attached. $5 fee.\n"
    assert "MH-100001" in templates.render_notice("reminder", NOTICE_VALUES).subject


def test_check_reports_placeholders_the_caller_cannot_fill(tmp_path: Path) -> None:
    (tmp_path / "cover.txt").write_text("Dear ${customer_name}, $case_ref\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"unknown placeholders: customer_name"):
        Templates(tmp_path).check("cover", COVER_VALUES)


def test_malformed_placeholder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cover.txt").write_text("Costs $5 and ${case_ref\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="malformed placeholder"):
        Templates(tmp_path).render_cover("cover", COVER_VALUES)


def test_notice_needs_a_subject_line_and_a_blank_line(tmp_path: Path) -> None:
    (tmp_path / "reminder.txt").write_text("No subject here\n", encoding="utf-8")
    (tmp_path / "escalation.txt").write_text("Subject: x\nbody straight after\n", encoding="utf-8")
    templates = Templates(tmp_path)
    with pytest.raises(TemplateError, match="must start with a 'Subject:' line"):
        templates.render_notice("reminder", NOTICE_VALUES)
    with pytest.raises(TemplateError, match="blank line must follow"):
        templates.render_notice("escalation", NOTICE_VALUES)


def test_cover_text_must_not_have_a_subject(tmp_path: Path) -> None:
    (tmp_path / "cover.txt").write_text("Subject: nope\n\nbody\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="a cover text has none"):
        Templates(tmp_path).render_cover("cover", COVER_VALUES)


def test_crlf_template_files_are_read_like_lf(tmp_path: Path) -> None:
    (tmp_path / "reminder.txt").write_bytes(b"Subject: Due $due_date\r\n\r\nLine one\r\nLine two\r\n")
    rendered = Templates(tmp_path).render_notice("reminder", NOTICE_VALUES)
    assert rendered.subject == "Due Mon 30 Nov 2026"
    assert rendered.body == "Line one\nLine two\n"


@pytest.mark.parametrize("name", ["../cover", "Cover", "cover.txt", "", "a/b"])
def test_template_names_cannot_leave_the_folder(name: str) -> None:
    with pytest.raises(TemplateError, match="must be lower-case"):
        Templates().render_cover(name, COVER_VALUES)


def test_unknown_template_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(
        TemplateError, match=f"no template named nothing in {tmp_path} or the package defaults"
    ):
        Templates(tmp_path).render_cover("nothing", COVER_VALUES)


def test_each_file_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "cover.txt"
    path.write_text("first $case_ref\n", encoding="utf-8")
    templates = Templates(tmp_path)
    assert templates.render_cover("cover", COVER_VALUES) == "first MH-100001\n"
    path.write_text("second $case_ref\n", encoding="utf-8")
    assert templates.render_cover("cover", COVER_VALUES) == "first MH-100001\n"
