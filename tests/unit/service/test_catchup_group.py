"""Issue 13, part 4: a fetched group is one transaction with a SAVEPOINT per message.

A message that raises rolls back only its own work and its audit events (the chain's head goes back, so
the next event takes the same seq: no gap, no fork), and is quarantined; the rest commit with the cursor.
A group that does not commit (an error, or kill -9 half-way) leaves no row, no cursor move and no effect,
and its raw files, journaled before they were written, are deleted by `reclaim_raw` before the replay,
which then applies each notice exactly once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from mailroom.core.deadlines import ClockKind, ClockState
from mailroom.daemon.wiring import make_mailroom
from mailroom.edges.configfile import load_settings
from mailroom.harness import dwp
from mailroom.service.clocks import ClockKeeper, close_clocks, read_open_clocks
from mailroom.service.inbound import Arrival, Disposition, Inbox
from mailroom.store import audit
from mailroom.store.documents import temporary_for
from mailroom.store.engine import transaction
from mailroom.store.models import Submission
from tests.conftest import Env
from tests.support import rows
from tests.support.sql import starting, statements

AUTHSERV = "mx.provider.example"
MAILBOX = "imap:test@127.0.0.1:993/INBOX"
UIDVALIDITY = 7
SENT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _message_id(number: int) -> str:
    return f"<20261123.S-{number:06d}.49a7@provider.example>"


def _setup(make_env: Callable[..., Env], reports: int = 3) -> tuple[Env, Inbox, list[bytes]]:
    env = make_env(trust={"authserv_ids": [AUTHSERV]})
    assert env.run("db", "upgrade").code == 0
    settings = load_settings(env.config)
    mailroom = make_mailroom(settings)
    with Session(mailroom.engine) as session:
        for number in range(1, reports + 1):
            rows.add_report(
                session, case_ref=f"MH-1{number:05d}", number=number, at=SENT, message_id=_message_id(number)
            )
        session.commit()
    inbox = Inbox(
        settings, mailroom.engine, mailroom.documents, mailroom.now, ClockKeeper(settings), mailroom.nino_key
    )
    raws = []
    for number in range(1, reports + 1):
        original = EmailMessage()
        original["From"] = "reports@provider.example"
        original["Subject"] = f"Support Plan MH-1{number:05d} [S-{number:06d}]"
        original["Message-ID"] = _message_id(number)
        ack = dwp.acknowledgement(original, now=datetime.now(UTC), authserv_id=AUTHSERV)
        raws.append(ack.as_bytes())
    return env, inbox, raws


def _arrivals(raws: list[bytes]) -> list[Arrival]:
    return [Arrival(raw, UIDVALIDITY, uid, SENT) for uid, raw in enumerate(raws, start=10)]


def _db(env: Env, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(env.db_path) as db:
        return db.execute(sql).fetchall()


def _raw_files(env: Env) -> set[str]:
    folder = env.root / "documents" / "inbound"
    return {str(p) for p in folder.iterdir()} if folder.is_dir() else set()


def _fail_on(inbox: Inbox, monkeypatch: pytest.MonkeyPatch, submission_id: int) -> None:
    """A bug in applying one notice: after its row and its `received`/`matched` events were recorded."""
    apply = inbox.effects.apply

    def failing(session: Session, row: Any, sub: Any, *args: Any, **kwargs: Any) -> None:
        if sub.id == submission_id:
            raise RuntimeError("a bug while applying")
        apply(session, row, sub, *args, **kwargs)

    monkeypatch.setattr(inbox.effects, "apply", failing)


def test_the_middle_message_fails_alone_and_the_chain_has_no_gap_or_fork(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, inbox, raws = _setup(make_env)
    _fail_on(inbox, monkeypatch, submission_id=2)
    stored = inbox.store_raw(raws, journal=MAILBOX)

    outcomes = inbox.ingest_group(_arrivals(raws), stored, mailbox=MAILBOX)

    assert outcomes == [
        (Disposition.PROCESSED, True),
        (Disposition.QUARANTINE, True),
        (Disposition.PROCESSED, True),
    ]
    states = _db(env, "SELECT uid, state, submission_id FROM inbound_messages ORDER BY uid")
    assert states == [(10, "matched", 1), (11, "quarantined", None), (12, "matched", 3)]
    subs = dict(_db(env, "SELECT id, state FROM submissions"))
    assert subs == {1: "acknowledged", 2: "sent", 3: "acknowledged"}
    assert _db(env, "SELECT last_uid, uidvalidity FROM folder_cursors") == [(12, UIDVALIDITY)]
    # Nothing of the failed message's rolled-back work is left in the trail, and no seq was skipped.
    seqs = [seq for (seq,) in _db(env, "SELECT seq FROM audit_events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    actions = _db(env, "SELECT action, entity_id FROM audit_events WHERE entity = 'message' ORDER BY seq")
    assert [a for a, _ in actions].count("received") == 2 and ("processing-failed", 2) in actions
    verify = env.run("audit", "verify")
    assert verify.code == 0, verify.out
    # Each row names its own raw file, and there is no other.
    named = {path for (path,) in _db(env, "SELECT stored_path FROM inbound_messages")}
    assert named == _raw_files(env) and len(named) == 3
    inbox.documents.close_journal(MAILBOX)
    assert inbox.reclaim_raw(MAILBOX) == 0


def test_a_group_that_does_not_commit_leaves_nothing_and_its_files_are_reclaimed(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, inbox, raws = _setup(make_env)
    _fail_on(inbox, monkeypatch, submission_id=2)
    monkeypatch.setattr(inbox, "_quarantine_in", _raise)  # even the quarantine fails: the group rolls back
    stored = inbox.store_raw(raws, journal=MAILBOX)
    events_before = _db(env, "SELECT count(*) FROM audit_events")

    with pytest.raises(RuntimeError, match="the store went away"):
        inbox.ingest_group(_arrivals(raws), stored, mailbox=MAILBOX)

    assert _db(env, "SELECT count(*) FROM inbound_messages") == [(0,)]
    assert _db(env, "SELECT count(*) FROM folder_cursors") == [(0,)]
    assert _db(env, "SELECT count(*) FROM audit_events") == events_before
    assert _raw_files(env) == {str(s.path) for s in stored}
    assert inbox.reclaim_raw(MAILBOX) == 3
    assert _raw_files(env) == set()
    monkeypatch.undo()
    _replayed_once(env, inbox, raws)


def test_a_store_cut_off_before_its_renames_leaves_no_temporary_after_the_reclaim(
    make_env: Callable[..., Env],
) -> None:
    """A storing worker killed between writing a group's files and renaming them into place leaves
    them under their temporary names: the reclaim deletes those too."""
    env, inbox, raws = _setup(make_env)
    stored = inbox.store_raw(raws, journal=MAILBOX)
    for file in stored:
        file.path.replace(temporary_for(file.path))
    assert len(_raw_files(env)) == 3 and all(Path(p).name.endswith(".tmp") for p in _raw_files(env))
    assert inbox.reclaim_raw(MAILBOX) == 3
    assert _raw_files(env) == set()
    _replayed_once(env, inbox, raws)


def _raise(*_args: Any, **_kwargs: Any) -> None:
    raise RuntimeError("the store went away")


CHILD = """
import os, signal, sys
from pathlib import Path
from datetime import UTC, datetime
from mailroom.daemon.wiring import make_mailroom
from mailroom.edges.configfile import load_settings
from mailroom.service.clocks import ClockKeeper
from mailroom.service.inbound import Arrival, Inbox

settings = load_settings(Path(sys.argv[1]))
m = make_mailroom(settings)
inbox = Inbox(settings, m.engine, m.documents, m.now, ClockKeeper(settings), m.nino_key)
raws = [open(path, "rb").read() for path in sys.argv[3:]]
apply = inbox.effects.apply

def dying(session, row, sub, *args, **kwargs):
    apply(session, row, sub, *args, **kwargs)
    if sub.id == 2:
        session.flush()  # the group's first message's work is in the database's transaction, uncommitted
        os.kill(os.getpid(), signal.SIGKILL)

inbox.effects.apply = dying
stored = inbox.store_raw(raws, journal=sys.argv[2])
at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
arrivals = [Arrival(raw, 7, uid, at) for uid, raw in enumerate(raws, 10)]
inbox.ingest_group(arrivals, stored, mailbox=sys.argv[2])
"""


def test_kill_9_mid_group_loses_nothing_and_doubles_nothing(make_env: Callable[..., Env]) -> None:
    env, inbox, raws = _setup(make_env)
    paths = []
    for number, raw in enumerate(raws):
        path = env.root / f"m{number}.eml"
        path.write_bytes(raw)
        paths.append(str(path))
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(env.config), MAILBOX, *paths],
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()

    assert _db(env, "SELECT count(*) FROM inbound_messages") == [(0,)]
    assert _db(env, "SELECT count(*) FROM folder_cursors") == [(0,)]
    assert len(_raw_files(env)) == 3  # written and journaled before the transaction; no row names them
    assert inbox.reclaim_raw(MAILBOX) == 3
    assert _raw_files(env) == set()
    _replayed_once(env, inbox, raws)


def _replayed_once(env: Env, inbox: Inbox, raws: list[bytes]) -> None:
    """The replay (the cursor did not move, so the same UIDs come again) applies each notice once."""
    stored = inbox.store_raw(raws, journal=MAILBOX)
    outcomes = inbox.ingest_group(_arrivals(raws), stored, mailbox=MAILBOX)
    inbox.documents.close_journal(MAILBOX)
    assert outcomes == [(Disposition.PROCESSED, True)] * 3
    again = inbox.ingest_group(_arrivals(raws), inbox.store_raw(raws), mailbox=MAILBOX)
    assert [new for _, new in again] == [False] * 3
    assert _db(env, "SELECT state, count(*) FROM submissions GROUP BY state") == [("acknowledged", 3)]
    acks = _db(env, "SELECT count(*) FROM audit_events WHERE action = 'acknowledged'")
    assert acks == [(3,)]
    named = {path for (path,) in _db(env, "SELECT stored_path FROM inbound_messages")}
    assert named == _raw_files(env) and len(named) == 3
    assert _db(env, "SELECT last_uid FROM folder_cursors") == [(12,)]
    verify = env.run("audit", "verify")
    assert verify.code == 0, verify.out


def test_copies_inside_a_group_and_of_an_earlier_group_apply_nothing_twice(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group's duplicates are looked up with two queries (`SeenBefore`); a copy of a message earlier in
    the same group (whose row is new in this transaction) and of one in an earlier group must both still
    be seen, and so must a copy after a message that failed."""
    env, inbox, raws = _setup(make_env)
    first = [raws[0]]
    inbox.ingest_group(_arrivals(first), inbox.store_raw(first), mailbox=MAILBOX)
    redelivered = b"Received: from relay by mx; Mon, 23 Nov 2026 09:10:00 +0000\r\n" + raws[1]
    _fail_on(inbox, monkeypatch, submission_id=3)
    group = [raws[0], raws[1], raws[1], redelivered, raws[2], raws[2]]
    arrivals = [Arrival(raws[1], UIDVALIDITY, 10, SENT)]  # the UID the first group's message had
    arrivals += [Arrival(raw, UIDVALIDITY, uid, SENT) for uid, raw in enumerate(group, start=20)]

    outcomes = inbox.ingest_group(arrivals, inbox.store_raw([a.raw for a in arrivals]), mailbox=MAILBOX)

    assert outcomes == [
        (Disposition.LEAVE, False),  # seen before at this UID
        (Disposition.PROCESSED, False),  # a copy of the first group's message
        (Disposition.PROCESSED, True),
        (Disposition.PROCESSED, False),  # the same bytes again in this group
        (Disposition.PROCESSED, False),  # the same notice with a new trace header
        (Disposition.QUARANTINE, True),  # failed: quarantined for replay
        (Disposition.QUARANTINE, True),  # it fails again; its bytes' quarantine row is the one above
    ]
    acknowledged = _db(env, "SELECT COUNT(*) FROM audit_events WHERE action = 'acknowledged'")
    assert acknowledged == [(2,)]
    states = _db(env, "SELECT uid, state FROM inbound_messages ORDER BY id")
    assert states == [(10, "matched"), (21, "matched"), (24, "quarantined")]
    named = {path for (path,) in _db(env, "SELECT stored_path FROM inbound_messages")}
    assert named == _raw_files(env)  # the copies' files are gone
    assert env.run("audit", "verify").code == 0


def test_the_same_failing_message_twice_in_a_group_does_not_block_the_mailbox(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its second quarantine row would break (Message-ID, sha256) uniqueness and roll the whole group back,
    on every catch-up again; the copy joins the first's quarantine row instead."""
    env, inbox, raws = _setup(make_env)
    _fail_on(inbox, monkeypatch, submission_id=1)
    group = [raws[0], raws[1], raws[0]]
    outcomes = inbox.ingest_group(_arrivals(group), inbox.store_raw(group), mailbox=MAILBOX)
    assert [d for d, _ in outcomes] == [Disposition.QUARANTINE, Disposition.PROCESSED, Disposition.QUARANTINE]
    assert _db(env, "SELECT last_uid FROM folder_cursors") == [(12,)]
    assert _db(env, "SELECT uid, state FROM inbound_messages ORDER BY id") == [
        (10, "quarantined"),
        (11, "matched"),
    ]
    # Later, on its own, in a transaction of its own: the same.
    again = inbox.quarantine_failure(
        raws[0], mailbox=MAILBOX, uidvalidity=UIDVALIDITY, uid=13, error=RuntimeError()
    )
    assert again == _db(env, "SELECT id FROM inbound_messages WHERE uid = 10")[0][0]


def test_an_acknowledgement_and_a_rejection_in_one_group_find_their_rows_read_once(
    make_env: Callable[..., Env],
) -> None:
    """The submissions and cases a group names are read with one query each (`NamedRows`); the second
    notice about a report sees the state the first left it in, and the rejection starts its clock. Each
    message's row is inserted once, in its final state (its id reserved), the group's audit events go
    in with one INSERT at the commit, and its submissions' open clocks are read with one query."""
    env, inbox, raws = _setup(make_env)
    original = EmailMessage()
    original["From"] = "reports@provider.example"
    original["Subject"] = "Support Plan MH-100001 [S-000001]"
    original["Message-ID"] = _message_id(1)
    returned = dwp.rejection(
        original,
        ["The report is not signed"],
        now=datetime.now(UTC),
        authserv_id=AUTHSERV,
        case_ref="MH-100001",
    )
    group = [*raws, returned.as_bytes()]
    with statements(inbox.engine) as seen:
        outcomes = inbox.ingest_group(_arrivals(group), inbox.store_raw(group), mailbox=MAILBOX)

    assert [d for d, _ in outcomes] == [Disposition.PROCESSED] * 4
    lookups = (starting(seen, "SELECT SUBMISSIONS."), starting(seen, "SELECT CASES."))
    assert lookups == (1, 1), seen
    assert seen["INSERT INTO INBOUND_MESSAGES"] == 4 and seen["UPDATE INBOUND_MESSAGES"] == 0, seen
    assert seen["INSERT INTO AUDIT_EVENTS"] == 1, seen
    assert starting(seen, "SELECT CLOCKS.") == 1, seen  # the group's open clocks, read ahead
    ids = _db(env, "SELECT id FROM inbound_messages ORDER BY uid")
    assert ids == [(1,), (2,), (3,), (4,)]
    assert dict(_db(env, "SELECT id, state FROM submissions")) == {
        1: "rejected",
        2: "acknowledged",
        3: "acknowledged",
    }
    clocks = _db(env, "SELECT submission_id, kind, state FROM clocks WHERE kind = 'correction'")
    assert clocks == [(1, "correction", "running")]
    assert env.run("audit", "verify").code == 0


def test_clocks_closed_but_not_yet_flushed_are_not_closed_again(make_env: Callable[..., Env]) -> None:
    """`close_clocks` queries without flushing first: a clock met earlier in the same transaction comes
    back from the query still open in the database, and must be recognised as met, not met twice."""
    env, inbox, _ = _setup(make_env, reports=1)
    with Session(inbox.engine) as session:
        sub = session.get(Submission, 1)
        assert sub is not None
        inbox.clocks.on_reports_sent(session, [sub], now=SENT)  # its acknowledgement and decision clocks
        session.commit()
    with Session(inbox.engine) as session:
        sub = session.get(Submission, 1)
        assert sub is not None
        inbox.clocks.on_reply(session, sub, at=SENT)  # the acknowledgement clock: met, not flushed
        inbox.clocks.on_rejected(session, sub, at=SENT)  # asks for it again, with the decision clock
        session.commit()
    events = _db(env, "SELECT action, entity_id FROM audit_events WHERE entity = 'clock' ORDER BY seq")
    clocks = dict(_db(env, "SELECT kind, state FROM clocks"))
    assert clocks == {"acknowledgement": "met", "decision": "met", "correction": "running"}
    assert [action for action, _ in events].count("clock-met") == 2, events
    assert env.run("audit", "verify").code == 0


def test_open_clocks_read_ahead_answer_for_the_group_until_a_rollback(make_env: Callable[..., Env]) -> None:
    """`read_open_clocks` (a catch-up group's submissions' clocks, one query): closing them asks nothing
    more, a clock started meanwhile is closed with the rest, and a rolled-back savepoint (whose clock
    rows are gone) makes the queries answer again."""
    env, inbox, _ = _setup(make_env, reports=2)
    with Session(inbox.engine) as session:
        subs = [session.get(Submission, number) for number in (1, 2)]
        assert all(subs)
        inbox.clocks.on_reports_sent(session, [s for s in subs if s], now=SENT)
        session.commit()
    with statements(inbox.engine) as seen, transaction(inbox.engine) as session:
        first, second = session.get(Submission, 1), session.get(Submission, 2)
        assert first is not None and second is not None
        read_open_clocks(session, [1, 2])
        inbox.clocks.on_rejected(session, first, at=SENT)  # meets two, starts the correction clock
        close_clocks(session, 1, None, ClockState.CANCELLED, at=SENT, why="test")  # the correction clock
        assert starting(seen, "SELECT CLOCKS.") == 1, seen
        with pytest.raises(RuntimeError), audit.savepoint(session):
            inbox.clocks.start(session, second, ClockKind.CORRECTION, at=SENT)
            raise RuntimeError("rolled back")
        inbox.clocks.on_reply(session, second, at=SENT)
        assert starting(seen, "SELECT CLOCKS.") == 2, seen  # asked again after the rollback
    states = _db(env, "SELECT submission_id, kind, state FROM clocks ORDER BY id")
    assert states == [
        (1, "acknowledgement", "met"),
        (1, "decision", "met"),
        (2, "acknowledgement", "met"),
        (2, "decision", "running"),
        (1, "correction", "cancelled"),
    ]
    assert env.run("audit", "verify").code == 0
