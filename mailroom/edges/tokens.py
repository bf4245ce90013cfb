"""OAuth2 access tokens for XOAUTH2 (Microsoft 365 and other relays), from an operator's command.

The command prints the token on its first line and, optionally, its lifetime in seconds on the second.
The token is cached until shortly before it expires and never logged; a failing command is one line that
names the command, not its output (which may hold a token).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from mailroom.core.errors import ConfigError

DEFAULT_LIFETIME = 300.0
MARGIN = 60.0


class TokenCommand:
    def __init__(
        self, argv: Sequence[str], *, source: str, key: str, clock: Callable[[], float] = time.monotonic
    ):
        self.argv = tuple(argv)
        self.source = source
        self.key = key
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires:
                self._token, lifetime = self._run()
                self._expires = self._clock() + max(lifetime - MARGIN, 1.0)
            return self._token

    def forget(self) -> None:
        """The server refused the cached token (revoked before it expired): the next call runs the command."""
        with self._lock:
            self._token = None

    def _run(self) -> tuple[str, float]:
        name = self.argv[0] if self.argv else "?"
        try:
            done = subprocess.run(self.argv, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(self.source, self.key, f"cannot run {name}: {type(exc).__name__}") from None
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines or not lines[0].strip():
            raise ConfigError(self.source, self.key, f"{name} exited {done.returncode} without a token")
        lifetime = DEFAULT_LIFETIME
        if len(lines) > 1 and lines[1].strip().isdigit():
            lifetime = float(lines[1].strip())
        return lines[0].strip(), lifetime
