"""Shared pieces of the bench scripts: a throwaway mailroom (config, schema, cases), the local servers they
talk to, and one way of printing figures.

Every bench builds its mailroom the way an operator would: a TOML file, `db upgrade`, cases added through
the application's own use cases. Only the servers are throwaway: an aiosmtpd relay with STARTTLS and AUTH
(tests/support/smtpd.py, run in its own process so that it does not share the interpreter lock with the
client being measured), a gpg home with a generated key, and Dovecot (tests/support/dovecot.py).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mailroom.core.config import Settings  # noqa: E402
from mailroom.daemon.wiring import make_mailroom  # noqa: E402
from mailroom.edges.configfile import load_settings  # noqa: E402
from mailroom.harness.gpg import KeyAlgorithm  # noqa: E402
from mailroom.service.cases import NewCase  # noqa: E402
from mailroom.store.engine import make_engine, upgrade  # noqa: E402
from tests.support.daemon import start_daemon  # noqa: E402,F401 (the benches start it from here)
from tests.support.dovecot import ALICE, Dovecot  # noqa: E402
from tests.support.gpg import GpgHome, GpgKey  # noqa: E402

AUTHSERV_ID = "mx.provider.example"
FROM_ADDRESS = "reports@provider.example"
TEAM_ADDRESS = "team@provider.example"
PERFORMANCE_MANAGER = "pm@dwp.gov.uk"
HMAC_KEY = "bench-" + "k" * 42  # a throwaway key for a throwaway database


# -- figures -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One measured number, with the goal it is judged against (if any)."""

    name: str
    value: float
    unit: str
    goal: str = ""
    met: bool | None = None

    def cells(self) -> tuple[str, str, str, str]:
        verdict = "" if self.met is None else ("met" if self.met else "MISSED")
        return self.name, _number(self.value), self.unit, f"{self.goal} {verdict}".strip()


def _number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} CPUs)"


def print_table(title: str, figures: Sequence[Figure], notes: Sequence[str] = ()) -> None:
    """A plain-text table: one figure a line, then notes; the machine's load average is always shown."""
    rows = [("figure", "value", "unit", "goal"), *(f.cells() for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    rule = "-" * (sum(widths) + 6)
    print(f"\n{title}\n{rule}")
    for number, row in enumerate(rows):
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip())
        if number == 0:
            print(rule)
    print(rule)
    for note in (*notes, f"load average now: {load_average()}"):
        print(f"  {note}")


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (share 0..1) of the values; nan when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class CpuTime:
    """CPU seconds (user + system) used so far by this process (all threads) and its waited-for children."""

    own: float
    children: float

    @classmethod
    def now(cls) -> CpuTime:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime)

    def since(self, earlier: CpuTime) -> CpuTime:
        return CpuTime(self.own - earlier.own, self.children - earlier.children)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


# -- servers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelayAddress:
    host: str
    port: int
    ca_pem: Path
    username: str
    password: str


class RelayProcess:
    """tests/support/smtpd.py's relay (STARTTLS + AUTH, a trustme CA) in a child process of its own."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.address: RelayAddress | None = None

    def start(self) -> RelayAddress:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.smtpd", "--security", "starttls"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the SMTP relay process exited before printing its address")
        info = json.loads(line)
        self.address = RelayAddress(
            info["host"], int(info["port"]), Path(info["ca_pem"]), info["username"], info["password"]
        )
        return self.address

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> RelayAddress:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def stop_daemon(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM, then wait (SIGKILL after 30 s); returns the seconds it took to stop."""
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return time.monotonic() - started


@contextmanager
def gpg_key(algorithm: KeyAlgorithm = "cv25519") -> Iterator[tuple[GpgHome, GpgKey]]:
    """A throwaway gpg home with one key (ed25519/cv25519 unless asked for RSA-3072) and no passphrase,
    removed (agent too) on exit."""
    with GpgHome() as home:
        yield home, home.generate_key("mailroom-documents@provider.example", algorithm=algorithm)


# -- a mailroom ----------------------------------------------------------------------------------------------


@dataclass
class BenchConfig:
    """The sections of one bench's mailroom.toml; `write` puts it in `root` with its secret files."""

    root: Path
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def base(cls, root: Path) -> BenchConfig:
        key = secret_file(root, "nino.key", HMAC_KEY)
        return cls(
            root,
            {
                "provider": {"from_address": FROM_ADDRESS, "team_address": TEAM_ADDRESS},
                "escalation": {"performance_manager": PERFORMANCE_MANAGER},
                "store": {"url": f"sqlite:///{root}/mailroom.db", "documents_dir": str(root / "documents")},
                "gpg": {"encrypt_at_rest": False},
                "matching": {"nino_hmac_key_file": key},
                "trust": {"authserv_ids": [AUTHSERV_ID]},
                "daemon": {"log_level": "WARNING"},
            },
        )

    def with_relay(self, relay: RelayAddress) -> Self:
        self.sections["smtp"] = {
            "host": relay.host,
            "port": relay.port,
            "security": "starttls",
            "username": relay.username,
            "password_file": secret_file(self.root, "smtp.pw", relay.password),
            "ca_file": str(relay.ca_pem),
            "timeout_seconds": 30.0,
        }
        return self

    def with_gpg(self, home: GpgHome, key: GpgKey) -> Self:
        self.sections["gpg"] = {
            "home": str(home.path),
            "recipients": [key.fingerprint],
            "encrypt_at_rest": True,
        }
        return self

    def with_mailbox(self, server: Dovecot, folder: str) -> Self:
        self.sections["imap"] = {
            "host": server.host,
            "port": server.imaps_port,
            "security": "tls",
            "username": server.login_name(ALICE),
            "password_file": secret_file(self.root, "mailbox.pw", server.password(ALICE)),
            "ca_file": str(server.ca_file),
            "timeout_seconds": 30.0,
            "inbox_folder": folder,
            "processed_folder": f"{folder}/Processed",
            "quarantine_folder": f"{folder}/Quarantine",
        }
        return self

    def set(self, section: str, **values: Any) -> Self:
        self.sections.setdefault(section, {}).update(values)
        return self

    def write(self) -> Path:
        path = self.root / "mailroom.toml"
        lines: list[str] = []
        for section, values in self.sections.items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
            lines.append("")
        path.write_text("\n".join(lines), encoding="utf-8")
        return path


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def secret_file(root: Path, name: str, value: str) -> str:
    path = root / name
    path.write_text(value, encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def case_refs(count: int) -> list[str]:
    return [f"MH-{100001 + n}" for n in range(count)]


def prepare(config: Path, cases: Sequence[str]) -> Settings:
    """`mailroom db upgrade` and `case add` for each case, through the application's own code."""
    settings = load_settings(config)
    upgrade(make_engine(settings.store.url))
    mailroom = make_mailroom(settings)
    for ref in cases:
        mailroom.add_case(NewCase(ref), actor="bench")
    return settings


@contextmanager
def workdir(keep: bool, parent: str | None = None) -> Iterator[Path]:
    """A private scratch folder on disk (not tmpfs: the database's fsyncs should cost what they cost)."""
    path = Path(tempfile.mkdtemp(prefix="mrbench-", dir=parent))
    path.chmod(0o700)
    try:
        yield path
    finally:
        if keep:
            print(f"  kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


# -- where the time goes -------------------------------------------------------------------------------------


class StageTimes:
    """Wall time spent inside chosen methods of live objects, summed per stage.

    `wrap` replaces one bound method on one instance with a timing shim that costs about a microsecond per
    call, so the code being measured is the production code. For objects the code makes as it runs (the
    catch-up's `CatchUpWorkers`) the owner is their class, and every instance is timed for the rest of the
    process: a bench's process ends with its run. Stages may nest (decrypt runs inside compose); the table
    says which.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.order: list[str] = []
        self.running = True

    def stop(self) -> None:
        """Stop counting: later calls (rebuilding messages for a baseline, say) are not part of the run."""
        self.running = False

    def add(self, stage: str, seconds: float) -> None:
        if not self.running:
            return
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.calls[stage] = self.calls.get(stage, 0) + 1

    def wrap(self, owner: object, method: str, stage: str) -> None:
        """Time `owner.method` as `stage`; a method the code no longer has is skipped, not an error."""
        original = getattr(owner, method, None)
        if original is None:
            return
        self.order.append(stage)
        if inspect.iscoroutinefunction(original):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    self.add(stage, time.perf_counter() - started)

            setattr(owner, method, timed_async)
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - started)

        setattr(owner, method, timed)

    def figures(self, per: int, label: str) -> list[Figure]:
        """Milliseconds per `label` (per message, per pass...) for every stage that ran, in wrapping order
        (so an "of which" line follows the stage it is part of)."""
        return [
            Figure(f"  {stage} ({self.calls[stage]} calls)", self.seconds[stage] * 1000 / per, f"ms/{label}")
            for stage in self.order
            if stage in self.seconds
        ]
