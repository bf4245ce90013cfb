"""wording: the words of the mailroom's own e-mails come from templates a site may edit; the values never
carry more than the case reference, and a broken template stops the start with one line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailroom.core.config import Settings
from mailroom.core.config_parse import settings_from_mapping
from mailroom.core.errors import ConfigError
from mailroom.service.clocks import work_calendar
from mailroom.service.wording import Wording
from mailroom.store.models import Case, Clock, Submission

SENT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DUE = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


def settings(**provider: object) -> Settings:
    data = {
        "provider": {"from_address": "a@provider.example", "team_address": "t@provider.example", **provider},
        "escalation": {"performance_manager": "pm@dwp.gov.uk"},
        "gpg": {"encrypt_at_rest": False},
    }
    return settings_from_mapping(data, source="/etc/m.toml", base_dir=Path("/etc"))


def wording(**provider: object) -> Wording:
    s = settings(**provider)
    return Wording(s, work_calendar(s))


CASE = Case(id=1, case_ref="MH-100001", created_at=SENT)
SUB = Submission(
    id=7,
    case_id=1,
    document_id=1,
    report_type="support-plan",
    version=2,
    state="rejected",
    token="S-000007",
    message_id="<S-000007.x@provider.example>",
    sent_at=SENT,
    sent_reply="250 2.0.0 Ok: queued as 4Zk3",
    rejected_at=SENT,
    rejection_reasons=["spelling-grammar"],
    created_at=SENT,
)
CORRECTION = Clock(
    id=3,
    kind="correction",
    state="running",
    case_id=1,
    submission_id=7,
    started_at=SENT,
    due_at=DUE,
    calendar="england-and-wales",
    holidays_version="2026",
)


def test_the_default_cover_names_type_case_and_token() -> None:
    text = wording().cover(CASE, SUB)
    assert "Support Plan for case MH-100001 (submission S-000007)" in text


def test_a_reminder_carries_the_days_left_the_next_step_and_the_evidence() -> None:
    notice = wording().reminder(CASE, SUB, CORRECTION, level="reminder-2", now=SENT)
    assert notice.subject == "MHSS reminder - MH-100001 [S-000007]: correction due Mon 30 Nov 2026 17:00"
    assert "5 working day(s) left" in notice.body
    assert "--supersedes 7" in notice.body
    assert "<S-000007.x@provider.example>" in notice.body and "250 2.0.0" in notice.body
    assert "$" not in notice.subject + notice.body


def test_an_escalation_and_an_alert_render_from_the_defaults() -> None:
    words = wording()
    escalation = words.escalation(CASE, SUB, CORRECTION, level="escalation-1")
    assert escalation.subject == "MHSS escalation-1 - MH-100001 [S-000007]: correction overdue"
    alert = words.send_failure(CASE, SUB, headline="bounced", reason="550 5.1.1 unknown user")
    assert "MH-100001 [S-000007]" in alert.subject and "550 5.1.1" in alert.body
    assert "queue retry 7" in alert.body


def test_a_site_template_replaces_the_default(tmp_path: Path) -> None:
    (tmp_path / "cover.txt").write_text("Report $case_ref v$version from $provider_name.\n")
    words = wording(templates_dir=str(tmp_path), name="Acme MHSS")
    words.check()
    assert words.cover(CASE, SUB) == "Report MH-100001 v2 from Acme MHSS.\n"


@pytest.mark.parametrize(
    ("file", "text", "problem"),
    [
        ("escalation.txt", "Subject: $case_ref\n\nDear $customer_name\n", "placeholders: customer_name"),
        ("reminder.txt", "No subject line $case_ref\n", "must start with a 'Subject:' line"),
        ("cover.txt", "Costs $5\n", "malformed placeholder"),
    ],
)
def test_a_broken_site_template_is_a_config_error_at_start(
    tmp_path: Path, file: str, text: str, problem: str
) -> None:
    (tmp_path / file).write_text(text)
    with pytest.raises(ConfigError) as caught:
        wording(templates_dir=str(tmp_path)).check()
    message = str(caught.value)
    assert message.startswith("/etc/m.toml: [provider] templates_dir: ") and problem in message
    assert "\n" not in message


def test_a_missing_templates_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a folder"):
        wording(templates_dir=str(tmp_path / "nowhere")).check()
