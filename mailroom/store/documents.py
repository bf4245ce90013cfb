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
        return self._write(data, self.cipher.encrypt(data), kind)

    def put_many(self, items: Sequence[bytes], *, kind: str) -> list[StoredFile]:
        """`put` for several at once: one gpg run for all of them (CryptoError if any fails)."""
        sealed = self.cipher.encrypt_many(items)
        return [self._write(data, blob, kind) for data, blob in zip(items, sealed, strict=True)]

    def _write(self, data: bytes, blob: bytes, kind: str) -> StoredFile:
        folder = self.root / kind
        ensure_private_dir(folder)
        suffix = ".gpg" if self.encrypted else ".bin"
        path = folder / f"{secrets.token_hex(16)}{suffix}"
        write_private(path, blob)
        return StoredFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))

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
    """Write via a temporary file in the same folder, fsync, rename: the file is whole or absent."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
