"""One outbox pass, in-process against the real relay: claimed a chunk at a time over one connection, capped
at `batch_size`, and a stop that hands unsent claims straight back to the queue."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mailroom.daemon.app import build
from mailroom.edges.configfile import load_settings
from mailroom.harness import dwp
from mailroom.service.sending import CLAIM_CHUNK, Outbox
from tests.conftest import Env
from tests.support import pdfs
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.integration
AUTHSERV = "mx.provider.example"


def queue_reports(env: Env, count: int) -> None:
    assert env.run("case", "add", "MH-100001").code == 0
    path = env.root / "report.pdf"
    path.write_bytes(pdfs.arial_12_report())
    for _ in range(count):
        result = env.run("submit", str(path), "--case", "MH-100001", "--type", "support-plan")
        assert result.code == 0, result.err


def outbox_for(env: Env) -> Outbox:
    return build(load_settings(env.config)).outbox


def states(env: Env) -> list[str]:
    return sorted(row["state"] for row in json.loads(env.run("queue", "--json").out))


def received_ids(relay: SmtpServer) -> list[str]:
    return [str(message_from_bytes(m.content)["Message-ID"]) for m in relay.messages]


def test_one_pass_claims_chunk_after_chunk_over_one_connection(
    make_daemon_env: Callable[..., Env], relay: SmtpServer
) -> None:
    count = CLAIM_CHUNK + 5
    env = make_daemon_env(outbox={"batch_size": 100})
    queue_reports(env, count)

    result = asyncio.run(outbox_for(env).run_once())

    assert (result.sent, result.deferred, result.failed, result.released) == (count, 0, 0, 0)
    assert relay.connections == 1
    assert len(set(received_ids(relay))) == count
    assert states(env) == ["sent"] * count


def test_a_pass_stops_at_batch_size(make_daemon_env: Callable[..., Env], relay: SmtpServer) -> None:
    env = make_daemon_env(outbox={"batch_size": 4})
    queue_reports(env, 6)

    first = asyncio.run(outbox_for(env).run_once())
    assert first.sent == 4 and len(relay.messages) == 4
    assert states(env) == ["queued"] * 2 + ["sent"] * 4

    second = asyncio.run(outbox_for(env).run_once())
    assert second.sent == 2 and len(set(received_ids(relay))) == 6


def test_stop_hands_claimed_reports_back_unsent(
    make_daemon_env: Callable[..., Env], relay: SmtpServer
) -> None:
    env = make_daemon_env()
    queue_reports(env, 5)
    relay.slow("DATA", 0.4)
    outbox = outbox_for(env)

    async def pass_then_stop() -> tuple[int, int]:
        running = asyncio.create_task(outbox.run_once())
        deadline = time.monotonic() + 20
        while not relay.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        outbox.stop()
        result = await running
        return result.sent, result.released

    sent, released = asyncio.run(pass_then_stop())

    assert 1 <= sent < 5 and sent + released == 5
    assert len(relay.messages) == sent
    rows = json.loads(env.run("queue", "--json").out)
    unsent = [row for row in rows if row["state"] == "queued"]
    assert len(unsent) == released
    view = json.loads(env.run("case", "show", "MH-100001", "--json").out)
    back = [s for s in view["submissions"] if s["state"] == "queued"]
    assert all(s["attempts"] == 0 for s in back)
    assert all(any(e["action"] == "released" for e in s["timeline"]) for s in back)
    assert asyncio.run(outbox.run_once()).sent == 0  # a stopped outbox claims nothing more

    relay.slow("DATA", 0.0)
    assert asyncio.run(outbox_for(env).run_once()).sent == released
    assert sorted(received_ids(relay)) == sorted(set(received_ids(relay)))  # each once


@pytest.mark.parametrize("reply", ["acknowledgement", "rejection"])
def test_a_reply_read_before_the_send_was_recorded_takes_effect_when_it_is(
    make_daemon_env: Callable[..., Env], relay: SmtpServer, reply: str
) -> None:
    # DWP's automated response can be read while the outbox still holds the send in its group commit.
    env = make_daemon_env()
    queue_reports(env, 3)
    relay.slow("DATA", 0.3)
    parts = build(load_settings(env.config))

    async def send_while_replying() -> None:
        running = asyncio.create_task(parts.outbox.run_once())
        deadline = time.monotonic() + 20
        while not relay.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        original = message_from_bytes(relay.messages[0].content, policy=policy.default)
        assert isinstance(original, EmailMessage)
        now = datetime.now(UTC)
        notice = (
            dwp.acknowledgement(original, now=now, authserv_id=AUTHSERV)
            if reply == "acknowledgement"
            else dwp.rejection(
                original, ("spelling-grammar",), now=now, authserv_id=AUTHSERV, case_ref="MH-100001"
            )
        )
        assert states(env).count("sending") == 3  # nothing recorded yet
        result = await asyncio.to_thread(parts.inbox.ingest, notice.as_bytes(), mailbox="test")
        assert result.state == "matched"
        await running

    asyncio.run(send_while_replying())

    view = json.loads(env.run("case", "show", "MH-100001", "--json").out)
    first = next(s for s in view["submissions"] if s["message_id"] == received_ids(relay)[0])
    clocks = {c["kind"]: c["state"] for c in view["clocks"] if c["submission_id"] == first["id"]}
    if reply == "acknowledgement":
        assert first["state"] == "acknowledged"
        assert clocks == {"acknowledgement": "met", "decision": "running"}
    else:
        assert first["state"] == "rejected" and first["rejection_reasons"] == ["spelling-grammar"]
        assert clocks == {"acknowledgement": "met", "decision": "met", "correction": "running"}


def test_a_claim_whose_lease_ran_out_before_its_turn_goes_back_unattempted(
    make_daemon_env: Callable[..., Env], relay: SmtpServer
) -> None:
    env = make_daemon_env(outbox={"lease_seconds": 1})
    queue_reports(env, 4)
    relay.slow("DATA", 0.7)

    result = asyncio.run(outbox_for(env).run_once())

    assert result.sent >= 1 and result.released >= 1 and result.sent + result.released == 4
    assert len(relay.messages) == result.sent
    assert states(env).count("sending") == 0
    view = json.loads(env.run("case", "show", "MH-100001", "--json").out)
    back = [s for s in view["submissions"] if s["state"] == "queued"]
    assert len(back) == result.released and all(s["attempts"] == 0 for s in back)
    assert not any(e["action"] == "lease-expired" for s in back for e in s["timeline"])
