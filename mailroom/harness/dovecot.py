"""A throwaway Dovecot 2.3 (IMAP with STARTTLS, IMAPS, LMTP) on 127.0.0.1: the harness's provider mailbox,
and the integration tests' and benches' IMAP server.

Follows the verified recipe in shared/harness.md §2-§3:
- everything (config, TLS files, mail, sockets, log) lives under one short temp folder, because unix socket
  paths are limited to 108 bytes;
- Dovecot runs in the foreground (`dovecot -F`) in its own process group with stdout/stderr to DEVNULL: a
  captured pipe would be inherited by the daemon and hang the caller;
- mail is never accessed as uid 0: as root the mail processes run as the system user `vmail` (created when
  missing); as a normal user every service runs as that user, without chroot;
- `auth_failure_delay = 0` and no anvil auth penalty, so wrong-password tests take milliseconds, not
  2-15 s each (the penalty would also slow every later login from 127.0.0.1);
- the namespace separator is `/`, and `user+Folder@domain` over LMTP delivers straight into `Folder`.

A CA made with `trustme` (or the one passed in, so a whole harness trusts one CA) signs the server certificate
(SAN localhost and 127.0.0.1); `ca_file` is its PEM.
Stopping kills the whole process group (Dovecot's own shutdown waits about 3 s for its children), which the
IMAP client sees as a dropped connection, exactly like a crashed or rebooted server.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import trustme
from imapclient import IMAPClient

DOMAIN = "example.test"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
DEFAULT_USERS: Mapping[str, str] = {ALICE: "alice-secret", BOB: "bob-secret"}
HOST = "127.0.0.1"

DOVECOT = Path("/usr/sbin/dovecot")
DOVEADM = Path("/usr/bin/doveadm")
PROTOCOL_BINARIES = (Path("/usr/lib/dovecot/imap"), Path("/usr/lib/dovecot/lmtp"))
INSTALL_HINT = "apt-get install dovecot-imapd dovecot-lmtpd"
MAIL_USER = "vmail"
NOLOGIN = "/usr/sbin/nologin"
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


class ServerUnavailable(RuntimeError):
    """A local server cannot run here (binaries missing, or it failed to start).

    The harness reports it as one line; the integration conftest turns it into `pytest.skip`, or into a
    failure when CI=true.
    """


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


def wait_for_ports(ports: Sequence[int], *, up: bool, timeout: float, what: str) -> None:
    """Wait until every port accepts connections (`up`) or none does; ServerUnavailable on timeout."""
    deadline = time.monotonic() + timeout
    while any(port_open(p) != up for p in ports):
        if time.monotonic() > deadline:
            state = "listening" if up else "released"
            raise ServerUnavailable(f"{what}: ports {list(ports)} not {state} after {timeout} s")
        time.sleep(0.005)


def short_temp_dir(prefix: str) -> Path:
    """A short temp folder (unix socket paths) that other local users may traverse.

    tmpfs (/dev/shm) when there is one: on an ext4 mounted with `discard`, as on the CI machines, every
    unlink costs milliseconds, and deleting one test Dovecot's maildirs took 0.7 s instead of 0.01 s.
    """
    # mkdtemp makes a fresh folder of its own in either place: no shared, guessable name.
    shm = Path("/dev/shm")  # noqa: S108
    base = shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else Path("/tmp")  # noqa: S108
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    return path


def _private_root(path: Path) -> Path:
    """A new folder for one instance; traversable, because Dovecot's mail and auth users are not us."""
    path.mkdir(parents=True)
    path.chmod(0o755)
    return path


def _ensure_mail_user() -> tuple[str, str]:
    """The (user, group) owning mail files: `vmail` as root (created if missing), else ourselves."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    try:
        pwd.getpwnam(MAIL_USER)
    except KeyError:
        # Another test process may create it at the same moment: exit code 9 means "already exists".
        done = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                NOLOGIN,
                MAIL_USER,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode not in (0, 9):
            raise ServerUnavailable(f"useradd {MAIL_USER} failed with exit code {done.returncode}") from None
    entry = pwd.getpwnam(MAIL_USER)
    return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name


def check_installed() -> None:
    missing = [str(p) for p in (DOVECOT, DOVEADM, *PROTOCOL_BINARIES) if not p.exists()]
    if missing:
        raise ServerUnavailable(f"Dovecot is not installed (missing {', '.join(missing)}): {INSTALL_HINT}")


class Dovecot:
    """One throwaway Dovecot instance. Use as a context manager, or call start() and stop().

    `root` (a new, short folder; default: one under /dev/shm or /tmp) holds everything of the instance;
    `auth_mechanisms` may add "xoauth2" and "oauthbearer", which Dovecot checks against the users file as
    it checks a password, so a user's "password" there doubles as a static OAuth2 bearer token.
    """

    def __init__(
        self,
        users: Mapping[str, str] = DEFAULT_USERS,
        *,
        root: Path | None = None,
        ca: trustme.CA | None = None,
        auth_mechanisms: Sequence[str] = ("plain", "login"),
    ) -> None:
        check_installed()
        self.users = dict(users)
        self.host = HOST
        self.auth_mechanisms = tuple(auth_mechanisms)
        self.imap_port, self.imaps_port, self.lmtp_port = free_ports(3)
        self.root = _private_root(root) if root is not None else short_temp_dir("dc-")
        self.ca_file = self.root / "ca.pem"
        self.log_file = self.root / "dovecot.log"
        self.config_file = self.root / "dovecot.conf"
        self._process: subprocess.Popen[bytes] | None = None
        self._write_tls(ca or trustme.CA())
        self._write_config()

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start Dovecot and return once IMAP, IMAPS and LMTP all accept connections."""
        if self._process is not None:
            return
        self._process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_ports(self.ports, up=True, timeout=10, what="dovecot start")
        except ServerUnavailable as error:
            self._kill()
            raise ServerUnavailable(f"{error}; log tail: {self.log_tail()}") from None

    def stop(self) -> None:
        """Kill the instance (all its processes at once) and wait until the ports are free again."""
        if self._process is None:
            return
        self._kill()
        wait_for_ports(self.ports, up=False, timeout=10, what="dovecot stop")

    def restart(self) -> None:
        """Stop and start on the same ports, keeping all mail: clients see their connection drop."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and delete every file of this instance."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def ports(self) -> tuple[int, int, int]:
        return (self.imap_port, self.imaps_port, self.lmtp_port)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return " | ".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # Our own session: the master and every child Dovecot forked share its process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    # -- clients and mail ------------------------------------------------------------------------------------

    def login_name(self, user: str) -> str:
        return user if "@" in user else f"{user}@{DOMAIN}"

    def password(self, user: str) -> str:
        return self.users[self.login_name(user)]

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this instance's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, user: str, *, starttls: bool = False, timeout: float = 10) -> IMAPClient:
        """A logged-in IMAPClient over verified TLS (IMAPS, or STARTTLS on the IMAP port). Caller logs out."""
        context = self.ssl_context()
        if starttls:
            client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=timeout)
            client.starttls(context)
        else:
            client = IMAPClient(
                self.host, port=self.imaps_port, ssl=True, ssl_context=context, timeout=timeout
            )
        client.login(self.login_name(user), self.password(user))
        return client

    @contextlib.contextmanager
    def session(self, user: str) -> Iterator[IMAPClient]:
        client = self.client(user)
        try:
            yield client
        finally:
            client.logout()

    def deliver_lmtp(
        self, rcpt: str, raw: bytes, *, folder: str | None = None, sender: str = f"dwp-sim@{DOMAIN}"
    ) -> None:
        """Deliver `raw` by LMTP, into INBOX or (via `user+Folder@`) straight into `folder`."""
        address = self.login_name(rcpt)
        if folder is not None:
            local, domain = address.split("@", 1)
            address = f"{local}+{folder}@{domain}"
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=10) as lmtp:
            lmtp.sendmail(sender, [address], raw)

    def append(self, user: str, folder: str, raw: bytes, *, flags: Sequence[str] = ()) -> int:
        """APPEND `raw` to `folder` (created if missing); returns the new message's UID."""
        with self.session(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=tuple(flags))
        match = _APPENDUID.search(response)
        assert match, f"no APPENDUID in {response!r}"
        return int(match.group(2))

    def uidvalidity(self, user: str, folder: str) -> int:
        with self.session(user) as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def delete_folder(self, user: str, folder: str) -> None:
        with self.session(user) as client:
            client.delete_folder(folder)

    def recreate_folder(self, user: str, folder: str) -> int:
        """Delete and create `folder` again (mail in it is lost); returns its new UIDVALIDITY."""
        with self.session(user) as client:
            client.delete_folder(folder)
            client.create_folder(folder)
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def set_uidvalidity(self, user: str, folder: str, value: int) -> None:
        """Change a folder's UIDVALIDITY in place (works for INBOX, which cannot be deleted)."""
        command = [str(DOVEADM), "-c", str(self.config_file), "mailbox", "update"]
        command += ["--uid-validity", str(value), "-u", self.login_name(user), folder]
        subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=10)

    # -- files ---------------------------------------------------------------------------------------------

    def _write_tls(self, ca: trustme.CA) -> None:
        ca.cert_pem.write_to_path(str(self.ca_file))
        issued = ca.issue_cert("localhost", HOST)
        issued.private_key_pem.write_to_path(str(self.root / "server.key"))
        chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
        (self.root / "server.pem").write_bytes(chain)
        (self.root / "server.key").chmod(0o600)

    def _write_config(self) -> None:
        mail_user, mail_group = _ensure_mail_user()
        mail_root = self.root / "mail"
        for sub in ("run", "state"):
            (self.root / sub).mkdir()
        mail_root.mkdir()
        users = self.root / "users"
        users.write_text(
            "".join(
                f"{name}:{{PLAIN}}{secret}::::{mail_root / name}::\n" for name, secret in self.users.items()
            )
        )
        if os.geteuid() == 0:
            shutil.chown(mail_root, mail_user, mail_group)
            shutil.chown(users, "root", "dovecot")  # the auth process reads it as group dovecot
            users.chmod(0o640)
        else:
            users.chmod(0o600)
        self.config_file.write_text(self._config_text(mail_user, mail_group, users))

    def _config_text(self, mail_user: str, mail_group: str, users: Path) -> str:
        # Dovecot wants one setting per line inside { }.
        root = self.root
        return f"""# throwaway instance (mailroom/harness/dovecot.py)
instance_name = mailroom-test-{root.name}
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log_file}
protocols = imap lmtp
listen = {HOST}
ssl = yes
ssl_cert = <{root}/server.pem
ssl_key = <{root}/server.key
ssl_min_protocol = TLSv1.2
auth_mechanisms = {" ".join(self.auth_mechanisms)}
disable_plaintext_auth = yes
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}
first_valid_uid = {pwd.getpwnam(mail_user).pw_uid}
mail_uid = {mail_user}
mail_gid = {mail_group}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
recipient_delimiter = +
lda_mailbox_autocreate = yes
protocol lmtp {{
  postmaster_address = postmaster@{DOMAIN}
  lmtp_save_to_detail_mailbox = yes
}}
service imap-login {{
{_rootless_chroot()}
  inet_listener imap {{
    address = {HOST}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {HOST}
    port = {self.lmtp_port}
  }}
}}
# Anvil's auth penalty delays every login from an IP after a failed one (2 s, 4 s, ... 15 s), which would
# make the wrong-password tests slow down the ones after them.
service anvil {{
{_rootless_chroot()}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{_rootless_services()}
"""


def _rootless_chroot() -> str:
    return "" if os.geteuid() == 0 else "  chroot ="


def _rootless_services() -> str:
    """As a normal user every internal service runs as that user, and nothing chroots (harness.md §3)."""
    if os.geteuid() == 0:
        return ""
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    return f"""default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
"""
