"""`mailroom status`: exit 0 when healthy, 1 when something needs a person, and what it says then.

The daemon's heartbeat is written by the real recorder (mailroom.service.heartbeat) for this very test
process, so "running" is a live pid; the gone-process case uses a child that has exited.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from mailroom.core.deadlines import ClockState
from mailroom.core.states import InboundState
from mailroom.edges.process import this_process
from mailroom.service.heartbeat import HeartbeatRecorder
from mailroom.service.outage import OutageBoard, OutageLog
from mailroom.store.engine import SCHEMA_HEAD, make_engine
from mailroom.store.models import Clock, InboundMessage
from tests.conftest import Env
from tests.support import rows

NOW = datetime.now(UTC)


@pytest.fixture
def status_env(make_env: Callable[..., Env]) -> Callable[..., Env]:
    def factory(**overrides: dict[str, Any]) -> Env:
        environment = make_env(**overrides)
        assert environment.run("db", "upgrade").code == 0
        return environment

    return factory


@pytest.fixture
def env(status_env: Callable[..., Env]) -> Env:
    return status_env()


def engine_of(env: Env) -> Any:
    return make_engine(f"sqlite:///{env.db_path}")


def daemon_beats(env: Env, board: OutageBoard | None = None, **identity: Any) -> HeartbeatRecorder:
    me = dataclasses.replace(this_process(), **identity)
    recorder = HeartbeatRecorder(
        engine_of(env), me, version="test", config=str(env.config), board=board or OutageBoard()
    )
    recorder.start()
    return recorder


def status(env: Env) -> tuple[int, dict[str, Any], str]:
    text = env.run("status")
    result = env.run("status", "--json")
    assert result.code == text.code, (text, result)
    return result.code, json.loads(result.out), text.out


def add_report(env: Env, *, clock_state: str | None = None, due_in: timedelta = timedelta(days=2)) -> int:
    with Session(engine_of(env)) as session:
        sub = rows.add_report(session, at=NOW, message_id="<S-000001.test@provider.example>")
        assert sub.id is not None
        if clock_state:
            session.add(
                Clock(
                    kind="correction",
                    state=clock_state,
                    case_id=sub.case_id,
                    submission_id=sub.id,
                    started_at=NOW,
                    due_at=NOW + due_in,
                    calendar="england-and-wales",
                    holidays_version="test",
                )
            )
        session.commit()
        return sub.case_id


@pytest.fixture
def outage() -> OutageBoard:
    """A board of this test's own (the daemon's is process-wide) with the relay out since just now."""
    board = OutageBoard()
    OutageLog("SMTP relay status-test:587", channel="smtp", board=board).failed(
        ConnectionRefusedError("connection refused")
    )
    return board


def test_a_running_daemon_with_nothing_waiting_is_healthy(env: Env) -> None:
    daemon_beats(env)
    add_report(env, clock_state=ClockState.RUNNING)
    code, report, text = status(env)
    assert code == 0
    assert report["running"] and report["healthy"] and report["problems"] == []
    assert report["queue"] == {"sent": 1} and report["due_soon"] == 1 and report["schema"] == SCHEMA_HEAD
    assert text.startswith("mailroom status: healthy") and "running on" in text


def test_no_daemon_at_all_needs_a_person(env: Env) -> None:
    code, report, text = status(env)
    assert code == 1 and not report["running"]
    assert report["problems"] == ["no daemon has written a heartbeat to this database"]
    assert "never run against this database" in text


def test_a_daemon_that_stopped_or_died_is_not_running(env: Env) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    gone = int(child.stdout)
    daemon_beats(env, pid=gone)
    code, report, _ = status(env)
    assert code == 1
    assert report["daemons"][0]["note"] == "process gone without stopping (killed or crashed)"
    recorder = daemon_beats(env)
    recorder.beat(stopping=True)
    code, report, _ = status(env)
    assert code == 1 and {d["note"] for d in report["daemons"]} >= {"stopped"}


def test_an_outage_longer_than_the_limit_needs_a_person(
    status_env: Callable[..., Env], outage: OutageBoard
) -> None:
    young = status_env(status={"outage_minutes": 30})
    daemon_beats(young, outage).beat()
    code, report, text = status(young)
    assert code == 0, report["problems"]  # out for a moment: shown, not yet a person's problem
    assert [o["what"] for o in report["outages"]] == ["SMTP relay status-test:587"]
    assert "SMTP relay status-test:587 since" in text


def test_an_outage_past_the_limit_is_reported_with_its_age(
    status_env: Callable[..., Env], outage: OutageBoard
) -> None:
    env = status_env(status={"outage_minutes": 0})
    daemon_beats(env, outage).beat()
    code, report, text = status(env)
    assert code == 1
    assert [p.split(" unavailable for ")[0] for p in report["problems"]] == ["SMTP relay status-test:587"]
    assert "Needs a person:" in text


def test_a_breached_clock_needs_a_person(env: Env) -> None:
    daemon_beats(env)
    add_report(env, clock_state=ClockState.ESCALATED, due_in=-timedelta(days=1))
    code, report, _ = status(env)
    assert code == 1 and report["breached"] == 1
    assert report["problems"] == ["1 clock(s) breached (`mailroom clocks`)"]


def test_mail_waiting_for_review_needs_a_person(env: Env) -> None:
    daemon_beats(env)
    case_id = add_report(env)
    with Session(engine_of(env)) as session:
        session.add(
            InboundMessage(
                mailbox="ingest",
                message_id="<review.1@dwp.gov.uk>",
                raw_sha256="1" * 64,
                state=InboundState.NEEDS_REVIEW,
                kind="other",
                case_id=case_id,
                received_at=NOW,
            )
        )
        session.commit()
    code, report, text = status(env)
    assert code == 1 and report["review_waiting"] == 1
    assert "1 message(s) wait for review" in text


def test_status_without_a_database_is_one_line(make_env: Callable[..., Env]) -> None:
    env = make_env()
    result = env.run("status")
    assert result.code != 0 and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_completion_scripts_name_the_program(env: Env) -> None:
    bash = "complete -o nosort -F _mailroom_completion mailroom"
    for shell, marker in (("bash", bash), ("zsh", "#compdef")):
        result = env.run("completion", shell)
        assert result.code == 0 and marker in result.out and "_MAILROOM_COMPLETE" in result.out
    assert env.run("completion", "tcsh").code == 2
