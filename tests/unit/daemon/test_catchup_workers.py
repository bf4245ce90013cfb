"""The catch-up's workers (`CatchUpWorkers`): their Readings are the daemon's own and the files they store
are the daemon's own; when they cannot (a worker died, or reading raised there) the caller gets None and
reads or stores the group itself."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.spawn
import os
import signal
import stat
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from mailroom.daemon.catchup_workers import CatchUpWorkers
from mailroom.daemon.wiring import make_documents
from mailroom.edges.configfile import load_settings
from mailroom.service.reading import classify_policy, read_message
from tests.conftest import Env

GIVEN_UP = "; the rest of this catch-up is read and stored in the daemon"


def _raws() -> list[bytes]:
    raws = []
    for number in range(3):
        message = EmailMessage()
        message["From"] = "Access to Work <accesstowork.mhss@dwp.gov.uk>"
        message["Subject"] = f"RE: Support Plan MH-1000{number} [S-00000{number}]"
        message["Message-ID"] = f"<pool-{number}@dwp.gov.uk>"
        message.set_content("Thank you for your email. We have received it.\n")
        raws.append(message.as_bytes())
    raws.append(b"\xff\xfe not a message at all")
    return raws


def test_the_workers_readings_are_the_daemons_own(make_env: Callable[..., Env]) -> None:
    settings = load_settings(make_env().config)
    raws = _raws()
    with CatchUpWorkers(settings) as pool:
        readings = pool.readings(pool.submit(raws), len(raws))
    policy = classify_policy(settings)
    assert readings == [read_message(raw, settings, policy) for raw in raws]


def test_a_worker_that_dies_leaves_the_reading_to_the_daemon_for_the_rest_of_the_catch_up(
    make_env: Callable[..., Env], caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(make_env().config)
    raws = _raws()
    caplog.set_level(logging.WARNING)
    with CatchUpWorkers(settings) as pool:
        assert pool.readings(pool.submit(raws), len(raws)) is not None  # the worker is up
        executor = pool._executor
        assert executor is not None
        for pid in list(executor._processes):  # kill -9, as the OOM killer would
            os.kill(pid, signal.SIGKILL)
        assert pool.readings(pool.submit(raws), len(raws)) is None
        assert pool.submit(raws) is None  # no new worker for the rest of this catch-up
    said = [r.getMessage() for r in caplog.records if r.name == "mailroom.daemon.catchup_workers"]
    # "it died" (found by the result) or "it stopped" (found by the submit), whichever came first: once.
    assert len(said) == 1 and said[0].endswith(GIVEN_UP), said


def test_nothing_to_read_asks_nothing(make_env: Callable[..., Env]) -> None:
    with CatchUpWorkers(load_settings(make_env().config)) as pool:
        assert pool.submit([]) is None
        assert pool.readings(None, 0) is None


def test_a_worker_that_cannot_start_leaves_the_reading_to_the_daemon(
    make_env: Callable[..., Env], caplog: pytest.LogCaptureFixture
) -> None:
    """Spawning the worker fails (here: no such interpreter): one warning, and the caller reads."""
    settings = load_settings(make_env().config)
    caplog.set_level(logging.WARNING)
    python = multiprocessing.spawn.get_executable()
    multiprocessing.spawn.set_executable("/nonexistent/python3")
    try:
        with CatchUpWorkers(settings) as pool:
            assert pool.readings(pool.submit(_raws()), 4) is None
            assert pool.submit(_raws()) is None
    finally:
        multiprocessing.spawn.set_executable(python)
    said = [r.getMessage() for r in caplog.records if r.name == "mailroom.daemon.catchup_workers"]
    assert len(said) == 1 and said[0].endswith(GIVEN_UP), said


def test_a_worker_stores_a_group_as_the_daemon_would_and_a_dead_one_says_none(
    make_env: Callable[..., Env],
) -> None:
    settings = load_settings(make_env().config)
    raws = _raws()
    documents = make_documents(settings)
    with CatchUpWorkers(settings) as pool:
        future = pool.store(raws, "imap:test")
        assert future is not None
        stored = pool.stored(future)
        assert stored is not None
        assert [documents.get(f.path) for f in stored] == raws
        assert {stat.S_IMODE(f.path.stat().st_mode) for f in stored} == {0o600}
        assert documents.journaled("imap:test") == [f.path for f in stored]
        executor = pool._executor
        assert executor is not None
        for pid in list(executor._processes):
            os.kill(pid, signal.SIGKILL)
        future = pool.store(raws, "imap:test#2")
        assert future is None or pool.stored(future) is None
        assert pool.store(raws, "imap:test#2") is None  # the rest is stored by the daemon
