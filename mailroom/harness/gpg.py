"""Throwaway GnuPG homes for the harness, tests and benches: short paths, generated keys, agents killed.

By default the home lives directly under /tmp (`/tmp/gXXXXXXXX`), because gpg-agent puts its sockets inside
the home when there is no /run/user/$UID, and a socket path over ~108 bytes breaks gpg (harness.md §6); a
given `path` must be short for the same reason (MAX_HOME_LENGTH).
Passphrase caching is off (cache TTL 0), so a wrong-passphrase test fails every time, not only when it
happens to run first, and key derivation is cheap. `close()` kills the agent and removes the folder.

    with GpgHome() as home:
        key = home.generate_key("records@provider.example")
        crypto = DocumentCrypto(str(home.path), (key.fingerprint,))
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import gnupg

# No passphrase caching (a wrong passphrase must fail every time), and the smallest S2K count: a
# passphrase-protected key then takes 0.06 s to make and use instead of 2.8 s. Test homes only.
AGENT_CONF = "allow-loopback-pinentry\ns2k-count 65536\n"
NO_CACHE = "default-cache-ttl 0\nmax-cache-ttl 0\n"
# The longest socket gpg-agent makes in the home is S.gpg-agent.browser; unix socket paths end at 108 bytes.
MAX_HOME_LENGTH = 85


@dataclass(frozen=True)
class GpgKey:
    fingerprint: str
    email: str
    passphrase: str | None


KeyAlgorithm = Literal["cv25519", "rsa3072"]
KEY_ALGORITHMS: dict[str, dict[str, object]] = {
    "cv25519": {
        "key_type": "EDDSA",
        "key_curve": "ed25519",
        "subkey_type": "ECDH",
        "subkey_curve": "cv25519",
    },
    "rsa3072": {"key_type": "RSA", "key_length": 3072, "subkey_type": "RSA", "subkey_length": 3072},
}


class GpgHome:
    """A temporary GNUPGHOME; usable as a context manager from sync code, async code or a script."""

    def __init__(
        self, *, prefix: str = "g", cache_passphrases: bool = False, path: Path | None = None
    ) -> None:
        if path is not None and len(str(path)) > MAX_HOME_LENGTH:
            raise ValueError(f"GnuPG home {path} is too long for gpg-agent's sockets (> {MAX_HOME_LENGTH})")
        if path is not None:
            path.mkdir(mode=0o700, parents=True)
        self.path = path or Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.path.chmod(0o700)
        conf = AGENT_CONF if cache_passphrases else AGENT_CONF + NO_CACHE
        (self.path / "gpg-agent.conf").write_text(conf, encoding="ascii")
        self.gpg = gnupg.GPG(gnupghome=str(self.path))

    def generate_key(
        self,
        email: str,
        *,
        passphrase: str | None = None,
        name: str = "MHSS Test",
        algorithm: KeyAlgorithm = "cv25519",
    ) -> GpgKey:
        """An ed25519 signing key with a cv25519 encryption subkey (0.04 s), or an RSA-3072 key and
        subkey (GnuPG 2.2's default, Debian 12's: ~1 s to make, half the CPU a document to encrypt to);
        ultimately trusted here."""
        options: dict[str, object] = {
            **KEY_ALGORITHMS[algorithm],
            "name_real": name,
            "name_email": email,
            "expire_date": 0,
        }
        if passphrase is None:
            options["no_protection"] = True
        else:
            options["passphrase"] = passphrase
        result = self.gpg.gen_key(self.gpg.gen_key_input(**options))
        if not result.fingerprint:
            raise RuntimeError(f"gpg could not generate a key in {self.path}: {result.status}")
        return GpgKey(fingerprint=str(result.fingerprint), email=email, passphrase=passphrase)

    def export_public(self, fingerprint: str) -> str:
        return str(self.gpg.export_keys(fingerprint))

    def import_keys(self, armored: str) -> tuple[str, ...]:
        """Import keys as an operator would: present, but not trusted until someone says so."""
        result = self.gpg.import_keys(armored)
        return tuple(str(f) for f in result.fingerprints)

    def trust(self, fingerprint: str, level: str = "TRUST_ULTIMATE") -> None:
        self.gpg.trust_keys([fingerprint], level)

    def kill_agent(self) -> None:
        kill_agent(self.path)

    def close(self) -> None:
        kill_agent(self.path)
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> GpgHome:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def kill_agent(home: Path) -> None:
    """Stop the gpg-agent that any use of `home` may have started (it outlives the test otherwise)."""
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
