"""Stored documents (report PDFs, raw inbound mail) on disk: encrypted, private, written atomically.

Files are 0600 in 0700 folders and named by a random token, never by anything about the customer. A file
is fsynced and renamed into place before the database row that names it is committed, so a crash leaves
at worst an orphan file (which `doctor` reports), never a row pointing at nothing.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mailroom.core.errors import DocumentUnreadable


class Cipher(Protocol):
    def encrypt(self, data: bytes) -> bytes: ...
    def encrypt_many(self, items: Sequence[bytes]) -> list[bytes]: ...
    def decrypt(self, data: bytes) -> bytes: ...
    def decrypt_many(self, blobs: Sequence[bytes]) -> Sequence[bytes | Exception]: ...


class PlainCipher:
    """For `[gpg] encrypt_at_rest = false` (test systems only): stores bytes as they are."""

    def encrypt(self, data: bytes) -> bytes:
        return data

    def encrypt_many(self, items: Sequence[bytes]) -> list[bytes]:
        return list(items)

    def decrypt(self, data: bytes) -> bytes:
        return data

    def decrypt_many(self, blobs: Sequence[bytes]) -> list[bytes | Exception]:
        return list(blobs)


@dataclass(frozen=True)
class StoredFile:
    path: Path
    sha256: str
    size: int


class DocumentStore:
    def __init__(self, root: Path, cipher: Cipher, *, encrypted: bool) -> None:
        self.root = root
        self.cipher = cipher
        self.encrypted = encrypted

    def put(self, data: bytes, *, kind: str) -> StoredFile:
        """Encrypt and write `data`; returns where it went and the sha256 of the plain bytes."""
        return self._write([data], [self.cipher.encrypt(data)], kind)[0]

    def put_many(self, items: Sequence[bytes], *, kind: str, journal: str | None = None) -> list[StoredFile]:
        """`put` for several at once: one gpg run for all of them (CryptoError if any fails).

        With `journal`, the files' names are first written (fsynced) to the journal of that name, so a
        crash before the rows naming them commit leaves no file that `reclaim` cannot find."""
        return self._write(items, self.cipher.encrypt_many(items), kind, journal)

    def journaled(self, journal: str) -> list[Path]:
        """The files the journal names (the last `put_many` with it that `close_journal` did not close)."""
        try:
            text = self._journal(journal).read_text()
        except FileNotFoundError:
            return []
        return [Path(line) for line in text.splitlines() if line]

    def close_journal(self, journal: str) -> None:
        """The rows naming the journal's files are committed (or the files are deleted): forget them."""
        self._journal(journal).unlink(missing_ok=True)

    def _journal(self, name: str) -> Path:
        ensure_private_dir(self.root)
        return self.root / f".journal-{hashlib.sha256(name.encode()).hexdigest()[:16]}"

    def _new_path(self, kind: str) -> Path:
        suffix = ".gpg" if self.encrypted else ".bin"
        return self.root / kind / f"{secrets.token_hex(16)}{suffix}"

    def _write(
        self, items: Sequence[bytes], sealed: Sequence[bytes], kind: str, journal: str | None = None
    ) -> list[StoredFile]:
        """The sealed documents written under new names (journaled first, with `journal`); the stored
        files, each with the sha256 and size of its plain bytes."""
        paths = [self._new_path(kind) for _ in items]
        if journal is not None:
            write_private(self._journal(journal), "".join(f"{path}\n" for path in paths).encode())
        for folder in {path.parent for path in paths}:
            ensure_private_dir(folder)
        write_private_many(list(zip(paths, sealed, strict=True)))
        return [
            StoredFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
            for data, path in zip(items, paths, strict=True)
        ]

    def get(self, path: Path) -> bytes:
        return self.cipher.decrypt(path.read_bytes())

    def get_many(self, paths: Sequence[Path]) -> list[bytes | DocumentUnreadable]:
        """Several documents at once (one gpg run); a missing or undecryptable one is its own error."""
        blobs: list[bytes] = []
        missing: dict[int, DocumentUnreadable] = {}
        for number, path in enumerate(paths):
            try:
                blobs.append(path.read_bytes())
            except OSError as exc:
                missing[number] = DocumentUnreadable(f"stored document unreadable: {exc.strerror}")
        plain = iter(self.cipher.decrypt_many(blobs))
        return [missing[n] if n in missing else _readable(next(plain)) for n in range(len(paths))]

    @staticmethod
    def delete(path: Path) -> None:
        path.unlink(missing_ok=True)


def _readable(plain: bytes | Exception) -> bytes | DocumentUnreadable:
    # The cipher's own error type (outbox.errors.CryptoError for gpg) stays behind this module's boundary.
    if isinstance(plain, Exception):
        return plain if isinstance(plain, DocumentUnreadable) else DocumentUnreadable(str(plain))
    return plain


def ensure_private_dir(folder: Path) -> None:
    """Create `folder` (and parents) as 0700; tighten an existing one that is looser."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder, fsync, rename, fsync the folder: the file is whole
    or absent, and its name survives a crash."""
    write_private_many([(path, data)])


def temporary_for(path: Path) -> Path:
    """Where `write_private_many` writes `path` before renaming it into place."""
    return path.with_name(f".{path.name}.tmp")


def write_private_many(files: Sequence[tuple[Path, bytes]]) -> None:
    """0600 files written via temporaries, made durable together: all written, then all fsynced, then
    all renamed, then each folder fsynced once. On ext4 the first fsync commits the journal with every
    file's data in it, so the rest cost little: a catch-up's group of raw messages waited on one disk
    flush a file before. Each file is still whole or absent, and none is named before all are synced."""
    made: list[Path] = []  # only the temporaries this call created are ever removed
    try:
        handles = []
        try:
            for path, data in files:
                tmp = temporary_for(path)
                handle = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
                made.append(tmp)
                handles.append(handle)
                handle.write(data)
                handle.flush()
            for handle in handles:
                os.fsync(handle.fileno())
        finally:
            for handle in handles:
                handle.close()
        for tmp, (path, _) in zip(made, files, strict=True):
            tmp.replace(path)
    except BaseException:
        for tmp in made:
            tmp.unlink(missing_ok=True)
        raise
    for folder in {path.parent for path, _ in files}:
        fsync_folder(folder)


def fsync_folder(folder: Path) -> None:
    """fsync a folder: the names created or renamed in it survive a crash."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
