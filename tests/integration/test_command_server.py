"""The command server (issue 12 part 5): CLI commands handed to a process that has the application
imported, answering exactly as they do in their own process, and never where the server would see
anything differently from the admin's shell."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailroom.cli import launch, server, wire
from mailroom.daemon.command_server import CommandServer
from tests.conftest import Env
from tests.support import pdfs
from tests.support.commands import delegated, mailroom, socket_path
from tests.support.daemon import start_daemon, wait_until

pytestmark = pytest.mark.integration
CASE = "MH-300001"


@pytest.fixture
def served(make_env: Callable[..., Env]) -> Iterator[tuple[Env, Path]]:
    """A store with one case and one queued report, and a command server for its config."""
    path = socket_path()
    env = make_env(daemon={"command_socket": str(path)})
    assert env.run("db", "upgrade").code == 0
    assert env.run("case", "add", CASE, "--atw-ref", "ATW-1").code == 0
    pdf = env.root / "report.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    assert env.run("submit", str(pdf), "--case", CASE, "--type", "support-plan").code == 0
    commands = CommandServer.start(path)
    assert commands is not None
    wait_until(path.exists, "the command socket")
    yield env, path
    commands.stop()
    assert commands.process.returncode == 0
    assert not path.exists(), "the server removes its socket when it stops"


def config_args(env: Env, *args: str) -> list[str]:
    return ["--config", str(env.config), *args]


def test_the_socket_is_for_its_owner_only(served: tuple[Env, Path]) -> None:
    _, path = served
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "args",
    [
        ("queue", "--json"),
        ("case", "show", CASE, "--json"),
        ("inbox", "--json"),
        ("clocks", "--json"),
        ("escalations", "--json"),
        ("report", "mi", "--from", "2026-01-01", "--to", "2026-12-31", "--json"),
    ],
)
def test_a_served_command_answers_as_in_its_own_process(
    served: tuple[Env, Path], tmp_path: Path, args: tuple[str, ...]
) -> None:
    env, _ = served
    own = env.run(*args)
    code, out, err = delegated(config_args(env, *args), tmp_path)
    assert code == own.code == 0, err
    assert json.loads(out) == json.loads(own.out)


def test_exit_codes_and_error_lines_come_back(served: tuple[Env, Path], tmp_path: Path) -> None:
    env, _ = served
    code, out, err = delegated(config_args(env, "case", "show", "MH-999999"), tmp_path)
    assert (code, out, err) == (1, "", "mailroom: error: no case MH-999999\n")
    code, _, err = delegated(config_args(env, "queue", "--state", "nonsense"), tmp_path)
    assert code == 1 and "unknown state 'nonsense'" in err
    code, _, err = delegated(config_args(env, "queue", "--no-such-option"), tmp_path)
    assert code == 2 and "No such option" in err


def test_a_served_submit_is_stored_once_with_the_clients_umask(
    served: tuple[Env, Path], tmp_path: Path
) -> None:
    env, _ = served
    pdf = tmp_path / "second.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    code, out, err = delegated(
        config_args(env, "submit", str(pdf), "--case", CASE, "--type", "exit-report", "--json"), tmp_path
    )
    assert code == 0, err
    submitted = json.loads(out)
    queue = json.loads(env.run("queue", "--json").out)
    assert [row["report_type"] for row in queue] == ["support-plan", "exit-report"]
    assert queue[1]["id"] == submitted["id"]
    stored = [p for p in (env.root / "documents").rglob("*") if p.is_file()]
    assert len(stored) == 2 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in stored)


def test_relative_paths_are_read_from_the_clients_folder(served: tuple[Env, Path], tmp_path: Path) -> None:
    env, _ = served
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "r.pdf").write_bytes(pdfs.arial_12_report())
    before = Path.cwd()
    os.chdir(tmp_path / "here")
    try:
        code, _, err = delegated(config_args(env, "preflight", "r.pdf"), tmp_path)
    finally:
        os.chdir(before)
    assert code == 0, err


def test_a_whole_cli_process_is_served_and_stdin_may_be_closed(served: tuple[Env, Path]) -> None:
    env, _ = served
    done = mailroom(env.config, "queue", "--json")
    assert done.returncode == 0, done.stderr
    assert [row["case_ref"] for row in json.loads(done.stdout)] == [CASE]


def test_without_a_server_the_command_runs_in_its_own_process(make_env: Callable[..., Env]) -> None:
    path = socket_path()
    env = make_env(daemon={"command_socket": str(path)})
    assert env.run("db", "upgrade").code == 0
    assert launch.delegate(config_args(env, "queue")) is None  # nothing listens
    path.touch()  # a socket file left by a killed daemon: still nobody there
    assert launch.delegate(config_args(env, "queue")) is None
    done = mailroom(env.config, "queue", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == []


def test_the_daemon_and_its_own_commands_never_go_to_the_server(served: tuple[Env, Path]) -> None:
    env, _ = served
    for args in (("run", "--once"), ("db", "upgrade"), ("--help",), ("--version",), ()):
        assert launch.delegate(config_args(env, *args)) is None
    assert launch.delegate(config_args(env, "queue")) is not None
    os.environ[launch.IN_PROCESS_ENV] = "1"
    try:
        assert launch.delegate(config_args(env, "queue")) is None
    finally:
        del os.environ[launch.IN_PROCESS_ENV]


def _request(files: list[tuple[str, int, int]], code: str = "same") -> dict[str, object]:
    return {"argv": [], "env": {}, "umask": 0o077, "code": code, "files": files}


def test_the_worker_refuses_other_code_and_files_it_sees_differently(tmp_path: Path) -> None:
    real = tmp_path / "report.pdf"
    real.write_bytes(b"%PDF")
    seen = real.stat()
    assert server.refusal(_request([(str(real), seen.st_dev, seen.st_ino)]), "same") is None
    assert "other code" in str(server.refusal(_request([], code="older"), "same"))
    other = server.refusal(_request([(str(real), seen.st_dev, seen.st_ino + 1)]), "same")
    assert other == f"{real} is another file for the daemon"
    hidden = server.refusal(_request([(str(tmp_path / "gone.pdf"), 1, 2)]), "same")
    assert hidden == f"{tmp_path / 'gone.pdf'} is not visible to the daemon"


def test_another_user_is_refused_by_the_kernels_word() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with mine, theirs:
        server.refuse_other_users(mine)  # the same user: served
    if os.getuid() != 0:
        pytest.skip("making a connection as another user needs root")  # CI runs as root
    folder = Path(tempfile.mkdtemp(prefix="mrcs-"))
    folder.chmod(0o755)
    path = folder / "peer.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        path.chmod(0o777)
        listener.listen(1)
        child = os.fork()
        if child == 0:  # nobody connects, and says nothing
            try:
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                    client.connect(str(path))
                    client.recv(1)
            finally:
                os._exit(0)
        connection, _ = listener.accept()
        with connection, pytest.raises(server.Refused, match="another user"):
            server.refuse_other_users(connection)
        os.waitpid(child, 0)


def answered(*replies: bytes, close: bool = True) -> tuple[int | None, bytes]:
    """`_await_exit` against a stand-in worker that writes `replies` (then hangs up, with `close`), and
    what the client said to it."""
    client, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with client, worker:
        for reply in replies:
            worker.sendall(reply)
        if close:
            worker.shutdown(socket.SHUT_WR)
        code = launch._await_exit(client)
        client.close()
        return code, worker.makefile("rb").read()


PID = json.dumps({"pid": 2**22 + 1}).encode() + b"\n"  # no such process


def test_the_client_and_the_worker_agree_before_anything_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker began (pid), was told "go", then ended without an exit code: one line, exit 1.
    assert answered(PID) == (1, wire.GO)
    assert "command server stopped before the command finished" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back
    assert answered(PID, b'{"exit": 3}\n') == (3, wire.GO)
    # Refused, or gone before it began: nothing ran there, no "go", the command runs here.
    assert answered(b'{"refused": "other code"}\n') == (None, b"")
    assert answered() == (None, b"")
    # A server that does not answer in time: no "go" either, so its worker will run nothing.
    monkeypatch.setattr(launch, "HANDSHAKE_SECONDS", 0.2)
    assert answered(close=False) == (None, b"")


def test_the_daemon_runs_the_server_and_it_ends_with_the_daemon(
    make_daemon_env: Callable[..., Env], relay: object
) -> None:
    path = socket_path()
    env = make_daemon_env(
        daemon={"test_mode": True, "command_socket": str(path)}, outbox={"poll_seconds": 0.2}
    )
    assert env.run("case", "add", CASE).code == 0
    log = env.root / "daemon.log"
    daemon = start_daemon(env.config, log)
    try:
        wait_until(path.exists, "the daemon's command socket")
        code, out, err = delegated(config_args(env, "case", "show", CASE, "--json"), env.root)
        assert code == 0, err
        assert json.loads(out)["case_ref"] == CASE
        shown = env.run("status", "--json")
        assert json.loads(shown.out)["command_server"] == {"socket": str(path), "listening": True}
        assert f"command server at {path} answering" in env.run("status").out
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        wait_until(lambda: not path.exists(), "the server gone with a killed daemon", timeout=10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert "command server listening at" in log.read_text()
    assert json.loads(env.run("status", "--json").out)["command_server"]["listening"] is False
    assert "not answering" in env.run("status").out
    done = mailroom(env.config, "case", "show", CASE, "--json")  # now in its own process
    assert done.returncode == 0 and json.loads(done.stdout)["case_ref"] == CASE


def test_a_server_not_needed_twice(served: tuple[Env, Path]) -> None:
    _, path = served
    second = subprocess.run(
        [sys.executable, "-m", "mailroom.cli.server", "--socket", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 0
    assert "another command server answers" in second.stderr  # and, with no daemon to stand by for, ends
    assert path.exists()


def test_a_second_server_stands_by_and_takes_over(served: tuple[Env, Path], tmp_path: Path) -> None:
    """A daemon restarted while its killed predecessor's server still answers, or a second daemon on the
    same host: its server waits, and serves once the other one is gone."""
    env, path = served
    second = CommandServer.start(path)
    assert second is not None
    try:
        time.sleep(2.0)  # its imports done, it has found the first one answering
        assert second.process.poll() is None  # standing by, not gone
        first = [pid for pid in servers_at(path) if pid != second.process.pid]
        assert len(first) == 1
        os.kill(first[0], signal.SIGTERM)  # the first server goes, and its socket with it
        wait_until(
            lambda: delegated(config_args(env, "queue", "--json"), tmp_path)[0] is not None,
            "the second server answering",
            timeout=15,
        )
        code, out, _ = delegated(config_args(env, "queue", "--json"), tmp_path)
        assert code == 0 and json.loads(out)[0]["case_ref"] == CASE
    finally:
        second.stop()


def servers_at(path: Path) -> list[int]:
    """The pids of the command servers started for `path`, from their command lines."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                words = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mailroom.cli.server" in words and str(path).encode() in words:
                found.append(int(proc.name))
    return found


def test_a_worker_runs_nothing_until_the_client_says_go(served: tuple[Env, Path]) -> None:
    """A client that gave up waiting runs the command itself; the worker that answered late must not."""
    env, path = served
    argv = config_args(env, "case", "add", "MH-300099")
    request = {
        "argv": argv,
        "env": dict(os.environ),
        "umask": 0o077,
        "code": launch.code_fingerprint(),
        "files": launch.named_files(argv, str(env.config)),
    }
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(str(path))
            socket.send_fds(connection, [wire.encode_request(request)], [0, 1, 2, cwd])
            assert "pid" in json.loads(connection.makefile("rb").readline())
            # and hang up without "go"
    finally:
        os.close(cwd)
    time.sleep(1.0)  # time enough for a worker that (wrongly) went on to add the case
    assert env.run("case", "show", "MH-300099").err.strip() == "mailroom: error: no case MH-300099"
    code, _, _ = delegated(argv, env.root)  # the same command, properly: it runs, once
    assert code == 0
    assert json.loads(env.run("case", "show", "MH-300099", "--json").out)["case_ref"] == "MH-300099"
