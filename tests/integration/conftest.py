"""Real local servers for integration tests: an SMTP relay (aiosmtpd), a gpg home, Dovecot, PostgreSQL.

A server that cannot run here skips its tests on a laptop, and fails them when CI=true: CI installs and
must run everything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.conftest import Env, base_sections, write_config
from tests.support.dovecot import ALICE, Dovecot, ServerUnavailable
from tests.support.gpg import GpgHome, GpgKey
from tests.support.imapfaults import MATRIX, matrix_table
from tests.support.postgres import Postgres
from tests.support.smtpd import SmtpServer


def unavailable(error: Exception) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run every integration test: {error}")
    pytest.skip(str(error))


@pytest.fixture
def relay() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def gpg_home() -> Iterator[tuple[GpgHome, GpgKey]]:
    with GpgHome() as home:
        yield home, home.generate_key("mailroom-documents@provider.example")


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    try:
        server = Dovecot()
    except ServerUnavailable as error:
        unavailable(error)
    with server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    try:
        cluster = Postgres()
    except ServerUnavailable as error:
        unavailable(error)
    with cluster:
        yield cluster


def secret_file(root: Path, name: str, value: str) -> str:
    path = root / name
    path.write_text(value)
    path.chmod(0o600)
    return str(path)


def own_folders(server: Dovecot, prefix: str) -> tuple[str, dict[str, str]]:
    """A fresh folder for one test on the shared Dovecot, and the [imap] keys that read it."""
    folder = f"{prefix}{uuid.uuid4().hex[:10]}"
    with server.session(ALICE) as client:
        client.create_folder(folder)
    keys = {
        "inbox_folder": folder,
        "processed_folder": f"{folder}/Processed",
        "quarantine_folder": f"{folder}/Quarantine",
    }
    return folder, keys


@pytest.fixture
def make_daemon_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], relay: SmtpServer, gpg_home: tuple[GpgHome, GpgKey]
) -> Callable[..., Env]:
    """A config wired to the real relay and gpg (and Dovecot when `imap=` is given), schema upgraded."""

    def factory(*, mailbox: Dovecot | None = None, **overrides: dict[str, Any]) -> Env:
        home, key = gpg_home
        sections = base_sections(tmp_path)
        sections["smtp"] = {
            "host": relay.host,
            "port": relay.port,
            "security": "starttls",
            "username": relay.username,
            "password_file": secret_file(tmp_path, "smtp.pw", relay.password),
            "ca_file": str(relay.ca_pem),
            "timeout_seconds": 5.0,
        }
        sections["gpg"] = {"home": str(home.path), "recipients": [key.fingerprint], "encrypt_at_rest": True}
        sections["daemon"] = {"test_mode": True}
        sections["trust"] = {"authserv_ids": ["mx.provider.example"]}
        if mailbox is not None:
            sections["imap"] = {
                "host": mailbox.host,
                "port": mailbox.imaps_port,
                "security": "tls",
                "username": mailbox.login_name(ALICE),
                "password_file": secret_file(tmp_path, "mailbox.pw", mailbox.password(ALICE)),
                "ca_file": str(mailbox.ca_file),
                "timeout_seconds": 10.0,
            }
        for section, values in overrides.items():
            sections.setdefault(section, {}).update(values)
        env = Env(tmp_path, write_config(tmp_path / "mailroom.toml", sections), capsys)
        assert env.run("db", "upgrade").code == 0
        return env

    return factory


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The IMAP fault matrix (test_imap_faults.py), as measured by the rows that ran."""
    if MATRIX:
        terminalreporter.section("IMAP fault matrix")
        for line in matrix_table(sorted(MATRIX, key=lambda row: row.fault)):
            terminalreporter.write_line(line)
