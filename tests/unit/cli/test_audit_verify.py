"""`mailroom audit verify` (the whole chain) reads over the plain read-only connection, without the ORM;
an event its fast check cannot reproduce is decided the reference way, through the ORM, before it is
reported. So an edit is found, and a row the fast check merely reads differently is not a break."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from mailroom.store import audit
from mailroom.store.engine import make_engine, transaction
from tests.conftest import Env


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    environment = make_env()
    assert environment.run("db", "upgrade").code == 0
    for ref in ("MH-100001", "MH-100002"):
        assert environment.run("case", "add", ref).code == 0
    engine = make_engine(f"sqlite:///{environment.db_path}")
    with transaction(engine) as session:  # a time on the second exactly: stored without a fraction below
        audit.record(
            session,
            at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
            actor="ops@example.org",
            entity="case",
            entity_id=1,
            action="noted",
            detail={"why": "a test"},
        )
    engine.dispose()
    return environment


def sql(env: Env, statement: str) -> None:
    with sqlite3.connect(env.db_path) as db:
        db.execute(statement)


def verify(env: Env) -> tuple[int, dict[str, object]]:
    result = env.run("audit", "verify", "--json")
    return result.code, json.loads(result.out)


def test_an_intact_chain_is_intact(env: Env) -> None:
    code, said = verify(env)
    assert code == 0 and said["intact"] is True and said["problems"] == []
    with sqlite3.connect(env.db_path) as db:
        assert said["events"] == db.execute("SELECT count(*) FROM audit_events").fetchone()[0] >= 3


def test_an_edited_event_is_reported_with_exit_1(env: Env) -> None:
    sql(env, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    code, said = verify(env)
    assert code == 1 and said["problems"] == ["event 2 was changed after it was written"]
    plain = env.run("audit", "verify")
    assert plain.code == 1 and "mailroom: audit: event 2 was changed after it was written" in plain.err


def test_a_time_the_fast_check_reads_differently_is_decided_the_reference_way(env: Env) -> None:
    last = sqlite3.connect(env.db_path).execute("SELECT max(seq) FROM audit_events").fetchone()[0]
    # The same instant without its six zeros: the ORM reads the same time, the fast check cannot.
    sql(env, f"UPDATE audit_events SET at = '2026-01-05 09:00:00' WHERE seq = {last}")
    assert verify(env)[0] == 0
    sql(env, f"UPDATE audit_events SET at = '2026-01-05 09:00:01' WHERE seq = {last}")
    code, said = verify(env)
    assert code == 1 and said["problems"] == [f"event {last} was changed after it was written"]
