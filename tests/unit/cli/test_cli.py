"""The admin CLI frame: acceptance commands of the foundation, and bad input that changes nothing."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.support import pdfs

PDF = pdfs.arial_12_report()
NINO_SPACED = "AB 12 34 56 C"
NINO_COMPACT = "AB123456C"


def _pdf(env: Env, name: str = "report.pdf", data: bytes = PDF) -> Path:
    path = env.root / name
    path.write_bytes(data)
    return path


def test_help_lists_the_commands(env: Env) -> None:
    result = env.run("--help")
    assert result.code == 0
    for command in ("db", "case", "submit", "queue"):
        assert command in result.out


def test_case_add_and_show_never_reveal_the_nino(env: Env) -> None:
    assert env.run("case", "add", "MH-100001", "--nino", NINO_SPACED, "--atw-ref", "ATW1").code == 0
    shown = env.run("case", "show", "MH-100001", "--json")
    assert shown.code == 0
    view = json.loads(shown.out)
    assert view["case_ref"] == "MH-100001"
    assert view["has_nino"] is True
    assert view["submissions"] == [] and view["clocks"] == [] and view["escalations"] == []
    assert NINO_COMPACT not in shown.out and "123456" not in shown.out
    raw = env.db_path.read_bytes() + b"".join(p.read_bytes() for p in env.root.glob("mailroom.db-*"))
    assert NINO_COMPACT.encode() not in raw
    assert NINO_SPACED.encode() not in raw


def test_submit_stores_privately_and_queues(env: Env) -> None:
    env.run("case", "add", "MH-100001")
    result = env.run("submit", str(_pdf(env)), "--case", "MH-100001", "--type", "support-plan", "--json")
    assert result.code == 0, result.err
    body = json.loads(result.out)
    assert body["state"] == "queued"
    assert body["message_id"].startswith("<") and "S-000001" in body["message_id"]
    stored = [p for p in (env.root / "documents").rglob("*") if p.is_file()]
    assert len(stored) == 1
    assert stat.S_IMODE(stored[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(stored[0].parent.stat().st_mode) == 0o700
    assert stored[0].read_bytes() == PDF  # encrypt_at_rest is off in this config
    queue = json.loads(env.run("queue", "--json").out)
    assert [(q["id"], q["case_ref"], q["state"]) for q in queue] == [(1, "MH-100001", "queued")]
    assert json.loads(env.run("queue", "--state", "sent", "--json").out) == []
    timeline = json.loads(env.run("case", "show", "MH-100001", "--json").out)["submissions"][0]["timeline"]
    assert [e["action"] for e in timeline] == ["stored", "preflight-passed", "queued"]


def test_db_upgrade_is_idempotent(env: Env) -> None:
    result = env.run("db", "upgrade", "--json")
    assert result.code == 0
    assert json.loads(result.out)["changed"] is False


def test_restricted_case_is_held_and_hides_details(env: Env) -> None:
    env.run("case", "add", "MH-100009", "--restricted", "--atw-ref", "ATW-SECRET")
    report = pdfs.report_pdf(pdfs.ReportSpec(case_ref="MH-100009", report_type="exit-report"))
    path = _pdf(env, "exit.pdf", report)
    result = env.run("submit", str(path), "--case", "MH-100009", "--type", "exit-report", "--json")
    assert json.loads(result.out)["state"] == "held"
    shown = env.run("case", "show", "MH-100009", "--json").out
    assert "ATW-SECRET" not in shown
    assert json.loads(shown)["restricted"] is True


def test_reimport_is_all_or_nothing_with_the_line_number(env: Env) -> None:
    good = env.root / "good.csv"
    good.write_text("case_ref,atw_ref,nino\nMH-200001,A1,AB123456A\nMH-200002,A2,\n")
    assert env.run("case", "import", str(good)).code == 0
    assert json.loads(env.run("case", "show", "MH-200002", "--json").out)["atw_ref"] == "A2"
    bad = env.root / "bad.csv"
    bad.write_text("case_ref,atw_ref,nino\nMH-300001,B1,\nMH-300002,B2,AB12345\n")
    before = env.snapshot()
    result = env.run("case", "import", str(bad))
    assert result.code == 1
    assert f"{bad}:3:" in result.err
    assert "AB12345" not in result.err
    assert env.snapshot() == before


BadCase = Callable[[Env], tuple[list[str], str, int]]


def _missing_file(env: Env) -> tuple[list[str], str, int]:
    return (
        ["submit", str(env.root / "nope.pdf"), "--case", "MH-100001", "--type", "support-plan"],
        "file not found",
        1,
    )


def _not_a_pdf(env: Env) -> tuple[list[str], str, int]:
    path = _pdf(env, "notes.pdf", b"<html>not a pdf</html>")
    return ["submit", str(path), "--case", "MH-100001", "--type", "support-plan"], "not a PDF", 1


def _unknown_case(env: Env) -> tuple[list[str], str, int]:
    return ["submit", str(_pdf(env)), "--case", "MH-999999", "--type", "support-plan"], "no case MH-999999", 1


def _unknown_type(env: Env) -> tuple[list[str], str, int]:
    return (
        ["submit", str(_pdf(env)), "--case", "MH-100001", "--type", "final-report"],
        "unknown report type",
        1,
    )


def _duplicate_case(env: Env) -> tuple[list[str], str, int]:
    return ["case", "add", "MH-100001"], "exists already", 1


def _invalid_nino(env: Env) -> tuple[list[str], str, int]:
    return ["case", "add", "MH-100002", "--nino", "QQ123456C"], "not a valid National Insurance number", 1


def _rereferral(env: Env) -> tuple[list[str], str, int]:
    return ["case", "add", "MH-100002", "--nino", NINO_COMPACT], "re-referral", 1


def _bad_case_ref(env: Env) -> tuple[list[str], str, int]:
    return ["case", "add", "Jane Smith"], "case_ref_pattern", 1


def _unknown_supersedes(env: Env) -> tuple[list[str], str, int]:
    args = ["submit", str(_pdf(env)), "--case", "MH-100001", "--type", "support-plan", "--supersedes", "42"]
    return args, "no submission 42", 1


def _unknown_queue_state(env: Env) -> tuple[list[str], str, int]:
    return ["queue", "--state", "lost"], "unknown state", 1


def _usage(env: Env) -> tuple[list[str], str, int]:
    return ["submit", str(_pdf(env))], "Missing option", 2


@pytest.mark.parametrize(
    "bad",
    [
        _missing_file,
        _not_a_pdf,
        _unknown_case,
        _unknown_type,
        _duplicate_case,
        _invalid_nino,
        _rereferral,
        _bad_case_ref,
        _unknown_supersedes,
        _unknown_queue_state,
        _usage,
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(env: Env, bad: BadCase) -> None:
    env.run("case", "add", "MH-100001", "--nino", NINO_SPACED)
    args, message, code = bad(env)
    before = env.snapshot()
    result = env.run(*args)
    assert result.code == code
    assert message in result.err
    assert "Traceback" not in result.err
    if code == 1:
        assert len(result.err.strip().splitlines()) == 1
        assert NINO_COMPACT not in result.err and "QQ123456C" not in result.err
    assert env.snapshot() == before


def test_rereferral_is_allowed_with_force(env: Env) -> None:
    env.run("case", "add", "MH-100001", "--nino", NINO_SPACED)
    assert env.run("case", "add", "MH-100002", "--nino", NINO_COMPACT, "--force").code == 0


def test_unreadable_config_exits_78_naming_the_file(make_env: Callable[..., Env]) -> None:
    env = make_env()
    env.config.write_text("[smtp]\nport = 'twenty-five'\n" + env.config.read_text())
    result = env.run("queue")
    assert result.code == 78
    assert str(env.config) in result.err and "[smtp] port" in result.err
    env.config.unlink()
    result = env.run("queue")
    assert result.code == 78 and "file not found" in result.err


def test_commands_refuse_an_unmigrated_database(make_env: Callable[..., Env]) -> None:
    env = make_env()
    result = env.run("queue")
    assert result.code == 1
    assert "mailroom db upgrade" in result.err


def test_missing_hmac_key_is_a_config_error(make_env: Callable[..., Env]) -> None:
    env = make_env(matching={"nino_hmac_key_file": "/nonexistent/key"})
    env.run("db", "upgrade")
    result = env.run("case", "add", "MH-100001", "--nino", NINO_SPACED)
    assert result.code == 78
    assert "[matching] nino_hmac_key_file" in result.err


def test_queue_hold_release_cancel(env: Env) -> None:
    env.run("case", "add", "MH-100001")
    env.run("submit", str(_pdf(env)), "--case", "MH-100001", "--type", "support-plan")
    held = env.run("queue", "hold", "1", "--json")
    assert held.code == 0 and json.loads(held.out)["state"] == "held"
    message_id = json.loads(env.run("queue", "--json").out)[0]["message_id"]
    assert json.loads(env.run("queue", "release", "1", "--json").out)["state"] == "queued"
    assert json.loads(env.run("queue", "--json").out)[0]["message_id"] == message_id  # kept for retries
    assert json.loads(env.run("queue", "cancel", "1", "--json").out)["state"] == "cancelled"
    before = env.snapshot()
    result = env.run("queue", "release", "1")
    assert result.code == 1 and "is cancelled" in result.err
    assert env.run("queue", "retry", "7").code == 1
    assert env.snapshot() == before
    actions = [
        e["action"]
        for e in json.loads(env.run("case", "show", "MH-100001", "--json").out)["submissions"][0]["timeline"]
    ]
    assert actions == ["stored", "preflight-passed", "queued", "held", "released", "cancelled"]


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("preflight", {"employment_patterns": ["in (employment"]}, "[preflight]"),
        ("clocks", {"correction_days": 1, "correction_reminders": [2]}, "[clocks]"),
    ],
)
def test_config_the_core_refuses_is_a_config_error_not_a_traceback(
    make_env: Callable[..., Env], section: str, values: dict[str, object], key: str
) -> None:
    env = make_env(**{section: values})
    env.run("db", "upgrade")
    env.run("case", "add", "MH-100001")
    pdf = _pdf(env)
    first = env.run("submit", str(pdf), "--case", "MH-100001", "--type", "support-plan")
    result = first if section == "preflight" else env.run("clocks")
    assert result.code == 78, result.err
    assert key in result.err and "Traceback" not in result.err
