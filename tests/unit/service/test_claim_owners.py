"""Claims know their owner: a claim whose daemon is gone goes back to the queue at once, a living owner's
claim stays, and an owner this host cannot judge waits for its lease (SQLite; PostgreSQL's lock-based
judgement from any host is in tests/integration/test_claim_owners.py)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from mailroom.core.states import SubmissionState
from mailroom.daemon.app import Parts, build
from mailroom.edges.configfile import load_settings
from mailroom.edges.process import this_process
from mailroom.service.heartbeat import HeartbeatRecorder
from mailroom.store.models import AuditEvent, Case, Notice, Submission
from tests.conftest import Env
from tests.support import pdfs, rows


@pytest.fixture
def parts(env: Env) -> Parts:
    return build(load_settings(env.config))


def gone_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    return int(child.stdout)


def instance(parts: Parts, **identity: Any) -> str:
    """An instance row for a daemon with this identity (by default: this very process, alive)."""
    me = dataclasses.replace(this_process(), **identity)
    HeartbeatRecorder(parts.engine, me, version="test", config="-").start()
    return me.instance_id


def claimed_report(parts: Parts, owner: str | None, *, lease: timedelta = timedelta(minutes=5)) -> int:
    now = datetime.now(UTC)  # not at import: the suite may reach this test more than a lease later
    with Session(parts.engine) as session:
        number = 300000 + len(session.exec(select(Case)).all())
        sub = rows.add_report(
            session,
            case_ref=f"MH-{number:06d}",
            state=SubmissionState.SENDING,
            at=now,
            message_id=f"<S-{number:06d}.test@provider.example>",
            attempts=1,
            lease_until=now + lease,
            claimed_by=owner,
        )
        session.commit()
        assert sub.id is not None
        return sub.id


def state_of(parts: Parts, sub_id: int) -> tuple[str, str | None]:
    with Session(parts.engine) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        events = session.exec(
            select(AuditEvent).where(AuditEvent.entity == "submission", AuditEvent.entity_id == sub_id)
        ).all()
        return sub.state, events[-1].detail.get("note") if events else None


@pytest.mark.parametrize(
    "identity",
    [
        pytest.param(lambda: {"pid": gone_pid()}, id="pid-gone"),
        pytest.param(lambda: {"started": "1"}, id="pid-reused"),
        pytest.param(lambda: {"boot_id": "00000000-0000-0000-0000-000000000000"}, id="earlier-boot"),
    ],
)
def test_a_claim_whose_owner_is_gone_goes_back_at_once(
    parts: Parts, identity: Callable[[], dict[str, Any]]
) -> None:
    dead = instance(parts, **identity())
    sub = claimed_report(parts, dead)
    assert parts.outbox.recover_leases() == 1
    assert state_of(parts, sub) == (SubmissionState.QUEUED, "resent after a crash (owner gone)")


def test_a_claim_of_a_daemon_that_stopped_goes_back(parts: Parts) -> None:
    owner = dataclasses.replace(this_process())
    recorder = HeartbeatRecorder(parts.engine, owner, version="test", config="-")
    recorder.start()
    recorder.beat(stopping=True)
    sub = claimed_report(parts, owner.instance_id)
    assert parts.outbox.recover_leases() == 1 and state_of(parts, sub)[0] == SubmissionState.QUEUED


def test_a_living_owners_claim_and_our_own_stay(parts: Parts) -> None:
    living = claimed_report(parts, instance(parts))
    ours = claimed_report(parts, parts.outbox.owner)
    assert parts.outbox.recover_leases() == 0
    assert state_of(parts, living)[0] == state_of(parts, ours)[0] == SubmissionState.SENDING


def test_an_owner_on_another_host_waits_for_its_lease_on_sqlite(parts: Parts) -> None:
    elsewhere = claimed_report(parts, instance(parts, host="another-host"))
    unowned = claimed_report(parts, None)
    assert parts.outbox.recover_leases() == 0
    expired = claimed_report(parts, instance(parts, host="another-host"), lease=-timedelta(seconds=1))
    assert parts.outbox.recover_leases() == 1
    assert state_of(parts, expired) == (SubmissionState.QUEUED, "resent after an unconfirmed attempt")
    assert state_of(parts, elsewhere)[0] == state_of(parts, unowned)[0] == SubmissionState.SENDING


def test_every_claim_names_this_daemon(parts: Parts, env: Env) -> None:
    report = env.root / "report.pdf"
    report.write_bytes(pdfs.arial_12_report())
    assert env.run("case", "add", "MH-100001").code == 0
    assert env.run("submit", str(report), "--case", "MH-100001", "--type", "support-plan").code == 0
    [claim] = parts.outbox.claim(10)
    with Session(parts.engine) as session:
        sub = session.get(Submission, claim.id)
        assert sub is not None and sub.claimed_by == parts.outbox.owner != ""


def test_a_notice_claimed_by_a_daemon_that_is_gone_goes_back_too(parts: Parts) -> None:
    dead = instance(parts, pid=gone_pid())
    now = datetime.now(UTC)
    with Session(parts.engine) as session:
        notice = Notice(
            kind="escalation",
            recipients=["pm@dwp.gov.uk"],
            subject="MHSS escalation-1 - MH-300000 [S-000001]: no acknowledgement",
            body="-",
            message_id="<escalation.test@provider.example>",
            state="sending",
            attempts=1,
            lease_until=now + timedelta(minutes=5),
            claimed_by=dead,
            created_at=now,
        )
        session.add(notice)
        session.commit()
        notice_id = notice.id
    assert parts.outbox.recover_leases() == 1
    with Session(parts.engine) as session:
        back = session.get(Notice, notice_id)
        assert back is not None and (back.state, back.claimed_by) == ("queued", None)
