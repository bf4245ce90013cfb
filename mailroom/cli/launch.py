"""The `mailroom` entry point: hand the command to the running daemon's command server when there is one
(`[daemon] command_socket`), else run it in this process.

Why: a command's own work is milliseconds, but starting Python with SQLAlchemy, the models, pdfplumber
and gpg costs most of a second of CPU, and four admins' commands beside a busy daemon on two cores share
that (issue 12: every command in under 2 s). The command server (mailroom/cli/server.py, started by the
daemon) has all of that imported and forks a worker per command, as Mercurial's `chg` does. This module
imports only the standard library, so handing a command over costs a few milliseconds.

The worker takes this process's stdin, stdout, stderr and working directory (passed as file descriptors),
its environment and umask, runs the same click command, and sends back the exit code. It refuses, and
the command runs here as before, when it could see anything differently from this process: another
user, other code (an upgrade not yet restarted), or a file named on the command line that is not the
same file where it runs (systemd's PrivateTmp or ProtectHome hide paths from the daemon's processes).
`MAILROOM_IN_PROCESS=1` always runs here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from mailroom.cli.wire import GO, connect, encode_request

CONFIG_ENV = "MAILROOM_CONFIG"
DEFAULT_CONFIG = "/etc/mailroom/mailroom.toml"
IN_PROCESS_ENV = "MAILROOM_IN_PROCESS"
# The daemon itself, the harness and demo (which start servers), schema changes and shell completion
# always run in the process that asks.
IN_PROCESS = frozenset({"run", "harness", "demo", "db", "completion"})
ROOT_FLAGS_IN_PROCESS = frozenset({"-h", "--help", "--version"})
PACKAGES = ("mailroom", "parsers", "outbox")
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
HANDSHAKE_SECONDS = 10.0  # for the worker's first answer; the command itself may take as long as it takes


def main() -> NoReturn:
    code = delegate(sys.argv[1:])
    if code is None:
        from mailroom.cli.main import main as in_process

        in_process()
    sys.exit(code)


def delegate(argv: Sequence[str]) -> int | None:
    """The command's exit code from the command server, or None to run it in this process."""
    if os.environ.get(IN_PROCESS_ENV):
        return None
    config, command = split_root_options(argv)
    if command is None or command in IN_PROCESS:
        return None
    config_file = config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    address = socket_path(Path(config_file))
    if address is None:
        return None
    connection = connect(address)
    if connection is None:
        return None
    with connection:
        return _converse(connection, argv, config_file)


def split_root_options(argv: Sequence[str]) -> tuple[str | None, str | None]:
    """(`--config` value, the command's name) from the root group's options; (None, None) where the
    root group itself answers (`--help`, `--version`) or the words do not parse here."""
    config: str | None = None
    words = iter(argv)
    for word in words:
        if word in ROOT_FLAGS_IN_PROCESS:
            return None, None
        if word in ("-c", "--config"):
            config = next(words, None)
            if config is None:
                return None, None
        elif word.startswith("--config="):
            config = word.partition("=")[2]
        elif word.startswith("-c") and len(word) > 2:
            config = word[2:]
        elif word.startswith("-"):
            return None, None  # an option click will explain
        else:
            return config, word
    return None, None


def socket_path(config_file: Path) -> Path | None:
    """`[daemon] command_socket` as the config spells it; None if unset or the file does not read
    (then the command runs here and says what is wrong)."""
    import tomllib

    try:
        data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        value = data.get("daemon", {}).get("command_socket", "")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else config_file.parent / path


def code_fingerprint() -> str:
    """Which code this is: the version, where it lives and its newest source file. A command server
    started before an upgrade has another and refuses, so no command runs on old code."""
    from mailroom import __version__

    root = Path(__file__).resolve().parents[2]
    newest = 0
    for package in PACKAGES:
        for folder, _dirs, files in os.walk(root / package):
            for name in files:
                if name.endswith(".py"):
                    newest = max(newest, Path(folder, name).stat().st_mtime_ns)
    return f"{__version__}:{root}:{newest}"


def named_files(argv: Sequence[str], config_file: str) -> list[tuple[str, int, int]]:
    """(word, device, inode) for every word of the command line that names an existing file or folder
    here, and for the folder of each path-like word: the worker checks it sees the same ones."""
    found: list[tuple[str, int, int]] = []
    for word in [*argv, config_file]:
        value = word.partition("=")[2] if word.startswith("-") else word
        if not value:
            continue
        candidates = [value]
        if os.sep in value:
            candidates.append(str(Path(value).parent))
        for candidate in candidates:
            try:
                stat = Path(candidate).stat()
            except (OSError, ValueError):
                continue
            found.append((candidate, stat.st_dev, stat.st_ino))
    return found


def _converse(connection: socket.socket, argv: Sequence[str], config_file: str) -> int | None:
    umask = os.umask(0o077)
    os.umask(umask)
    request = {
        "argv": list(argv),
        "env": dict(os.environ),
        "umask": umask,
        "code": code_fingerprint(),
        "files": named_files(argv, config_file),
    }
    try:
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # a working folder this user cannot open: the command runs here, where it is
        return None
    fds = [_usable_fd(fd) for fd in (0, 1, 2)]
    try:
        socket.send_fds(connection, [encode_request(request)], [*fds, cwd])
    except OSError:
        return None
    finally:
        os.close(cwd)
        for own, fd in zip((0, 1, 2), fds, strict=True):
            if fd != own:
                os.close(fd)
    return _await_exit(connection)


def _usable_fd(fd: int) -> int:
    """`fd` if it is open, else /dev/null in its place (a daemon-less CI job may start with no stdin)."""
    try:
        os.fstat(fd)
    except OSError:
        return os.open(os.devnull, os.O_RDWR)
    return fd


def _await_exit(connection: socket.socket) -> int | None:
    """The worker's answer. Until this side says "go", nothing has run there, so a server that does not
    answer within HANDSHAKE_SECONDS, refuses, or goes away leaves the command to run here; after "go",
    only the worker's exit code (or its end) is the answer."""
    connection.settimeout(HANDSHAKE_SECONDS)
    replies = connection.makefile("rb")
    try:
        first = json.loads(replies.readline() or b"{}")
        if "pid" not in first:
            return None  # refused, or gone before it began: nothing ran there
        connection.sendall(GO)
    except (OSError, ValueError):  # no answer in time (a stopped server), a reset, a garbled reply
        return None
    connection.settimeout(None)
    saved = _forward_signals(int(first["pid"]))
    try:
        for line in replies:
            reply = json.loads(line)
            if "exit" in reply:
                return int(reply["exit"])
    except (OSError, ValueError):
        pass
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    print(
        "mailroom: error: the daemon's command server stopped before the command finished "
        "(what it had committed stands; check with `mailroom queue` or `case show`)",
        file=sys.stderr,
    )
    return 1


def _forward_signals(worker: int) -> dict[int, Any]:
    """Ctrl-C and the like reach the worker, which runs in the daemon's process group, not ours.
    Returns the handlers it replaced."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signum)

    return {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
