"""`mailroom doctor` without the network: config, files, secrets, database, allow-list, safety switches.

The TLS logins and the gpg round trip need real servers and gpg: tests/integration/test_doctor.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mailroom.cli.doctor import Check, Diagnosis, Status, diagnose
from mailroom.core.errors import ConfigError
from mailroom.edges.configfile import load_settings
from tests.conftest import Env
from tests.support import pdfs

OFFLINE = ("smtp", "imap")
SECRET = "correct-horse-battery-staple"


def by_name(diagnosis: Diagnosis, name: str) -> Check:
    return next(c for c in diagnosis.checks if c.name == name)


def statuses(diagnosis: Diagnosis) -> dict[str, Status]:
    return {c.name: c.status for c in diagnosis.checks if c.status is not Status.SKIP}


def private_database(env: Env) -> None:
    for path in env.root.glob("mailroom.db*"):
        path.chmod(0o600)


@pytest.fixture
def healthy(env: Env) -> Env:
    private_database(env)
    return env


def test_a_healthy_offline_install_passes(healthy: Env) -> None:
    diagnosis = diagnose(healthy.config, skip=OFFLINE)
    assert diagnosis.ok and diagnosis.exit_code == 0
    assert statuses(diagnosis) == {
        "config": Status.PASS,
        "config file": Status.PASS,
        "documents": Status.PASS,
        "secret [matching] nino_hmac_key_file": Status.PASS,
        "database": Status.PASS,
        "database file": Status.PASS,
        "stored files": Status.PASS,
        "gpg keys": Status.WARN,  # encrypt_at_rest = false in the test config
        "templates": Status.PASS,
        "allow-list": Status.PASS,
    }
    assert [c.name for c in diagnosis.checks if c.status is Status.SKIP] == ["smtp", "imap"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[provider\nname = 1\n", "not valid TOML"),
        ('[smtp]\nsecurity = "ssl"\n', "[smtp] security: must be one of"),
        ('[bogus]\nkey = "x"\n', "[bogus]: unknown section"),
    ],
)
def test_a_broken_config_fails_clearly_and_stops_there(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text(text)
    diagnosis = diagnose(config)
    [check] = diagnosis.checks
    assert check.name == "config" and check.status is Status.FAIL
    assert problem in check.detail and str(config) in check.detail
    assert diagnosis.exit_code == 78


def test_the_cli_reports_a_broken_config_with_exit_78(make_env: Callable[..., Env], tmp_path: Path) -> None:
    env = make_env(smtp={"port": "587"})
    result = env.run("doctor", "--json")
    assert result.code == 78
    body = json.loads(result.out)
    assert body["ok"] is False
    assert body["checks"][0]["name"] == "config" and "[smtp] port" in body["checks"][0]["detail"]
    assert body["checks"][0]["fix"]


def test_a_missing_config_file_fails(tmp_path: Path) -> None:
    diagnosis = diagnose(tmp_path / "nowhere.toml")
    assert diagnosis.checks[0].status is Status.FAIL and "file not found" in diagnosis.checks[0].detail


def test_a_readable_password_file_fails_with_chmod_and_never_shows_the_password(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    password = tmp_path / "smtp.pw"
    password.write_text(SECRET)
    password.chmod(0o644)
    env = make_env(smtp={"username": "reports@provider.example", "password_file": str(password)})
    assert env.run("db", "upgrade").code == 0
    result = env.run("doctor", "--skip", "smtp", "--skip", "imap", "--json")
    assert result.code == 1
    check = next(c for c in json.loads(result.out)["checks"] if c["name"] == "secret [smtp] password_file")
    assert check["status"] == "fail" and "readable by group or others" in check["detail"]
    assert check["fix"] == f"chmod 600 {password}"
    assert SECRET not in result.out + result.err


def test_a_missing_secret_file_fails_naming_the_key(make_env: Callable[..., Env], tmp_path: Path) -> None:
    env = make_env(imap={"username": "reports@provider.example", "password_file": str(tmp_path / "gone")})
    check = by_name(diagnose(env.config, skip=OFFLINE), "secret [imap] password_file")
    assert check.status is Status.FAIL and "file not found" in check.detail


def test_a_short_hmac_key_warns(make_env: Callable[..., Env], tmp_path: Path) -> None:
    key = tmp_path / "short.key"
    key.write_text("k" * 10)
    key.chmod(0o600)
    env = make_env(matching={"nino_hmac_key_file": str(key)})
    assert (
        by_name(diagnose(env.config, skip=OFFLINE), "secret [matching] nino_hmac_key_file").status
        is Status.WARN
    )


def test_documents_folder_missing_or_open_fails(make_env: Callable[..., Env], tmp_path: Path) -> None:
    env = make_env()
    missing = by_name(diagnose(env.config, skip=OFFLINE), "documents")
    assert missing.status is Status.FAIL and "db upgrade" in missing.fix
    (tmp_path / "documents").mkdir(mode=0o755)
    (tmp_path / "documents").chmod(0o755)
    open_folder = by_name(diagnose(env.config, skip=OFFLINE), "documents")
    assert open_folder.status is Status.FAIL and open_folder.fix == f"chmod 700 {tmp_path / 'documents'}"


def test_a_database_not_upgraded_fails_with_the_fix(make_env: Callable[..., Env]) -> None:
    env = make_env()
    check = by_name(diagnose(env.config, skip=OFFLINE), "database")
    assert check.status is Status.FAIL and check.fix == "run `mailroom db upgrade`"


def test_an_unreachable_database_fails(make_env: Callable[..., Env], tmp_path: Path) -> None:
    env = make_env(store={"url": f"sqlite:///{tmp_path}/missing/folder/mailroom.db"})
    check = by_name(diagnose(env.config, skip=OFFLINE), "database")
    assert check.status is Status.FAIL and "does not exist" in check.detail


def test_a_database_file_others_can_read_fails(env: Env) -> None:
    env.db_path.chmod(0o644)
    check = by_name(diagnose(env.config, skip=OFFLINE), "database file")
    assert (
        check.status is Status.FAIL and check.fix.startswith("chmod 600 ") and str(env.db_path) in check.fix
    )


def test_a_stored_document_missing_from_disk_fails_and_a_stray_file_warns(healthy: Env) -> None:
    report = healthy.root / "report.pdf"
    report.write_bytes(pdfs.arial_12_report())
    assert healthy.run("case", "add", "MH-100001").code == 0
    assert healthy.run("submit", str(report), "--case", "MH-100001", "--type", "support-plan").code == 0
    private_database(healthy)
    [stored] = [p for p in (healthy.root / "documents").rglob("*") if p.is_file()]
    assert by_name(diagnose(healthy.config, skip=OFFLINE), "stored files").status is Status.PASS
    (stored.parent / "0123abcd.bin").write_bytes(b"left by a crash")
    stray = by_name(diagnose(healthy.config, skip=OFFLINE), "stored files")
    assert stray.status is Status.WARN and "1 file(s)" in stray.detail
    stored.unlink()
    missing = by_name(diagnose(healthy.config, skip=OFFLINE), "stored files")
    assert missing.status is Status.FAIL and "1 document(s)" in missing.detail and "backup" in missing.fix


def test_a_case_manager_dropped_from_the_allow_list_fails(make_env: Callable[..., Env]) -> None:
    env = make_env(outbox={"extra_allowed_recipients": ["other.pm@dwp.gov.uk"]})
    assert env.run("db", "upgrade").code == 0
    assert env.run("case", "add", "MH-100001", "--performance-manager", "other.pm@dwp.gov.uk").code == 0
    private_database(env)
    assert by_name(diagnose(env.config, skip=OFFLINE), "allow-list").status is Status.PASS
    env.config.write_text(env.config.read_text().replace('"other.pm@dwp.gov.uk"', ""))
    check = by_name(diagnose(env.config, skip=OFFLINE), "allow-list")
    assert check.status is Status.FAIL and "other.pm@dwp.gov.uk" in check.detail
    assert "extra_allowed_recipients" in check.fix


def test_test_only_switches_warn_but_do_not_fail(make_env: Callable[..., Env]) -> None:
    env = make_env(daemon={"test_mode": True}, outbox={"redirect_all_to": "qa@provider.example"})
    assert env.run("db", "upgrade").code == 0
    private_database(env)
    diagnosis = diagnose(env.config, skip=OFFLINE)
    safety = [c for c in diagnosis.checks if c.name == "safety"]
    assert [c.status for c in safety] == [Status.WARN, Status.WARN]
    assert "test_mode" in safety[0].detail and "qa@provider.example" in safety[1].detail
    assert diagnosis.exit_code == 0


def test_the_table_names_every_check_and_the_verdict(healthy: Env) -> None:
    result = healthy.run("doctor", "--skip", "smtp", "--skip", "imap")
    assert result.code == 0
    for name in ("config file", "secret [matching] nino_hmac_key_file", "database", "allow-list"):
        assert name in result.out
    assert "all checks passed" in result.out


GREENMAIL = Path(__file__).parents[3] / "config" / "greenmail.example.toml"


def test_the_greenmail_profile_loads_and_is_plain_text_on_loopback_only(tmp_path: Path) -> None:
    settings = load_settings(GREENMAIL)
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.security) == ("127.0.0.1", 3025, "none")
    assert (settings.imap.host, settings.imap.port, settings.imap.security) == ("127.0.0.1", 3143, "none")
    assert settings.smtp.allow_insecure_loopback and settings.imap.allow_insecure_loopback
    assert settings.smtp.password_file == GREENMAIL.parent / "greenmail-smtp-password"
    elsewhere = tmp_path / "greenmail.toml"
    elsewhere.write_text(GREENMAIL.read_text().replace('host = "127.0.0.1"', 'host = "mail.example.org"', 1))
    with pytest.raises(ConfigError, match=r"\[smtp\] security"):
        load_settings(elsewhere)


def test_a_broken_site_template_fails_and_a_good_one_passes(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "reminder.txt").write_text("Subject: $case_ref\n\nHello $customer_name\n")
    env = make_env(provider={"templates_dir": str(folder)})
    check = by_name(diagnose(env.config, skip=OFFLINE), "templates")
    assert check.status is Status.FAIL and "customer_name" in check.detail and "docs/sending.md" in check.fix

    (folder / "reminder.txt").write_text("Subject: Reminder $case_ref [$submission_token]\n\n$evidence\n")
    check = by_name(diagnose(env.config, skip=OFFLINE), "templates")
    assert check.status is Status.PASS and "reminder" in check.detail


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        # A port that contains 535 is a connection failure, not a refused login (CI caught this once).
        (
            "SMTP relay 127.0.0.1:51535: connection failed at connect ([Errno 111] Connect call failed)",
            "check [smtp] host, port",
        ),
        ("SMTP relay relay.example:587 timed out at ehlo", "check [smtp] host, port"),
        ("SMTP relay relay.example:587 refused auth: 535 5.7.8 bad credentials", "check [smtp] username"),
        ("SMTP relay relay.example:5350 refused mail from: 535 5.7.8 no", "check [smtp] username"),
        ("TLS certificate of SMTP relay x:465 not trusted: self-signed", "set [smtp] ca_file"),
    ],
)
def test_the_login_fix_follows_what_failed_not_digits_in_the_address(error: str, fix: str) -> None:
    from mailroom.cli.doctor import _login_fix

    assert _login_fix("smtp", error, "password").startswith(fix)
