"""Encryption at rest with GnuPG (python-gnupg): stored report PDFs and raw inbound mail.

Every call runs the `gpg` binary as a subprocess and blocks (1 MB: ~35 ms to encrypt, ~15 ms to decrypt
without a passphrase, ~0.4 s with one). Async callers wrap each call in `asyncio.to_thread`.

Trust, decided once and documented in docs/sending.md:
- A recipient configured by its full fingerprint (40 or 64 hex digits) is *pinned*: the configuration
  itself says which key is meant. When every recipient is pinned, gpg runs with `--trust-model always`,
  so a key imported without signing it still works.
- A recipient configured any other way (an e-mail address, a key id) must resolve to exactly one key
  whose validity in the keyring is full or ultimate. Then, and in a mixed list, gpg's own trust
  checks apply to every key.
- Revoked, expired, disabled or invalid keys, and keys that cannot encrypt, are refused either way.

python-gnupg reports an untrusted or unusable key as ok=False with *empty* output rather than raising;
`encrypt` turns that (and any empty result) into CryptoError, so an empty file is never stored.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gnupg

from outbox.errors import CryptoError

_FINGERPRINT = re.compile(r"(?:0x)?([0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})")
_EMAIL = re.compile(r"[^<>\s@]+@[^<>\s@]+")
# gpg --with-colons field 2 ("validity"): see gnupg's doc/DETAILS.
_UNUSABLE = {"i": "invalid", "r": "revoked", "e": "expired", "d": "disabled", "n": "marked never valid"}
_TRUSTED = {"f", "u"}

# python-gnupg logs the first bytes of every gpg output chunk at DEBUG: after a decrypt that is the
# plaintext report. A DEBUG log level must never put health data in the journal.
logging.getLogger("gnupg").setLevel(logging.INFO)
# Its WARNING ("gpg returned a non-zero error code") and ERROR ("Error sending data", with a traceback,
# when gpg exits before reading the input) repeat what this module raises as CryptoError, once per gpg
# run: during a key outage they broke the daemon's promise of one line per outage. Only those are dropped.
_DUPLICATES = ("gpg returned a non-zero error code", "Error sending data")
logging.getLogger("gnupg").addFilter(lambda record: not str(record.msg).startswith(_DUPLICATES))


# gpg's plaintext scratch for a batch encrypt: a memory-backed folder keeps plaintext off the disk, and
# a catch-up's fsyncs of the encrypted files no longer wait on an ext4 journal full of that churn (a
# group of raw mail stored ~30 % faster). Larger batches than this go to the system's temporary folder.
MEMORY_FOLDER = Path("/dev/shm")  # noqa: S108 (only ever a parent for mkdtemp's own 0700 folder)
MEMORY_LIMIT = 64 * 1024 * 1024


def memory_scratch(size: int) -> str | None:
    """The memory-backed folder for a batch of `size` plaintext bytes, if there is a usable one and the
    batch fits; None: the system's temporary folder."""
    usable = MEMORY_FOLDER.is_dir() and os.access(MEMORY_FOLDER, os.W_OK | os.X_OK)
    return str(MEMORY_FOLDER) if usable and size <= MEMORY_LIMIT else None


@dataclass(frozen=True)
class _Recipient:
    configured: str
    fingerprint: str
    pinned: bool


class DocumentCrypto:
    """Encrypts to every configured recipient; decrypts with whichever secret key the home holds."""

    def __init__(
        self,
        home: str,
        recipients: tuple[str, ...],
        *,
        gpg_binary: str = "gpg",
        passphrase: str | None = None,
    ) -> None:
        if not recipients:
            raise CryptoError("no GnuPG recipients configured")
        if not Path(home).is_dir():
            raise CryptoError(f"GnuPG home {home} does not exist or is not a folder")
        try:
            self._gpg = gnupg.GPG(gnupghome=home, gpgbinary=gpg_binary)
        except (OSError, ValueError) as exc:
            raise CryptoError(f"cannot run the GnuPG binary {gpg_binary!r}") from exc
        self._gpg.encoding = "utf-8"
        self.home = home
        self.recipients = recipients
        self._passphrase = passphrase
        self._resolved: tuple[_Recipient, ...] | None = None

    @property
    def trust_by_pin(self) -> bool:
        """True when every recipient is a full fingerprint, so gpg's web of trust is not consulted."""
        return all(_FINGERPRINT.fullmatch(r.strip()) for r in self.recipients)

    def check(self) -> None:
        """Every recipient has exactly one usable, trusted-enough key; else CryptoError naming it."""
        self._resolved = tuple(self._resolve(r) for r in self.recipients)

    def _recipient_keys(self) -> tuple[_Recipient, ...]:
        if self._resolved is None:
            self._resolved = tuple(self._resolve(r) for r in self.recipients)
        return self._resolved

    def encrypt(self, data: bytes) -> bytes:
        """Binary OpenPGP message to all recipients; never returns an empty result."""
        resolved = self._recipient_keys()
        names = ", ".join(r.configured for r in resolved)
        try:
            result = self._gpg.encrypt(
                data, [r.fingerprint for r in resolved], armor=False, always_trust=self.trust_by_pin
            )
        except OSError as exc:
            # python-gnupg re-raises BrokenPipeError when gpg refuses a key and exits before reading all
            # of a large input: the same refusal as an empty result, found out earlier, without a status.
            raise CryptoError(
                f"gpg could not encrypt to {names}: it gave up before reading the input"
            ) from exc
        if not result.ok or not result.data:
            raise CryptoError(f"gpg could not encrypt to {names}: {result.status or 'no output'}")
        return bytes(result.data)

    def encrypt_many(self, items: Sequence[bytes]) -> list[bytes]:
        """Encrypt several documents with one gpg process (starting gpg is most of a small encrypt's cost).

        The plaintexts go into a fresh 0700 scratch folder that is removed before returning, as for
        `decrypt_many`: in memory (`memory_scratch`) when it can, else the system's temporary folder.
        All or nothing: if any output is missing or empty, CryptoError.
        """
        if len(items) <= 1:
            return [self.encrypt(data) for data in items]
        memory = memory_scratch(sum(map(len, items)))
        if memory is not None:
            try:
                return self._encrypt_files(items, memory)
            except (OSError, CryptoError):  # the memory folder full: the temporary folder says for sure
                pass
        return self._encrypt_files(items, None)

    def _encrypt_files(self, items: Sequence[bytes], place: str | None) -> list[bytes]:
        resolved = self._recipient_keys()
        names = ", ".join(r.configured for r in resolved)
        with tempfile.TemporaryDirectory(prefix="mailroom-", dir=place) as folder:  # created 0700
            inputs = [Path(folder, str(number)) for number in range(len(items))]
            for path, data in zip(inputs, items, strict=True):
                path.write_bytes(data)
            command = [self._gpg.gpgbinary, "--homedir", self.home, "--batch", "--yes", "--quiet", "--no-tty"]
            for recipient in resolved:
                command += ["--recipient", recipient.fingerprint]
            if self.trust_by_pin:
                command += ["--trust-model", "always"]
            status = self._run([*command, "--encrypt-files", *map(str, inputs)], b"")
            outputs = [path.with_name(f"{path.name}.gpg") for path in inputs]
            sealed = [out.read_bytes() if out.exists() else b"" for out in outputs]
        if not all(sealed):
            raise CryptoError(f"gpg could not encrypt to {names}: {status}")
        return sealed

    def decrypt(self, data: bytes, passphrase: str | None = None) -> bytes:
        """The plaintext; CryptoError for data that is not ours, damaged, or a wrong passphrase."""
        if not data:
            raise CryptoError("nothing to decrypt: the input is empty")
        secret = passphrase or self._passphrase
        # Without a passphrase gpg would try to start a pinentry (a daemon has no terminal) and fail a
        # second later; loopback mode fails at once with "need passphrase". With one, python-gnupg adds it.
        extra = None if secret else ["--pinentry-mode", "loopback"]
        try:
            result = self._gpg.decrypt(data, passphrase=secret, extra_args=extra)
        except OSError as exc:
            raise CryptoError(
                f"gpg could not decrypt in {self.home}: it gave up before reading the input "
                "(no usable secret key, or a passphrase is missing or wrong)"
            ) from exc
        if not result.ok:
            raise CryptoError(f"gpg could not decrypt in {self.home}: {result.status or 'unknown error'}")
        return bytes(result.data)

    def decrypt_many(self, blobs: Sequence[bytes]) -> list[bytes | CryptoError]:
        """Decrypt several documents with one gpg process (starting gpg is most of a decrypt's cost).

        The ciphertexts go into a fresh 0700 folder, gpg writes the plaintexts beside them, and the folder
        is removed before returning: plaintext is on disk only for the length of this call. A document
        that cannot be decrypted gets its own CryptoError; the others are unaffected.
        """
        if len(blobs) <= 1:
            return [self._decrypt_or_error(blob) for blob in blobs]
        with tempfile.TemporaryDirectory(prefix="mailroom-") as folder:  # created 0700
            inputs = [Path(folder, f"{number}.gpg") for number in range(len(blobs))]
            for path, blob in zip(inputs, blobs, strict=True):
                path.write_bytes(blob)
            status = self._run_decrypt_files(inputs)
            return [
                path.with_suffix("").read_bytes()
                if path.with_suffix("").exists()
                else CryptoError(f"gpg could not decrypt in {self.home}: {status}")
                for path in inputs
            ]

    def _decrypt_or_error(self, blob: bytes) -> bytes | CryptoError:
        try:
            return self.decrypt(blob)
        except CryptoError as exc:
            return exc

    def _run_decrypt_files(self, inputs: Sequence[Path]) -> str:
        command = [self._gpg.gpgbinary, "--homedir", self.home, "--batch", "--yes", "--quiet", "--no-tty"]
        command += ["--pinentry-mode", "loopback"]
        if self._passphrase:
            command += ["--passphrase-fd", "0"]
        command += ["--decrypt-files", *map(str, inputs)]
        return self._run(command, f"{self._passphrase}\n".encode() if self._passphrase else b"")

    @staticmethod
    def _run(command: list[str], stdin: bytes) -> str:
        """Run gpg over files; returns the last line it printed (the reason, if files are missing)."""
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run gpg ({type(exc).__name__})"
        # gpg's own lines name files and errors, never content; keep the last one as the reason.
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[-1][:200] if lines else f"gpg exited {done.returncode}"

    def _resolve(self, configured: str) -> _Recipient:
        pinned = _FINGERPRINT.fullmatch(configured.strip())
        query = _query(configured, pinned)
        keys: list[dict[str, Any]] = list(self._gpg.list_keys(keys=[query]))
        if not keys:
            raise CryptoError(f"GnuPG recipient {configured}: no such public key in {self.home}")
        if len(keys) > 1:
            raise CryptoError(
                f"GnuPG recipient {configured}: matches {len(keys)} keys; configure the fingerprint"
            )
        key = keys[0]
        validity = str(key.get("trust", ""))
        if validity in _UNUSABLE:
            raise CryptoError(f"GnuPG recipient {configured}: key is {_UNUSABLE[validity]}")
        if "E" not in str(key.get("cap", "")):
            raise CryptoError(f"GnuPG recipient {configured}: key has no usable encryption subkey")
        if not self.trust_by_pin and validity not in _TRUSTED:
            raise CryptoError(
                f"GnuPG recipient {configured}: key is not trusted (validity {validity or '?'}); "
                "sign it in this keyring or configure every recipient by full fingerprint"
            )
        return _Recipient(configured=configured, fingerprint=str(key["fingerprint"]), pinned=bool(pinned))


def _query(configured: str, pinned: re.Match[str] | None) -> str:
    if pinned:
        return pinned.group(1).upper()
    value = configured.strip()
    # "<addr>" makes gpg match the whole e-mail address, not any user id containing the text.
    if _EMAIL.fullmatch(value):
        return f"<{value}>"
    return value
