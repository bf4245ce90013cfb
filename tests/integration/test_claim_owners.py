"""On PostgreSQL a claim's owner is judged from any host by its session advisory lock: held means alive,
free means gone (the connection of a dead daemon drops and takes the lock with it)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import psycopg
import pytest

from mailroom.core.states import SubmissionState
from mailroom.daemon.app import build
from mailroom.edges.configfile import load_settings
from mailroom.edges.leader import INSTANCE_LOCK_CLASS, instance_lock_key
from mailroom.edges.process import this_process
from mailroom.service.heartbeat import HeartbeatRecorder
from tests.conftest import Env
from tests.support.postgres import Postgres
from tests.unit.service.test_claim_owners import claimed_report, state_of

pytestmark = pytest.mark.integration


def test_an_owner_on_another_host_is_judged_by_its_lock(
    make_daemon_env: Callable[..., Env], postgres: Postgres
) -> None:
    name = f"m{uuid.uuid4().hex[:12]}"
    env = make_daemon_env(store={"url": postgres.create_database(name)})
    parts = build(load_settings(env.config))
    try:
        elsewhere = dataclasses.replace(this_process(), host="mail02.provider.example")
        HeartbeatRecorder(parts.engine, elsewhere, version="test", config="-").start()
        # That daemon is alive, on a host /proc cannot see: its own session holds its lock.
        other = psycopg.connect(postgres.dsn(name), autocommit=True)
        key = instance_lock_key(elsewhere.instance_id)
        other.execute("SELECT pg_advisory_lock(%s, %s)", (INSTANCE_LOCK_CLASS, key))
        sub = claimed_report(parts, elsewhere.instance_id)
        assert parts.outbox.recover_leases() == 0
        assert state_of(parts, sub)[0] == SubmissionState.SENDING
        other.close()  # its connection drops, as when the process dies
        assert parts.outbox.recover_leases() == 1
        assert state_of(parts, sub) == (SubmissionState.QUEUED, "resent after a crash (owner gone)")
    finally:
        parts.engine.dispose()
