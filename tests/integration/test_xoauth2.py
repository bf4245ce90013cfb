"""Microsoft 365 style login: `auth = "xoauth2"` with a `token_command`, through the daemon's own config path.

SMTP: the SASL XOAUTH2 exchange against aiosmtpd with a token-checking authenticator. IMAP: Dovecot with a
static passdb, where a user's password doubles as the bearer token (`auth_mechanisms = ... xoauth2`): Dovecot
checks an XOAUTH2 token against the passdb like a password, so no OAuth2 server is needed.

The token command is a small script that prints a token and its lifetime, and counts its runs in a file.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mailroom.daemon.app import imap_mailbox, smtp_transport
from mailroom.edges.configfile import load_settings
from mailroom.edges.imap import MailboxAuthError
from mailroom.harness import dwp
from mailroom.harness.dovecot import ALICE, Dovecot, ServerUnavailable
from outbox.errors import SendError
from tests.conftest import Env, base_sections, write_config
from tests.integration.conftest import unavailable
from tests.support import pdfs
from tests.support.smtpd import AuthAttempt, SmtpServer

pytestmark = pytest.mark.integration

USER = "reports@provider.example"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.mailroom-test-token"
SCRIPT = """\
import pathlib, sys
with open(sys.argv[1], "a") as runs:
    runs.write("run\\n")
print(sys.argv[2])
print(3600)
"""


class TokenScript:
    def __init__(self, root: Path, token: str = TOKEN) -> None:
        self.path = root / "token.py"
        self.path.write_text(SCRIPT)
        self.runs_file = root / "token-runs"
        self.token = token

    @property
    def command(self) -> list[str]:
        return [sys.executable, str(self.path), str(self.runs_file), self.token]

    @property
    def runs(self) -> int:
        return len(self.runs_file.read_text().splitlines()) if self.runs_file.exists() else 0


@pytest.fixture
def oauth_relay() -> Iterator[SmtpServer]:
    with SmtpServer(username=USER, xoauth2_tokens={USER: TOKEN}) as server:
        yield server


@pytest.fixture(scope="module")
def oauth_mailbox() -> Iterator[Dovecot]:
    try:
        server = Dovecot({ALICE: TOKEN}, auth_mechanisms=("plain", "login", "xoauth2", "oauthbearer"))
    except ServerUnavailable as error:
        unavailable(error)
    with server:
        yield server


@pytest.fixture
def make_oauth_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], oauth_relay: SmtpServer
) -> Callable[..., Env]:
    def factory(
        *, token: str = TOKEN, mailbox: Dovecot | None = None, command: list[str] | None = None
    ) -> Env:
        script = TokenScript(tmp_path, token)
        token_command = command or script.command
        sections = base_sections(tmp_path)
        sections["smtp"] = {
            "host": oauth_relay.host,
            "port": oauth_relay.port,
            "security": "starttls",
            "username": USER,
            "auth": "xoauth2",
            "token_command": token_command,
            "ca_file": str(oauth_relay.ca_pem),
            "timeout_seconds": 5.0,
        }
        sections["daemon"] = {"test_mode": True, "log_level": "DEBUG"}
        sections["trust"] = {"authserv_ids": ["mx.provider.example"]}
        if mailbox is not None:
            sections["imap"] = {
                "host": mailbox.host,
                "port": mailbox.imaps_port,
                "security": "tls",
                "username": ALICE,
                "auth": "xoauth2",
                "token_command": token_command,
                "ca_file": str(mailbox.ca_file),
                "timeout_seconds": 10.0,
            }
        env = Env(tmp_path, write_config(tmp_path / "mailroom.toml", sections), capsys)
        assert env.run("db", "upgrade").code == 0
        assert env.run("case", "add", "MH-100001").code == 0
        return env

    return factory


def submit(env: Env) -> None:
    pdf = env.root / "report.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    assert env.run("submit", str(pdf), "--case", "MH-100001", "--type", "support-plan").code == 0


def submission(env: Env) -> dict[str, Any]:
    return dict(json.loads(env.run("case", "show", "MH-100001", "--json").out)["submissions"][0])


def test_reports_go_out_over_xoauth2_and_the_token_is_never_printed(
    make_oauth_env: Callable[..., Env], oauth_relay: SmtpServer
) -> None:
    env = make_oauth_env()
    submit(env)
    result = env.run("run", "--once")
    assert result.code == 0, result.err
    assert submission(env)["state"] == "sent"
    assert oauth_relay.auth_attempts == [AuthAttempt("XOAUTH2", USER, True)]
    [message] = oauth_relay.messages
    assert message.auth_user == USER and message.tls
    assert TOKEN not in result.out + result.err  # the daemon logged at DEBUG


def test_the_token_is_fetched_once_and_reused_until_it_expires(
    make_oauth_env: Callable[..., Env], oauth_relay: SmtpServer, tmp_path: Path
) -> None:
    env = make_oauth_env()
    transport = smtp_transport(load_settings(env.config))

    async def two_logins() -> None:
        await transport.verify()
        await transport.verify()

    asyncio.run(two_logins())
    assert TokenScript(tmp_path).runs == 1
    assert [a.success for a in oauth_relay.auth_attempts] == [True, True]


def test_a_rejected_token_sends_nothing_and_doctor_says_what_to_check(
    make_oauth_env: Callable[..., Env], oauth_relay: SmtpServer
) -> None:
    env = make_oauth_env(token="expired-or-revoked-token")
    submit(env)
    result = env.run("run", "--once")
    assert oauth_relay.messages == [] and submission(env)["state"] != "sent"
    attempts = oauth_relay.auth_attempts
    assert attempts and all(a == AuthAttempt("XOAUTH2", USER, False) for a in attempts)
    doctor = env.run("doctor", "--skip", "imap", "--json")
    smtp = next(c for c in json.loads(doctor.out)["checks"] if c["name"] == "smtp login")
    assert smtp["status"] == "fail" and "535" in smtp["detail"]
    assert "token_command" in smtp["fix"]
    everything = result.out + result.err + doctor.out + doctor.err
    assert "expired-or-revoked-token" not in everything and TOKEN not in everything


ROTATING_SCRIPT = """\
import pathlib, sys
with open(sys.argv[1], "a") as runs:
    runs.write("run\\n")
print(pathlib.Path(sys.argv[2]).read_text().strip())
print(3600)
"""


def rotating_token(tmp_path: Path, first: str) -> tuple[list[str], Path]:
    """A token command that serves whatever token a file holds (counting its runs like TokenScript)."""
    script, served = tmp_path / "rotating.py", tmp_path / "served-token"
    script.write_text(ROTATING_SCRIPT)
    served.write_text(first)
    return [sys.executable, str(script), str(TokenScript(tmp_path).runs_file), str(served)], served


def test_a_refused_token_is_not_reused_before_it_expires(
    make_oauth_env: Callable[..., Env], oauth_relay: SmtpServer, tmp_path: Path
) -> None:
    command, served = rotating_token(tmp_path, "revoked-token")
    env = make_oauth_env(command=command)
    transport = smtp_transport(load_settings(env.config))

    async def refused_then_renewed() -> None:
        with pytest.raises(SendError):
            await transport.verify()
        served.write_text(TOKEN)  # the identity provider has issued a new token
        await transport.verify()

    asyncio.run(refused_then_renewed())
    assert [a.success for a in oauth_relay.auth_attempts] == [False, True]
    assert TokenScript(tmp_path).runs == 2


def test_imap_fetches_a_new_token_after_a_refused_one(
    make_oauth_env: Callable[..., Env], oauth_mailbox: Dovecot, tmp_path: Path
) -> None:
    command, served = rotating_token(tmp_path, "revoked-token")
    env = make_oauth_env(mailbox=oauth_mailbox, command=command)
    mailbox = imap_mailbox(load_settings(env.config))
    assert mailbox is not None
    with pytest.raises(MailboxAuthError):
        mailbox.connect()
    served.write_text(TOKEN)
    with mailbox:
        assert mailbox.connected
    assert TokenScript(tmp_path).runs == 2


def test_a_failing_token_command_defers_the_report(
    make_oauth_env: Callable[..., Env], tmp_path: Path
) -> None:
    env = make_oauth_env()
    broken = tmp_path / "broken.py"
    broken.write_text(f"print({TOKEN!r}, end='')\nraise SystemExit(3)\n")
    env.config.write_text(env.config.read_text().replace(str(tmp_path / "token.py"), str(broken)))
    submit(env)
    result = env.run("run", "--once")
    assert submission(env)["state"] == "deferred"
    with pytest.raises(SendError, match=r"OAuth2 token .* not obtained"):
        asyncio.run(smtp_transport(load_settings(env.config)).verify())
    assert TOKEN not in result.out + result.err


def test_imap_logs_in_to_dovecot_with_xoauth2(
    make_oauth_env: Callable[..., Env], oauth_mailbox: Dovecot, tmp_path: Path
) -> None:
    env = make_oauth_env(mailbox=oauth_mailbox)
    mailbox = imap_mailbox(load_settings(env.config))
    assert mailbox is not None
    with mailbox:
        assert mailbox.connected and "IDLE" in mailbox.capabilities
    assert f"user=<{ALICE}>, method=XOAUTH2" in oauth_mailbox.log_file.read_text()


def test_imap_refuses_a_wrong_token_without_showing_it(
    make_oauth_env: Callable[..., Env], oauth_mailbox: Dovecot
) -> None:
    env = make_oauth_env(token="wrong-token", mailbox=oauth_mailbox)
    mailbox = imap_mailbox(load_settings(env.config))
    assert mailbox is not None
    with pytest.raises(MailboxAuthError) as refused:
        mailbox.connect()
    assert "wrong-token" not in str(refused.value) and ALICE in str(refused.value)


def test_a_report_is_sent_and_acknowledged_with_xoauth2_on_both_sides(
    make_oauth_env: Callable[..., Env], oauth_relay: SmtpServer, oauth_mailbox: Dovecot
) -> None:
    env = make_oauth_env(mailbox=oauth_mailbox)
    submit(env)
    assert env.run("run", "--once").code == 0
    [sent] = oauth_relay.messages
    ack = dwp.acknowledgement(
        sent.message(), now=datetime.now().astimezone(), authserv_id="mx.provider.example"
    )
    oauth_mailbox.deliver_lmtp(ALICE, ack.as_bytes())
    result = env.run("run", "--once")
    assert result.code == 0, result.err
    assert submission(env)["state"] == "acknowledged"
    assert TOKEN not in result.out + result.err
