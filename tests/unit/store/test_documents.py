"""The document store writes a group of files durably and privately: every file whole, 0600 in 0700
folders, no temporary left behind, the journal naming each before any exists."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from mailroom.store.documents import DocumentStore, PlainCipher, write_private_many


def test_a_group_is_written_whole_private_and_journaled(tmp_path: Path) -> None:
    store = DocumentStore(tmp_path / "documents", PlainCipher(), encrypted=False)
    items = [f"message {n}\n".encode() * (n + 1) for n in range(7)]
    stored = store.put_many(items, kind="inbound", journal="imap:box")
    assert [f.sha256 for f in stored] == [hashlib.sha256(data).hexdigest() for data in items]
    assert [f.path.read_bytes() for f in stored] == items
    assert store.journaled("imap:box") == [f.path for f in stored]
    folder = tmp_path / "documents" / "inbound"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.path.stat().st_mode) for f in stored} == {0o600}
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.path.name for f in stored)  # no .tmp
    store.close_journal("imap:box")
    assert store.journaled("imap:box") == []


def test_a_group_that_cannot_be_written_leaves_no_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"x")
    (tmp_path / ".taken.tmp").write_bytes(b"someone else's")  # O_EXCL: the third file cannot be made
    files = [(tmp_path / "a"), (tmp_path / "b"), (tmp_path / "taken")]
    with pytest.raises(FileExistsError):
        write_private_many([(path, b"data") for path in files])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".taken.tmp", "taken"]
    assert (tmp_path / ".taken.tmp").read_bytes() == b"someone else's"
