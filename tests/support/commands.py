"""The CLI as an admin's shell runs it, for tests of the command server: `mailroom` in a child process
(or `launch.delegate` in this one) with its own stdout and stderr."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mailroom.cli import launch
from tests.support.daemon import ROOT


def socket_path() -> Path:
    """A command socket in a short folder of its own: a Unix socket path holds at most 107 bytes."""
    return Path(tempfile.mkdtemp(prefix="mrcs-")) / "command.sock"


def mailroom(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailroom", "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def delegated(argv: Sequence[str], scratch: Path) -> tuple[int | None, str, str]:
    """`launch.delegate(argv)` with this process's stdout and stderr pointed at files for the call:
    the exit code (None when the command server did not take the command) and what the worker printed."""
    out_file, err_file = scratch / "delegated.out", scratch / "delegated.err"
    saved = [os.dup(1), os.dup(2)]
    try:
        with out_file.open("wb") as out, err_file.open("wb") as err:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            code = launch.delegate(argv)
    finally:
        for target, fd in zip((1, 2), saved, strict=True):
            os.dup2(fd, target)
            os.close(fd)
    return code, out_file.read_text(), err_file.read_text()
