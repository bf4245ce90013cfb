"""systemd/: the unit, sysusers and tmpfiles files, checked with systemd's own tools (no running systemd).

- `systemd-analyze verify` must exit 0 with empty stderr: an unknown or misspelt key is only a warning.
- `systemd-analyze security --offline=true` must score an exposure of 2.0 or less; the figure is printed
  and recorded as the `exposure` property (see it with `pytest -rA`).
- The seccomp half of the sandbox (SystemCallFilter=, SystemCallErrorNumber=, RestrictAddressFamilies=,
  MemoryDenyWriteExecute=, NoNewPrivileges=) is rebuilt from the unit with libseccomp, and gpg with
  gpg-agent, SQLite, asyncio, TLS and the daemon's libraries run inside it: a filter that breaks gpg-agent
  would otherwise only show on a live host.

A missing systemd tool, libseccomp or gpg skips these tests, except when CI=true: then it fails.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
SYSTEMD = ROOT / "systemd"
UNIT = SYSTEMD / "mailroom.service"
EXAMPLE_CONFIG = ROOT / "config" / "mailroom.example.toml"
MAX_EXPOSURE = 2.0


def _missing(what: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required when CI=true")
    pytest.skip(f"{what} not available")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        _missing(name)
    return path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def directives(text: str) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, in order; keys are unique enough across its sections."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart's program swapped for one that exists here: verify checks it is executable."""
    text = UNIT.read_text(encoding="utf-8")
    replaced = text.replace("ExecStart=/opt/mailroom/bin/mailroom ", f"ExecStart={sys.executable} ")
    assert replaced != text, "ExecStart no longer starts with /opt/mailroom/bin/mailroom"
    copy = tmp_path / "mailroom.service"
    copy.write_text(replaced, encoding="utf-8")
    return copy


# ---- the unit's contract with the daemon and the config ------------------------------------------------


def test_unit_runs_the_daemon_as_a_watched_notify_service() -> None:
    unit = directives(UNIT.read_text(encoding="utf-8"))
    expected = {
        "Type": ["notify"],
        "NotifyAccess": ["main"],
        "WatchdogSec": ["60"],
        "Restart": ["on-failure"],
        "RestartPreventExitStatus": ["78"],
        "User": ["mailroom"],
        "StateDirectory": ["mailroom"],
        "StateDirectoryMode": ["0700"],
        "ExecStart": ["/opt/mailroom/bin/mailroom --config /etc/mailroom/mailroom.toml run"],
    }
    assert {key: unit.get(key) for key in expected} == expected


def test_every_secret_the_config_reads_from_credentials_is_loaded() -> None:
    wanted = set(re.findall(r"\$CREDENTIALS_DIRECTORY/([\w.-]+)", EXAMPLE_CONFIG.read_text(encoding="utf-8")))
    loaded = dict(v.split(":", 1) for v in directives(UNIT.read_text(encoding="utf-8"))["LoadCredential"])

    assert wanted == {"smtp-password", "imap-password", "nino-hmac-key", "gpg-passphrase"}
    assert wanted <= set(loaded)
    # Names, not paths: systemd then looks in /etc/credstore/ and skips a missing optional one.
    assert all(source == f"mailroom.{cred}" for cred, source in loaded.items())


# ---- systemd-analyze -----------------------------------------------------------------------------------


def test_verify_is_clean(unit_copy: Path) -> None:
    result = _run(_tool("systemd-analyze"), "verify", str(unit_copy))
    assert (result.returncode, result.stderr) == (0, "")


def test_verify_reports_a_misspelt_key_only_on_stderr(unit_copy: Path) -> None:
    # Why the test above insists on empty stderr: this typo leaves the return code at 0.
    unit_copy.write_text(unit_copy.read_text().replace("ProtectSystem=", "ProtectSytem="), encoding="utf-8")
    result = _run(_tool("systemd-analyze"), "verify", str(unit_copy))
    assert result.returncode == 0
    assert "Unknown key 'ProtectSytem'" in result.stderr


def test_security_exposure_is_at_most_2_0(
    unit_copy: Path, record_property: Callable[[str, object], None]
) -> None:
    # --threshold is on a 0-100 scale: 20 is an exposure of 2.0.
    result = _run(_tool("systemd-analyze"), "security", "--offline=true", "--threshold=20", str(unit_copy))
    match = re.search(r"Overall exposure level for mailroom\.service: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr

    exposure, verdict = float(match.group(1)), match.group(2)
    record_property("exposure", exposure)
    print(f"systemd-analyze security --offline=true: exposure {exposure} {verdict}")
    assert result.returncode == 0, result.stderr
    assert exposure <= MAX_EXPOSURE


# ---- sysusers.d and tmpfiles.d -----------------------------------------------------------------------


def _create_account(root: Path) -> subprocess.CompletedProcess[str]:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    return _run(_tool("systemd-sysusers"), f"--root={root}", str(SYSTEMD / "mailroom.sysusers.conf"))


def test_sysusers_creates_the_service_account(tmp_path: Path) -> None:
    result = _create_account(tmp_path)

    assert result.returncode == 0, result.stderr
    # sysusers reports what it created on stderr; anything else would be a complaint about the file.
    assert all(line.startswith("Creating ") for line in result.stderr.splitlines()), result.stderr
    accounts = [line.split(":") for line in (tmp_path / "etc" / "passwd").read_text().splitlines()]
    assert [a[0] for a in accounts] == ["mailroom"]
    assert accounts[0][5:] == ["/var/lib/mailroom", "/usr/sbin/nologin"]
    assert int(accounts[0][2]) < 1000, "a system uid"


def test_tmpfiles_creates_private_state_folders_owned_by_the_service(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles needs root to chown into a temp root")
    assert _create_account(tmp_path).returncode == 0
    (tmp_path / "etc" / "mailroom").mkdir()
    (tmp_path / "etc" / "mailroom" / "mailroom.toml").write_text("")

    tmpfiles = _tool("systemd-tmpfiles")
    result = _run(tmpfiles, f"--root={tmp_path}", "--create", str(SYSTEMD / "mailroom.tmpfiles.conf"))

    assert (result.returncode, result.stderr) == (0, "")
    uid = int((tmp_path / "etc" / "passwd").read_text().split(":")[2])
    for folder in ("var/lib/mailroom", "var/lib/mailroom/documents", "var/lib/mailroom/gnupg"):
        st = (tmp_path / folder).stat()
        assert (oct(st.st_mode & 0o777), st.st_uid, st.st_gid) == ("0o700", uid, uid), folder
    config = (tmp_path / "etc" / "mailroom" / "mailroom.toml").stat()
    assert (oct(config.st_mode & 0o777), config.st_uid, config.st_gid) == ("0o640", 0, uid)


# ---- the seccomp sandbox, rebuilt from the unit --------------------------------------------------------

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_EQ = 4
_SCMP_CMP_GT = 6
_SCMP_CMP_MASKED_EQ = 7
_PROT_WRITE, _PROT_EXEC, _SHM_EXEC = 0x2, 0x4, 0o100000


def _scmp_errno(code: int) -> int:
    return 0x00050000 | code


class _Cmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


def _syscall_groups(analyze: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in _run(analyze, "syscall-filter").stdout.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith(" ") and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def _expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    calls: set[str] = set()
    for name in names:
        calls |= _expand(groups[name], groups) if name.startswith("@") else {name}
    return calls


class SeccompSandbox:
    """The unit's seccomp settings as a libseccomp filter, loaded into a child before it execs."""

    def __init__(self, unit: dict[str, list[str]], groups: dict[str, list[str]], lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.default = _scmp_errno(getattr(errno, unit["SystemCallErrorNumber"][0]))
        self.ctx = lib.seccomp_init(self.default)
        allowed: set[str] = set()
        for entry in unit["SystemCallFilter"]:
            deny = entry.startswith("~")
            calls = _expand(entry.removeprefix("~").split(), groups)
            allowed = allowed - calls if deny else allowed | calls
        refined = {"socket", "mmap", "mprotect", "pkey_mprotect", "shmat"}
        for call in sorted(allowed - refined):
            self._rule(_SCMP_ACT_ALLOW, call)
        self._restrict_families([getattr(socket, f) for f in unit["RestrictAddressFamilies"][0].split()])
        if unit["MemoryDenyWriteExecute"] == ["yes"]:
            self._deny_write_execute()
        else:
            for call in refined - {"socket"}:
                self._rule(_SCMP_ACT_ALLOW, call)

    def _rule(self, action: int, call: str, *cmps: _Cmp) -> None:
        number = self.lib.seccomp_syscall_resolve_name(call.encode())
        if number < 0 or action == self.default:  # unknown to this libseccomp, or already the default
            return
        array = (_Cmp * len(cmps))(*cmps) if cmps else None
        rc = self.lib.seccomp_rule_add_array(self.ctx, action, number, len(cmps), array)
        assert rc == 0, f"seccomp rule for {call}: {os.strerror(-rc)}"

    def _restrict_families(self, families: list[int]) -> None:
        # As systemd does: other families fail with EAFNOSUPPORT, so glibc falls back quietly.
        refuse = _scmp_errno(errno.EAFNOSUPPORT)
        for family in range(max(families) + 1):
            action = _SCMP_ACT_ALLOW if family in families else refuse
            self._rule(action, "socket", _Cmp(0, _SCMP_CMP_EQ, family, 0))
        self._rule(refuse, "socket", _Cmp(0, _SCMP_CMP_GT, max(families), 0))

    def _deny_write_execute(self) -> None:
        # systemd's MemoryDenyWriteExecute=: no W+X mapping, no mprotect adding X, no executable SysV shm.
        wx, refuse = _PROT_WRITE | _PROT_EXEC, _scmp_errno(errno.EPERM)
        for prot in (0, _PROT_WRITE, _PROT_EXEC, wx):
            action = refuse if prot == wx else _SCMP_ACT_ALLOW
            self._rule(action, "mmap", _Cmp(2, _SCMP_CMP_MASKED_EQ, wx, prot))
        for call in ("mprotect", "pkey_mprotect"):
            for prot in (0, _PROT_EXEC):
                action = refuse if prot else _SCMP_ACT_ALLOW
                self._rule(action, call, _Cmp(2, _SCMP_CMP_MASKED_EQ, _PROT_EXEC, prot))
        for flag in (0, _SHM_EXEC):
            action = refuse if flag else _SCMP_ACT_ALLOW
            self._rule(action, "shmat", _Cmp(2, _SCMP_CMP_MASKED_EQ, _SHM_EXEC, flag))

    def load(self) -> None:
        """Runs in the forked child before exec; libseccomp also sets no_new_privs, as NoNewPrivileges= does.

        It only calls into libseccomp (glibc's malloc is fork-safe), so a thread elsewhere in the test
        process cannot leave it waiting on a lock.
        """
        if self.lib.seccomp_load(self.ctx) != 0:
            raise OSError("seccomp_load failed")

    def run(self, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            preexec_fn=self.load,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def release(self) -> None:
        self.lib.seccomp_release(self.ctx)


@pytest.fixture
def sandbox() -> Iterator[SeccompSandbox]:
    analyze = _tool("systemd-analyze")
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        _missing("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_rule_add_array.argtypes += [ctypes.c_void_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    box = SeccompSandbox(directives(UNIT.read_text(encoding="utf-8")), _syscall_groups(analyze), lib)
    yield box
    box.release()


FORBIDDEN_PROBE = """
import errno, json, mmap, os, socket
def attempt(action):
    try:
        action()
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "allowed"
print(json.dumps({
    "netlink socket": attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)),
    "W+X mapping": attempt(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)),
    "setpriority (@resources)": attempt(lambda: os.setpriority(os.PRIO_PROCESS, 0, 5)),
    "setuid (@privileged)": attempt(lambda: os.setuid(os.getuid())),
    "unix socket": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()),
    "inet6 socket": attempt(lambda: socket.socket(socket.AF_INET6).close()),
}))
"""


def test_sandbox_refuses_what_the_unit_forbids(sandbox: SeccompSandbox) -> None:
    # The control for the next test: the filter is really loaded and really refuses.
    result = sandbox.run(FORBIDDEN_PROBE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "netlink socket": "EAFNOSUPPORT",
        "W+X mapping": "EPERM",
        "setpriority (@resources)": "EPERM",
        "setuid (@privileged)": "EPERM",
        "unix socket": "allowed",
        "inet6 socket": "allowed",
    }


DAEMON_WORKLOAD = """
import asyncio, sqlite3, ssl, subprocess, sys
import aiosmtplib, apscheduler.schedulers.asyncio, gnupg, holidays, imapclient, pdfplumber, psycopg, sqlmodel

home = sys.argv[1]
gpg = gnupg.GPG(gnupghome=home)
key = gpg.gen_key(gpg.gen_key_input(
    key_type="EDDSA", key_curve="ed25519", subkey_type="ECDH", subkey_curve="cv25519",
    name_email="mailroom@example.test", no_protection=True, expire_date=0))
assert key.fingerprint, key.stderr
sealed = gpg.encrypt(b"report " * 1000, key.fingerprint, armor=False, always_trust=True)
opened = gpg.decrypt(sealed.data)  # the secret key is used by gpg-agent, over its socket in the home
assert sealed.ok and opened.ok and opened.data == b"report " * 1000, (sealed.status, opened.status)

with sqlite3.connect(home + "/../mailroom.db") as db:
    db.execute("create table submission (id integer primary key, state text)")
    db.execute("insert into submission (state) values ('queued')")

async def main():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("localhost", port)
    writer.close()
    server.close()
    await server.wait_closed()
    child = await asyncio.create_subprocess_exec("gpg", "--version", stdout=subprocess.PIPE)
    await child.communicate()
    await asyncio.to_thread(ssl.create_default_context)

asyncio.run(main())
subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=True)
print("daemon workload ok")
"""


def test_gpg_agent_sqlite_and_asyncio_work_inside_the_sandbox(sandbox: SeccompSandbox) -> None:
    if shutil.which("gpg") is None or shutil.which("gpgconf") is None:
        _missing("gpg")
    # gpg-agent's socket lives in the home: keep the path short (AF_UNIX allows 108 bytes).
    with tempfile.TemporaryDirectory(prefix="mrsd-") as folder:
        home = Path(folder) / "gnupg"
        home.mkdir(mode=0o700)
        try:
            result = sandbox.run(DAEMON_WORKLOAD, str(home))
        finally:
            _run("gpgconf", "--homedir", str(home), "--kill", "gpg-agent")

    assert (result.returncode, result.stdout.strip()) == (0, "daemon workload ok"), result.stderr[-2000:]
