"""`mailroom doctor` against the real harness: it passes there, and fails clearly on a missing key, a wrong
password, an untrusted certificate and a server that is not there.

One harness serves the module; each test writes its own variant of the harness's config next to it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gnupg
import pytest
import trustme

from mailroom.cli.doctor import Check, Diagnosis, Status, diagnose
from mailroom.harness.dovecot import ServerUnavailable, free_ports
from mailroom.harness.gpg import GpgHome
from mailroom.harness.session import upgrade_database
from mailroom.harness.world import Harness, HarnessInfo
from tests.conftest import Env, write_config
from tests.integration.conftest import secret_file, unavailable

pytestmark = pytest.mark.integration

WRONG = "not-the-password-at-all"


@pytest.fixture(scope="module")
def harness() -> Iterator[HarnessInfo]:
    parent = Path(tempfile.mkdtemp(prefix="md", dir="/tmp"))
    parent.chmod(0o755)
    running = Harness(parent / "h", log_level="WARNING")
    try:
        info = running.start()
    except ServerUnavailable as error:
        shutil.rmtree(parent, ignore_errors=True)
        unavailable(error)
    upgrade_database(info)
    yield info
    running.stop()
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def variant(harness: HarnessInfo, tmp_path: Path) -> Any:
    """A copy of the harness config with some keys changed; returns its path."""

    def write(**changes: dict[str, Any]) -> Path:
        sections: dict[str, dict[str, Any]] = tomllib.loads(harness.config.read_text())
        for section, values in changes.items():
            sections.setdefault(section, {}).update(values)
        return write_config(tmp_path / "mailroom.toml", sections)

    return write


def check(diagnosis: Diagnosis, name: str) -> Check:
    return next(c for c in diagnosis.checks if c.name == name)


def failures(diagnosis: Diagnosis) -> list[str]:
    return [c.name for c in diagnosis.checks if c.status is Status.FAIL]


def test_the_harness_config_passes_every_check(harness: HarnessInfo, tmp_path: Path) -> None:
    diagnosis = diagnose(harness.config)
    assert failures(diagnosis) == [] and diagnosis.exit_code == 0
    passed = {c.name for c in diagnosis.checks if c.status is Status.PASS}
    assert {"gpg keys", "gpg round trip", "smtp login", "imap login", "allow-list", "database file"} <= passed
    warnings = [c.detail for c in diagnosis.checks if c.status is Status.WARN]
    assert warnings == ["[daemon] test_mode = true allows time travel"]


def test_the_cli_says_so_in_json(harness: HarnessInfo, capsys: pytest.CaptureFixture[str]) -> None:
    result = Env(harness.root, harness.config, capsys).run("doctor", "--json")
    assert result.code == 0, result.out
    body = json.loads(result.out)
    assert body["ok"] is True and {c["status"] for c in body["checks"]} == {"pass", "warn"}


def test_a_missing_public_key_fails(variant: Any) -> None:
    diagnosis = diagnose(variant(gpg={"recipients": ["0" * 40]}))
    gpg = check(diagnosis, "gpg keys")
    assert gpg.status is Status.FAIL and "no such public key" in gpg.detail and "--import" in gpg.fix
    assert "gpg round trip" not in [c.name for c in diagnosis.checks]
    assert diagnosis.exit_code == 1


def test_a_missing_secret_key_fails_the_round_trip(harness: HarnessInfo, variant: Any) -> None:
    exported = gnupg.GPG(gnupghome=str(harness.gpg_home)).export_keys(load_fingerprint(harness))
    with GpgHome() as public_only:
        public_only.import_keys(exported)
        diagnosis = diagnose(variant(gpg={"home": str(public_only.path)}))
    assert check(diagnosis, "gpg keys").status is Status.PASS  # pinned by fingerprint, so usable
    round_trip = check(diagnosis, "gpg round trip")
    assert round_trip.status is Status.FAIL and "decrypt" in round_trip.detail
    assert "secret part" in round_trip.fix


def load_fingerprint(harness: HarnessInfo) -> str:
    return str(tomllib.loads(harness.config.read_text())["gpg"]["recipients"][0])


def test_a_wrong_smtp_password_fails_without_showing_it(
    harness: HarnessInfo, variant: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = variant(smtp={"password_file": secret_file(tmp_path, "smtp.pw", WRONG)})
    result = Env(tmp_path, config, capsys).run("doctor", "--skip", "imap", "--json")
    assert result.code == 1
    smtp = next(c for c in json.loads(result.out)["checks"] if c["name"] == "smtp login")
    assert smtp["status"] == "fail" and "535" in smtp["detail"]
    assert smtp["fix"] == "check [smtp] username and the password in [smtp] password_file"
    real = (harness.root / "secrets" / "smtp-password").read_text()
    assert WRONG not in result.out + result.err and real not in result.out + result.err


def test_a_wrong_imap_password_fails_without_showing_it(variant: Any, tmp_path: Path) -> None:
    diagnosis = diagnose(
        variant(imap={"password_file": secret_file(tmp_path, "imap.pw", WRONG)}), skip=("smtp",)
    )
    imap = check(diagnosis, "imap login")
    assert imap.status is Status.FAIL and "refused" in imap.detail and WRONG not in imap.detail
    assert imap.fix == "check [imap] username and the password in [imap] password_file"
    assert failures(diagnosis) == ["imap login"]


def test_an_untrusted_certificate_fails_with_the_ca_fix(variant: Any, tmp_path: Path) -> None:
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    diagnosis = diagnose(variant(smtp={"ca_file": str(stranger)}, imap={"ca_file": str(stranger)}))
    assert failures(diagnosis) == ["smtp login", "imap login"]
    for name in ("smtp login", "imap login"):
        found = check(diagnosis, name)
        assert "not trusted" in found.detail and "ca_file" in found.fix


def test_a_server_that_is_not_there_fails_with_the_host_fix(variant: Any) -> None:
    [closed] = free_ports(1)
    diagnosis = diagnose(variant(smtp={"port": closed}), skip=("imap",))
    smtp = check(diagnosis, "smtp login")
    assert smtp.status is Status.FAIL and "connection failed" in smtp.detail
    assert smtp.fix.startswith("check [smtp] host, port and security")
