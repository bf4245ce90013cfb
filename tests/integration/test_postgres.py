"""PostgreSQL when one server is not enough: the same code, two daemons on one database.

Outbox rows are claimed with SKIP LOCKED, clocks are swept under row locks, and the (clock, level) unique
constraint is the last guard: each report and each escalation goes out once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes

import psycopg
import pytest

from mailroom.store.engine import SCHEMA_HEAD
from tests.conftest import Env
from tests.support import pdfs
from tests.support.postgres import Postgres
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.integration
PM = "pm@dwp.gov.uk"
DWP = "accesstowork.mhss@dwp.gov.uk"


@pytest.fixture
def pg_env(make_daemon_env: Callable[..., Env], postgres: Postgres) -> tuple[Env, str]:
    name = f"m{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    env = make_daemon_env(store={"url": url})
    return env, postgres.dsn(name)


def rows(dsn: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as db:
        return list(db.execute(query).fetchall())


def test_db_upgrade_cases_and_no_clear_nino_on_postgres(pg_env: tuple[Env, str]) -> None:
    env, dsn = pg_env
    again = env.run("db", "upgrade", "--json")
    assert again.code == 0 and json.loads(again.out)["changed"] is False
    assert env.run("case", "add", "MH-100001", "--nino", "AB 12 34 56 C").code == 0
    shown = json.loads(env.run("case", "show", "MH-100001", "--json").out)
    assert shown["case_ref"] == "MH-100001" and "AB123456C" not in json.dumps(shown)
    dump = json.dumps(rows(dsn, "SELECT * FROM cases"), default=str) + json.dumps(
        rows(dsn, "SELECT * FROM audit_events"), default=str
    )
    assert "AB123456C" not in dump and "AB 12 34 56 C" not in dump
    assert rows(dsn, "SELECT version_num FROM alembic_version") == [(SCHEMA_HEAD,)]


def two_daemons_once(env: Env, at: datetime | None = None) -> None:
    args = [sys.executable, "-m", "mailroom", "--config", str(env.config), "run", "--once"]
    args += ["--at", at.isoformat()] if at else []
    procs = [
        subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]


def test_two_daemons_share_the_queue_and_send_each_report_once(
    pg_env: tuple[Env, str], relay: SmtpServer
) -> None:
    env, dsn = pg_env
    env.run("case", "add", "MH-100001")
    pdf = env.root / "r.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    for _ in range(20):
        assert env.run("submit", str(pdf), "--case", "MH-100001", "--type", "support-plan").code == 0
    relay.slow("DATA", 0.02)  # keep both daemons busy at the same time
    two_daemons_once(env)
    sent = [message_from_bytes(m.content)["Message-ID"] for m in relay.messages if DWP in m.rcpt_tos]
    assert len(sent) == 20 and len(set(sent)) == 20
    assert Counter(s for (s,) in rows(dsn, "SELECT state FROM submissions")) == Counter({"sent": 20})


def test_two_daemons_send_each_escalation_once(pg_env: tuple[Env, str], relay: SmtpServer) -> None:
    env, dsn = pg_env
    env.run("case", "add", "MH-100001")
    pdf = env.root / "r.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    env.run("submit", str(pdf), "--case", "MH-100001", "--type", "support-plan")
    assert env.run("run", "--once").code == 0
    [(due,)] = rows(dsn, "SELECT due_at FROM clocks WHERE kind = 'acknowledgement'")
    assert isinstance(due, datetime)
    two_daemons_once(env, due + timedelta(hours=1))
    escalations = [m for m in relay.messages if PM in m.rcpt_tos]
    assert len(escalations) == 1
    assert rows(dsn, "SELECT level FROM escalations WHERE kind = 'escalation'") == [("escalation-1",)]


def test_two_daemons_send_one_digest_a_day_and_status_reads_postgres(
    make_daemon_env: Callable[..., Env], postgres: Postgres, relay: SmtpServer
) -> None:
    relay.reset()
    env = make_daemon_env(
        store={"url": postgres.create_database(f"m{uuid.uuid4().hex[:12]}")},
        digest={"enabled": True, "at": "08:30"},
    )
    monday = datetime(2026, 12, 21, 9, 0, tzinfo=UTC)
    two_daemons_once(env, monday)
    two_daemons_once(env, monday + timedelta(hours=3))
    digests = [m for m in relay.messages if str(m.message()["Subject"]).startswith("MHSS daily digest")]
    assert len(digests) == 1
    result = env.run("status", "--json")
    report = json.loads(result.out)
    assert result.code == 1 and report["schema"] == SCHEMA_HEAD and report["notices"] == {"sent": 1}
    assert len(report["daemons"]) == 4 and {d["note"] for d in report["daemons"]} == {"stopped"}
