"""`mailroom --config CONFIG run` as a child process, as systemd would start it, for tests and benches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """The daemon in a process of its own (so it can be killed with -9), its output appended to `log`."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "mailroom", "--config", str(config), "run"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
