"""Issue 13, part 4: a catch-up has gpg encrypt the next group's raw messages in a thread (gpg then takes
the other core) while it ingests this group, and writes a group's files only once the group before has
committed, so the journal still names one uncommitted group at most (`Inbox.reclaim_raw`).

Real Dovecot, real gpg, SQLite on disk: three groups of 25 and a part group.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailroom.daemon.app import build
from mailroom.daemon.watcher import STORE_GROUP
from mailroom.edges.configfile import load_settings
from tests.conftest import Env
from tests.integration.conftest import own_folders
from tests.support.dovecot import ALICE, Dovecot

pytestmark = pytest.mark.integration

MESSAGES = 3 * STORE_GROUP + 7


def _message(number: int) -> bytes:
    message = EmailMessage()
    message["From"] = "Someone <someone@example.org>"
    message["To"] = "reports@provider.example"
    message["Subject"] = f"Newsletter {number}"
    message["Message-ID"] = f"<overlap-{number}@example.org>"
    message["Date"] = "Mon, 23 Nov 2026 09:00:00 +0000"
    message.set_content(f"Issue {number} of a newsletter about nothing of ours.\n")
    return message.as_bytes()


def _rows(env: Env) -> list[tuple[str, str]]:
    with sqlite3.connect(env.db_path) as db:
        return db.execute("SELECT stored_path, raw_sha256 FROM inbound_messages ORDER BY uid").fetchall()


def test_the_next_group_is_sealed_in_a_thread_and_written_only_after_this_one_commits(
    make_daemon_env: Callable[..., Env], dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, folders = own_folders(dovecot, "O")
    env = make_daemon_env(mailbox=dovecot, imap=folders)
    parts = build(load_settings(env.config))
    assert parts.watcher is not None and parts.inbox.documents.encrypted
    for number in range(MESSAGES):
        dovecot.append(ALICE, folder, _message(number))

    sealed_in: list[int] = []
    committed_before_write: list[int] = []
    seal, store = parts.inbox.seal_raw, parts.inbox.store_raw

    def sealing(raws: Sequence[bytes]) -> list[bytes]:
        sealed_in.append(threading.get_ident())
        return seal(raws)

    def storing(raws: Sequence[bytes], **options: Any) -> Any:
        assert options.get("sealed") is not None, "the group was encrypted again"
        committed_before_write.append(len(_rows(env)))
        return store(raws, **options)

    monkeypatch.setattr(parts.inbox, "seal_raw", sealing)
    monkeypatch.setattr(parts.inbox, "store_raw", storing)
    try:
        assert parts.watcher.catch_up() == MESSAGES
    finally:
        parts.watcher.mailbox.close()

    groups = -(-MESSAGES // STORE_GROUP)
    # Each group is written once the one before has committed: never two groups' files uncommitted.
    assert committed_before_write == [STORE_GROUP * k for k in range(groups)]
    # One sealing a group, plus the empty one asked for after the last; none on the catch-up's thread.
    assert len(sealed_in) == groups + 1
    assert threading.get_ident() not in sealed_in
    # Every row names its own message's file, encrypted (gpg reads it back to the very bytes), and no file
    # is left over that no row names, nor a journal.
    rows = _rows(env)
    assert len(rows) == MESSAGES
    for stored_path, raw_sha256 in rows:
        assert hashlib.sha256(parts.inbox.documents.get(Path(stored_path))).hexdigest() == raw_sha256
    inbound = env.root / "documents" / "inbound"
    assert {str(path) for path in inbound.iterdir()} == {path for path, _ in rows}
    assert not list((env.root / "documents").glob(".journal-*"))
