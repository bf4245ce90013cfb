"""Issue 13, part 4: a catch-up stores the next group (one gpg run, its files written and fsynced) in a
thread and, when it is long, reads it in a worker process, while it ingests this group.

What must still hold: every raw file is named by a committed row or by a journal at every moment, so a
kill -9 leaves nothing `reclaim_raw` cannot find (two groups' files may now wait at once, each named in
its own journal); each message is stored once and its file decrypts to its very bytes; the Readings the
worker made are the ones the daemon would have made. Real Dovecot, real gpg, SQLite on disk.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from mailroom.daemon.app import Parts, build
from mailroom.daemon.watcher import STORE_GROUP
from mailroom.edges.configfile import load_settings
from mailroom.service.inbound import Arrival
from mailroom.service.reading import Reading
from mailroom.store.documents import temporary_for
from tests.conftest import Env
from tests.integration.conftest import own_folders
from tests.support.busy import inbound_message
from tests.support.dovecot import ALICE, Dovecot

pytestmark = pytest.mark.integration

MESSAGES = 3 * STORE_GROUP + 7


def _rows(env: Env) -> list[tuple[str, str]]:
    with sqlite3.connect(env.db_path) as db:
        return db.execute("SELECT stored_path, raw_sha256 FROM inbound_messages ORDER BY uid").fetchall()


def _journaled(env: Env) -> set[str]:
    """The files the journals name, and their temporaries: a group still being stored ahead has some
    under those names, which the reclaim deletes too."""
    names: set[str] = set()
    for journal in (env.root / "documents").glob(".journal-*"):
        paths = [Path(line) for line in journal.read_text().splitlines() if line]
        names.update(str(path) for path in paths)
        names.update(str(temporary_for(path)) for path in paths)
    return names


def _files(env: Env) -> set[str]:
    inbound = env.root / "documents" / "inbound"
    return {str(path) for path in inbound.iterdir()} if inbound.is_dir() else set()


@pytest.fixture
def rig(make_daemon_env: Callable[..., Env], dovecot: Dovecot) -> tuple[Env, Parts, str]:
    folder, folders = own_folders(dovecot, "O")
    env = make_daemon_env(mailbox=dovecot, imap=folders)
    parts = build(load_settings(env.config))
    assert parts.watcher is not None and parts.inbox.documents.encrypted
    return env, parts, folder


def test_a_long_catch_up_stores_and_reads_ahead_and_every_file_is_always_accounted_for(
    rig: tuple[Env, Parts, str], dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, parts, folder = rig
    assert parts.watcher is not None
    for number in range(MESSAGES):
        dovecot.append(ALICE, folder, inbound_message(number))
    stored_in: list[int] = []
    unaccounted: list[set[str]] = []
    given: list[Sequence[Reading] | None] = []
    store, ingest_group = parts.inbox.store_raw, parts.inbox.ingest_group

    def storing(raws: Sequence[bytes], **options: Any) -> Any:
        stored_in.append(threading.get_ident())
        return store(raws, **options)

    def ingesting(arrivals: Sequence[Arrival], stored: Any, **options: Any) -> Any:
        # Files first, then the journals, then the committed rows: a group commits before its journal
        # closes, so nothing is missed between the reads. A group stored ahead (in the thread or in the
        # worker) is named by its journal before its first file is written, and may still be writing.
        files, journaled = _files(env), _journaled(env)
        unaccounted.append(files - journaled - {path for path, _ in _rows(env)})
        readings = options.get("readings")
        given.append(readings)
        if readings is not None:  # the worker's reading is the daemon's own
            assert list(readings) == [parts.inbox.read(arrival.raw) for arrival in arrivals]
        return ingest_group(arrivals, stored, **options)

    monkeypatch.setattr(parts.inbox, "store_raw", storing)
    monkeypatch.setattr(parts.inbox, "ingest_group", ingesting)
    progress: list[int] = []  # the daemon beats the inbox heartbeat here (the systemd watchdog's food)
    parts.watcher.progress = lambda: progress.append(len(_rows(env)))
    try:
        assert parts.watcher.catch_up() == MESSAGES
    finally:
        parts.watcher.mailbox.close()

    groups = -(-MESSAGES // STORE_GROUP)
    # The first group is stored by the daemon's thread; the rest, once the workers are up, by a worker.
    assert len(stored_in) == 1 and threading.get_ident() not in stored_in
    assert progress == [min(MESSAGES, STORE_GROUP * k) for k in range(1, groups + 1)]  # after each commit
    assert unaccounted == [set()] * groups
    # The first group is read here while the worker starts; the rest were read by it.
    assert given[0] is None and all(readings is not None for readings in given[1:])
    rows = _rows(env)
    assert len(rows) == MESSAGES
    for stored_path, raw_sha256 in rows:
        assert hashlib.sha256(parts.inbox.documents.get(Path(stored_path))).hexdigest() == raw_sha256
    assert _files(env) == {path for path, _ in rows}
    assert not list((env.root / "documents").glob(".journal-*"))


def test_two_groups_stored_and_never_committed_are_both_reclaimed(
    rig: tuple[Env, Parts, str], dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    """What a kill -9 leaves when it comes while one group is ingested and the next is stored."""
    env, parts, folder = rig
    watcher = parts.watcher
    assert watcher is not None
    left = [
        parts.inbox.store_raw([inbound_message(n) for n in range(3)], journal=watcher._journal(0)),
        parts.inbox.store_raw([inbound_message(n) for n in range(3, 5)], journal=watcher._journal(1)),
    ]
    assert _files(env) == {str(f.path) for files in left for f in files}
    dovecot.append(ALICE, folder, inbound_message(99))
    caplog.set_level("INFO")
    try:
        assert watcher.catch_up() == 1
    finally:
        watcher.mailbox.close()
    assert _files(env) == {path for path, _ in _rows(env)} and len(_rows(env)) == 1
    assert not list((env.root / "documents").glob(".journal-*"))
    assert any("removed 5 raw file(s)" in record.getMessage() for record in caplog.records)


def test_workers_killed_mid_catch_up_leave_the_daemon_to_store_and_read_and_nothing_is_lost(
    rig: tuple[Env, Parts, str], dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 of the workers (the OOM killer) while a group is ingested: the groups they were storing
    and reading are reclaimed (what they wrote goes) and stored and read by the daemon; every message is
    ingested once, every file is named by its row, and one warning says so."""
    env, parts, folder = rig
    assert parts.watcher is not None
    for number in range(MESSAGES):
        dovecot.append(ALICE, folder, inbound_message(number))
    ingest_group = parts.inbox.ingest_group
    ingested: list[int] = []

    def ingesting(arrivals: Sequence[Arrival], stored: Any, **options: Any) -> Any:
        ingested.append(len(arrivals))
        if len(ingested) == 2:  # the workers have the third group by now
            for child in multiprocessing.active_children():
                os.kill(child.pid or 0, signal.SIGKILL)
        return ingest_group(arrivals, stored, **options)

    parts.inbox.ingest_group = ingesting  # type: ignore[method-assign]
    caplog.set_level("WARNING")
    try:
        assert parts.watcher.catch_up() == MESSAGES
    finally:
        parts.watcher.mailbox.close()
    rows = _rows(env)
    assert len(rows) == MESSAGES and sum(ingested) == MESSAGES
    assert _files(env) == {path for path, _ in rows}
    for stored_path, raw_sha256 in rows:
        assert hashlib.sha256(parts.inbox.documents.get(Path(stored_path))).hexdigest() == raw_sha256
    assert not list((env.root / "documents").glob(".journal-*"))
    said = [r.getMessage() for r in caplog.records if r.name == "mailroom.daemon.catchup_workers"]
    assert len(said) == 1 and "the rest of this catch-up is read and stored in the daemon" in said[0], said


def test_the_daemon_catches_up_with_its_reading_worker_from_the_installed_command(
    rig: tuple[Env, Parts, str], dovecot: Dovecot
) -> None:
    """`mailroom run --once` as systemd starts it (the installed entry point, a new process): the spawned
    worker starts from that script without running it again, reads, and goes with the catch-up."""
    env, _, folder = rig
    for number in range(MESSAGES):
        dovecot.append(ALICE, folder, inbound_message(number))
    command = [str(Path(sys.executable).with_name("mailroom")), "--config", str(env.config), "run", "--once"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "catch-up worker:" not in done.stderr
    assert "a long catch-up; reading and storing ahead in worker processes" in done.stderr
    assert len(_rows(env)) == MESSAGES
    assert _files(env) == {path for path, _ in _rows(env)}
