from __future__ import annotations

import tomllib
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from mailroom.core.config import Settings
from mailroom.core.config_parse import settings_from_mapping
from mailroom.core.errors import ConfigError
from mailroom.edges.configfile import load_settings, read_secret

EXAMPLE = Path(__file__).parents[3] / "config" / "mailroom.example.toml"


def test_example_config_loads_and_lists_every_key() -> None:
    settings = load_settings(EXAMPLE)
    data = tomllib.loads(EXAMPLE.read_text())
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if not is_dataclass(value):
            continue
        listed = set(data.get(f.name, {}))
        # Optional secrets and paths are shown commented out: they have no usable default.
        commented = {
            line.split("=")[0].strip("# ").strip()
            for line in EXAMPLE.read_text().splitlines()
            if line.startswith("# ") and "=" in line
        }
        missing = {sf.name for sf in fields(value)} - listed - commented
        assert not missing, f"[{f.name}] keys missing from the example: {missing}"


def test_example_config_defaults_match_the_code() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.dwp.inbox == "accesstowork.mhss@dwp.gov.uk"
    assert settings.clocks.correction_days == 5
    assert settings.calendar.day_end.hour == 17
    assert [t.code for t in settings.report_types][:3] == ["support-plan", "six-month-report", "exit-report"]


def _minimal(**extra: dict[str, object]) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = {
        "provider": {"from_address": "a@provider.example", "team_address": "t@provider.example"},
        "escalation": {"performance_manager": "pm@dwp.gov.uk"},
        "gpg": {"recipients": ["ABCD"]},
    }
    for section, values in extra.items():
        data.setdefault(section, {}).update(values)
    return data


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ({"smtp": {"port": "abc"}}, "[smtp] port", "whole number"),
        ({"smtp": {"security": "ssl"}}, "[smtp] security", "must be one of"),
        ({"smtp": {"security": "none", "host": "relay.example"}}, "[smtp] security", "plain text"),
        ({"smtp": {"prot": 25}}, "[smtp] prot", "unknown key"),
        ({"smpt": {"port": 25}}, "[smpt]", "unknown section"),
        ({"provider": {"team_address": "not an address"}}, "[provider] team_address", "not an e-mail"),
        ({"calendar": {"day_end": "25:00"}}, "[calendar] day_end", "time like"),
        ({"calendar": {"timezone": "Mars/Olympus"}}, "[calendar] timezone", "unknown time zone"),
        ({"matching": {"case_ref_pattern": "MH-("}}, "[matching] case_ref_pattern", "regular expression"),
        ({"imap": {"idle_renew_minutes": 29}}, "[imap] idle_renew_minutes", "between 1 and 9"),
        ({"imap": {"auth": "xoauth2"}}, "[imap] token_command", "required"),
        ({"gpg": {"recipients": []}}, "[gpg] recipients", "at least one key"),
        ({"preflight": {"blocking": ["fonts", "colour"]}}, "[preflight] blocking", "colour"),
        ({"escalation": {"performance_manager": ""}}, "[escalation] performance_manager", "required"),
        ({"classify": {"rejection_phrases": ["sent back ("]}}, "[classify] rejection_phrases", "regular"),
        ({"classify": {"reason_phrases": {"format": ["("]}}}, "[classify] reason_phrases.format", "regular"),
        ({"classify": {"reason_phrases": {"colour": ["x"]}}}, "[classify] reason_phrases", "colour"),
        ({"classify": {"reason_phrases": ["x"]}}, "[classify] reason_phrases", "must be a table"),
    ],
)
def test_bad_config_names_file_key_and_problem(
    extra: dict[str, dict[str, object]], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(_minimal(**extra), source="/etc/x.toml", base_dir=Path("/etc"))
    message = str(caught.value)
    assert message.startswith(f"/etc/x.toml: {key}: ")
    assert problem in message
    assert caught.value.exit_code == 78


def test_loopback_plain_text_is_allowed_only_when_asked() -> None:
    settings = settings_from_mapping(
        _minimal(smtp={"security": "none", "host": "127.0.0.1", "allow_insecure_loopback": True}),
        source="x",
        base_dir=Path("/"),
    )
    assert settings.smtp.security == "none"


def test_relative_paths_are_relative_to_the_config_file() -> None:
    settings = settings_from_mapping(
        _minimal(matching={"nino_hmac_key_file": "keys/nino"}), source="x", base_dir=Path("/etc/mailroom")
    )
    assert settings.matching.nino_hmac_key_file == Path("/etc/mailroom/keys/nino")


def test_credentials_directory_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/mailroom.service")
    settings = settings_from_mapping(
        _minimal(smtp={"password_file": "$CREDENTIALS_DIRECTORY/smtp-password"}),
        source="x",
        base_dir=Path("/"),
    )
    assert settings.smtp.password_file == Path("/run/credentials/mailroom.service/smtp-password")


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_secret_errors_never_show_the_secret(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2-very-secret")
    secret.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        read_secret(secret, source="x", key="[smtp] password_file")
    assert "chmod 600" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    secret.chmod(0o600)
    assert read_secret(secret, source="x", key="[smtp] password_file") == "hunter2-very-secret"


def test_settings_are_immutable() -> None:
    settings = settings_from_mapping(_minimal(), source="x", base_dir=Path("/"))
    with pytest.raises(AttributeError):
        settings.smtp.port = 25  # type: ignore[misc]


def test_the_configured_arial_family_is_the_preflights() -> None:
    # The core keeps its own copy so that it need not import the parsers; the two must not drift.
    from mailroom.core.config import ARIAL_FAMILY, Settings
    from parsers.fonts import ARIAL_NAMES

    assert ARIAL_FAMILY == ARIAL_NAMES
    assert Settings().preflight.allowed_fonts == ARIAL_NAMES
