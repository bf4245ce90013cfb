"""The harness: a DWP simulator behind a real relay, a real Dovecot, a gpg home and a config that works.

Each test starts its own harness (about 0.3 s) in a short folder under /tmp, because unix socket paths are
limited. The scenario tests at the top need no servers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailroom.cli.main import run
from mailroom.core.config import DEFAULT_REJECTION_REASONS, Settings
from mailroom.core.errors import ConfigError, InputError
from mailroom.edges.configfile import load_settings
from mailroom.harness.configfile import AUTHSERV_ID, MAILBOX
from mailroom.harness.dovecot import ServerUnavailable, check_installed, port_open
from mailroom.harness.samples import SAMPLES, SampleReport
from mailroom.harness.scenario import DEFAULT_SCENARIO, ReportFacts, parse_scenario
from mailroom.harness.simulator import EventKind, report_facts
from mailroom.harness.world import Harness, HarnessInfo
from outbox.compose import compose_report
from outbox.types import ReportRequest
from tests.integration.conftest import unavailable

REASONS = tuple(DEFAULT_REJECTION_REASONS)
WAIT = 10.0


# -- scenarios (pure) ------------------------------------------------------------------------------------


def scenario(text: str) -> Any:
    import tomllib

    return parse_scenario(tomllib.loads(text), source="test.toml", known_reasons=REASONS)


def facts(number: int, *not_passing: str, case_ref: str = "MH-100001") -> ReportFacts:
    return ReportFacts(number, case_ref, "support-plan", frozenset(not_passing))


def test_the_default_scenario_rejects_by_content_and_every_third() -> None:
    rules = scenario(DEFAULT_SCENARIO)
    assert rules.decide(facts(1)).reject_after is None
    missing = rules.decide(facts(1, "employment_status"))
    assert missing.reasons == ("employment-status-missing",) and missing.reject_after == 5
    assert rules.decide(facts(2, "fonts")).reasons == ("format",)
    assert rules.decide(facts(3)).reasons == ("progress-detail-missing",)
    assert rules.decide(facts(4)).acknowledge_after == 0.5


def test_the_first_matching_rule_wins_and_ignore_means_silence() -> None:
    rules = scenario(
        """
        [[rule]]
        case_ref = "MH-100009"
        action = "ignore"
        [[rule]]
        every = 1
        action = "reject"
        reasons = ["spelling-grammar", "format"]
        after_seconds = 0
        """
    )
    silent = rules.decide(facts(1, case_ref="MH-100009"))
    assert silent.acknowledge_after is None and silent.rule == 1
    rejected = rules.decide(facts(1))
    assert rejected.rule == 2 and rejected.reasons == ("spelling-grammar", "format")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[[rule]]\naction = "bounce"\n', "rule 1 action"),
        ('[[rule]]\naction = "reject"\n', "rule 1 reasons"),
        ('[[rule]]\naction = "reject"\nreasons = ["rude"]\n', "rule 1 reasons"),
        ('[[rule]]\naction = "acknowledge"\nreasons = ["format"]\n', "rule 1 reasons"),
        ('[[rule]]\naction = "ignore"\nfailing = "colour"\n', "rule 1 failing"),
        ('[[rule]]\naction = "ignore"\nevery = 0\n', "rule 1 every"),
        ('[[rule]]\naction = "ignore"\nwhen = "always"\n', "rule 1"),
        ("acknowledge_after_seconds = -1\n", "acknowledge_after_seconds"),
        ("rules = []\n", "rules"),
    ],
)
def test_a_bad_scenario_names_the_rule_and_key(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        scenario(text)
    assert caught.value.key == where


def report_email(sample: SampleReport, settings: Settings) -> EmailMessage:
    label = next(t.label for t in settings.report_types if t.code == sample.report_type)
    return compose_report(
        ReportRequest(
            from_address=MAILBOX,
            to=("accesstowork.mhss@dwp.gov.uk",),
            case_ref=sample.case_ref,
            report_type_label=label,
            submission_token="S-000001",
            message_id="<S-000001.test@provider.test>",
            date=datetime(2026, 11, 23, 10, tzinfo=UTC),
            pdf=sample.pdf(),
            pdf_filename=sample.file_name,
        )
    )


@pytest.mark.parametrize(
    ("sample", "not_passing"),
    [(SAMPLES[0], set()), (SAMPLES[1], {"fonts"}), (SAMPLES[2], {"employment_status"})],
)
def test_the_simulator_reads_the_report_as_preflight_does(
    sample: SampleReport, not_passing: set[str], tmp_path: Path
) -> None:
    settings = Settings()
    read = report_facts(report_email(sample, settings), 7, settings)
    assert (read.number, read.case_ref, read.report_type) == (7, sample.case_ref, sample.report_type)
    assert read.not_passing == not_passing
    decision = scenario(DEFAULT_SCENARIO).decide(read)
    assert (decision.reject_after is not None) == bool(not_passing)


# -- the running harness ---------------------------------------------------------------------------------


def short_folder() -> Path:
    parent = Path(tempfile.mkdtemp(prefix="mh", dir="/tmp"))
    parent.chmod(0o755)  # as root, Dovecot's vmail and dovecot users must reach the harness inside
    return parent / "h"


@pytest.fixture
def make_harness() -> Iterator[Callable[..., Harness]]:
    started: list[Harness] = []
    folders: list[Path] = []

    def factory(scenario_text: str | None = None) -> Harness:
        root = short_folder()
        folders.append(root.parent)
        scenario_file = None
        if scenario_text is not None:
            scenario_file = root.parent / "scenario.toml"
            scenario_file.write_text(scenario_text)
        harness = Harness(root, scenario=scenario_file, log_level="WARNING")
        try:
            harness.start()
        except ServerUnavailable as error:
            unavailable(error)
        started.append(harness)
        return harness

    yield factory
    for harness in started:
        harness.stop()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def cli_json(info: HarnessInfo, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    code = run(["--config", str(info.config), *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0, (args, out)
    return json.loads(out)


def submit(info: HarnessInfo, capsys: pytest.CaptureFixture[str], sample: SampleReport) -> int:
    cli_json(info, capsys, "case", "add", sample.case_ref)
    path = info.samples / sample.file_name
    body = cli_json(
        info, capsys, "submit", str(path), "--case", sample.case_ref, "--type", sample.report_type
    )
    return int(body["id"])


def state(info: HarnessInfo, capsys: pytest.CaptureFixture[str], case_ref: str) -> dict[str, Any]:
    return dict(cli_json(info, capsys, "case", "show", case_ref)["submissions"][-1])


@pytest.mark.integration
def test_the_ready_config_points_at_the_harness(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness()
    info = harness.info
    settings = load_settings(info.config)
    assert (settings.smtp.port, settings.smtp.security, settings.smtp.ca_file) == (
        info.smtp_port,
        "starttls",
        info.ca_file,
    )
    assert (settings.imap.port, settings.imap.username) == (info.imaps_port, MAILBOX)
    assert settings.trust.authserv_ids == (AUTHSERV_ID,) and settings.daemon.test_mode
    assert settings.gpg.encrypt_at_rest and settings.gpg.home == info.gpg_home
    assert HarnessInfo.read(info.root) == info
    for secret in (info.root / "secrets").iterdir():
        assert secret.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in info.samples.iterdir()) == sorted(s.file_name for s in SAMPLES)


@pytest.mark.integration
def test_a_report_is_acknowledged_within_about_a_second(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    harness = make_harness()
    info = harness.info
    assert run(["--config", str(info.config), "db", "upgrade"]) == 0
    submit(info, capsys, SAMPLES[0])
    cli_json(info, capsys, "run", "--once")
    sent = time.monotonic()
    assert harness.simulator.wait_for(EventKind.ACKNOWLEDGED, 1, WAIT)
    assert time.monotonic() - sent < 1.5
    cli_json(info, capsys, "run", "--once")
    assert state(info, capsys, "MH-100001")["state"] == "acknowledged"
    # The harness's daily digest goes to the team too when this runs after 08:30 on a working day.
    [mail] = [m for m in harness.relay.mail if not m.subject.startswith("MHSS daily digest")]
    assert mail.recipients == ("accesstowork.mhss@dwp.gov.uk",) and mail.path.read_bytes() == mail.content
    assert (info.dwp_mail / "001-report.eml").exists() and (
        info.dwp_mail / "001-acknowledgement.eml"
    ).exists()


@pytest.mark.integration
def test_the_scenario_rejects_every_second_report_with_annex_f_reasons(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    harness = make_harness(
        'acknowledge_after_seconds = 0\n[[rule]]\nevery = 2\naction = "reject"\n'
        'reasons = ["support-not-justified", "spelling-grammar"]\nafter_seconds = 0.2\n'
    )
    info = harness.info
    assert run(["--config", str(info.config), "db", "upgrade"]) == 0
    (info.samples / "MH-100004_support-plan.pdf").write_bytes(SampleReport("MH-100004").pdf())
    submit(info, capsys, SAMPLES[0])
    submit(info, capsys, SampleReport("MH-100004"))
    cli_json(info, capsys, "run", "--once")
    assert harness.simulator.wait_for(EventKind.REJECTED, 1, WAIT)
    cli_json(info, capsys, "run", "--once")
    assert state(info, capsys, "MH-100001")["state"] == "acknowledged"
    second = state(info, capsys, "MH-100004")
    assert second["state"] == "rejected"
    assert sorted(second["rejection_reasons"]) == ["spelling-grammar", "support-not-justified"]


def sent_and_ignored(make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]) -> Harness:
    """One report sent to a DWP simulator told to ignore it."""
    harness = make_harness('[[rule]]\naction = "ignore"\n')
    info = harness.info
    assert run(["--config", str(info.config), "db", "upgrade"]) == 0
    submit(info, capsys, SAMPLES[0])
    cli_json(info, capsys, "run", "--once")
    assert harness.simulator.wait_for(EventKind.IGNORED, 1, WAIT)
    return harness


@pytest.mark.integration
def test_ignore_means_no_response_at_all(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    harness = sent_and_ignored(make_harness, capsys)
    info = harness.info
    assert harness.courier.wait_idle(WAIT)
    assert not (info.dwp_mail / "001-acknowledgement.eml").exists()
    assert state(info, capsys, "MH-100001")["state"] == "sent"


@pytest.mark.integration
def test_reject_and_deliver_by_hand(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    info = sent_and_ignored(make_harness, capsys).info
    cli_json(info, capsys, "harness", "reject", "1", "--reason", "incorrect-information")
    cli_json(info, capsys, "run", "--once")
    rejected = state(info, capsys, "MH-100001")
    assert rejected["state"] == "rejected" and rejected["rejection_reasons"] == ["incorrect-information"]

    person = EmailMessage()
    person["From"] = "A Person <someone@dwp.gov.uk>"
    person["To"] = MAILBOX
    person["Subject"] = "Automatic reply: out of the office"
    person["Message-ID"] = "<ooo-by-hand@dwp.gov.uk>"
    person["Auto-Submitted"] = "auto-replied"
    person.set_content("I am out of the office this week.\n")
    eml = info.root / "by-hand.eml"
    eml.write_bytes(person.as_bytes())
    cli_json(info, capsys, "harness", "deliver", str(eml), "--dir", str(info.root))
    cli_json(info, capsys, "run", "--once")
    [ignored] = cli_json(info, capsys, "inbox", "--state", "ignored")
    assert ignored["kind"] == "auto_reply"


@pytest.mark.integration
def test_reject_by_hand_refuses_unknown_reasons_and_reports(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    info = make_harness().info
    config = ["--config", str(info.config), "harness", "reject"]
    assert run([*config, "1", "--reason", "rudeness"]) == 1
    assert "unknown reason(s) rudeness" in capsys.readouterr().err
    assert run([*config, "9", "--reason", "format"]) == 1
    assert "no report 9" in capsys.readouterr().err


@pytest.mark.integration
def test_the_relay_wants_starttls_and_the_right_password(make_harness: Callable[..., Harness]) -> None:
    info = make_harness().info
    with smtplib.SMTP("127.0.0.1", info.smtp_port, timeout=10) as plain:
        plain.ehlo()
        assert not plain.has_extn("auth")
        code, _ = plain.mail(MAILBOX)
        assert code == 530
    with smtplib.SMTP("127.0.0.1", info.smtp_port, timeout=10) as secured:
        secured.starttls(context=ssl.create_default_context(cafile=str(info.ca_file)))
        with pytest.raises(smtplib.SMTPAuthenticationError):
            secured.login(MAILBOX, "not-the-password")


def test_the_harness_wants_an_empty_short_folder() -> None:
    folder = Path(tempfile.mkdtemp(prefix="mh", dir="/tmp"))
    (folder / "something").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        Harness(folder).start()
    assert [p.name for p in folder.iterdir()] == ["something"]
    (folder / "something").unlink()
    folder.rmdir()
    with pytest.raises(InputError, match="too long"):
        Harness(Path("/tmp") / ("x" * 80))


@pytest.mark.integration
def test_the_command_runs_the_daemon_and_ctrl_c_stops_everything(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        check_installed()
    except ServerUnavailable as error:
        unavailable(error)
    root = short_folder()
    request.addfinalizer(lambda: shutil.rmtree(root.parent, ignore_errors=True))
    process = subprocess.Popen(
        [sys.executable, "-m", "mailroom", "harness", "--dir", str(root), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        info = HarnessInfo.read(root)
        assert started["config"] == str(info.config) and started["daemon_pid"]
        assert run(["--config", str(info.config), "case", "add", "MH-100001"]) == 0
        sample = info.samples / SAMPLES[0].file_name
        assert (
            run(
                [
                    "--config",
                    str(info.config),
                    "submit",
                    str(sample),
                    "--case",
                    "MH-100001",
                    "--type",
                    "support-plan",
                ]
            )
            == 0
        )
        deadline = time.monotonic() + 20
        while state(info, capsys, "MH-100001")["state"] != "acknowledged":
            assert time.monotonic() < deadline, "the harness's daemon did not get the report acknowledged"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGINT)
        remaining_out, remaining_err = process.communicate(timeout=30)
    assert process.returncode == 0, remaining_err
    events = [json.loads(line)["event"] for line in remaining_out.splitlines()]
    assert events[:2] == ["received", "acknowledged"]
    for port in (info.smtp_port, info.imap_port, info.imaps_port, info.lmtp_port):
        assert not port_open(port)
    with pytest.raises(ProcessLookupError):
        os.kill(started["daemon_pid"], 0)
    assert not any(info.gpg_home.glob("S.gpg-agent*")), "gpg-agent still has its sockets"
