"""The whole harness under one folder: CA, gpg home, Dovecot, relay, DWP simulator, config and samples.

    with Harness(Path("/tmp/mh")) as harness:       # start() ... stop()
        info = harness.info                          # where everything is (also DIR/harness.json)
        ...                                          # mailroom --config info.config ...

Layout of the folder:

    mailroom.toml   the ready config          harness.json   ports and paths, for `mailroom harness ...`
    ca.pem          the CA of every server    scenario.toml  what the DWP simulator does
    secrets/        passwords and HMAC key    gnupg/         the gpg home (documents key, no passphrase)
    dovecot/        the provider mailbox      relay/         every message the relay accepted (NNNN.eml)
    dwp/            what the simulator got and sent back      samples/   sample report PDFs
    spool/          drop PDFs here            mailroom.db, documents/    the mailroom's own state

`stop()` stops every process the harness started (Dovecot, gpg-agent) and its threads (relay, courier);
with `remove=True` the folder goes too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import secrets
import shutil
import smtplib
import stat
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import trustme

from mailroom.core.config import Settings
from mailroom.core.errors import InputError
from mailroom.daemon.wiring import system_now
from mailroom.edges.configfile import load_settings
from mailroom.harness.configfile import AUTHSERV_ID, MAILBOX, TEAM, ConfigInputs, config_text
from mailroom.harness.courier import Courier
from mailroom.harness.dovecot import HOST, Dovecot
from mailroom.harness.dwp import DWP_INBOX
from mailroom.harness.gpg import GpgHome
from mailroom.harness.relay import Relay, RelayedMail
from mailroom.harness.samples import write_samples
from mailroom.harness.scenario import DEFAULT_SCENARIO, load_scenario
from mailroom.harness.simulator import DwpSimulator, SimulatorEvent
from mailroom.store.documents import write_private

log = logging.getLogger(__name__)
# Unix socket paths (Dovecot's in dovecot/run, gpg-agent's in gnupg/) end at 108 bytes.
MAX_ROOT_LENGTH = 60
INFO_FILE = "harness.json"


@dataclass(frozen=True)
class HarnessInfo:
    """Where everything of one running harness is; written to DIR/harness.json."""

    root: Path
    config: Path
    scenario: Path
    ca_file: Path
    smtp_port: int
    imap_port: int
    imaps_port: int
    lmtp_port: int
    mailbox: str
    team: str
    gpg_home: Path
    samples: Path
    relay_mail: Path
    dwp_mail: Path
    spool: Path
    dovecot_log: Path

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def read(cls, root: Path) -> HarnessInfo:
        """The info of the harness in `root`; InputError if there is none."""
        hints = typing.get_type_hints(cls)
        try:
            data = json.loads((root / INFO_FILE).read_text(encoding="utf-8"))
            values: dict[str, Any] = {
                f.name: Path(data[f.name]) if hints[f.name] is Path else data[f.name] for f in fields(cls)
            }
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(
                f"{root}: no harness here (no readable {INFO_FILE}); start one with `mailroom harness`"
            ) from None
        return cls(**values)


class Harness:
    """Starts and stops the harness's parts in `root` (new or empty); use as a context manager."""

    def __init__(
        self,
        root: Path,
        *,
        scenario: Path | None = None,
        log_level: str = "INFO",
        on_event: Callable[[SimulatorEvent], None] | None = None,
        now: Callable[[], datetime] = system_now,
        remove: bool = False,
    ) -> None:
        if len(str(root)) > MAX_ROOT_LENGTH:
            raise InputError(
                f"{root}: harness folder path too long for unix sockets (max {MAX_ROOT_LENGTH} characters)"
            )
        self.root = root
        self.remove = remove
        self._scenario_file = scenario
        self._log_level = log_level
        self._on_event = on_event
        self._now = now
        self._stack = contextlib.ExitStack()
        self._info: HarnessInfo | None = None
        self._simulator: DwpSimulator | None = None
        self._relay: Relay | None = None
        self._courier: Courier | None = None
        self._dovecot: Dovecot | None = None
        self.settings: Settings | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> HarnessInfo:
        _prepare_root(self.root)
        try:
            self._info = self._start()
        except BaseException:
            self.stop()
            raise
        return self._info

    def stop(self) -> None:
        """Stop everything started so far (in reverse order); idempotent."""
        self._stack.close()
        if self.remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def info(self) -> HarnessInfo:
        if self._info is None:
            raise RuntimeError("harness not started")
        return self._info

    @property
    def simulator(self) -> DwpSimulator:
        if self._simulator is None:
            raise RuntimeError("harness not started")
        return self._simulator

    @property
    def relay(self) -> Relay:
        if self._relay is None:
            raise RuntimeError("harness not started")
        return self._relay

    @property
    def courier(self) -> Courier:
        if self._courier is None:
            raise RuntimeError("harness not started")
        return self._courier

    # -- start-up, in dependency order --------------------------------------------------------------------

    def _start(self) -> HarnessInfo:
        root = self.root
        passwords = _write_secrets(root / "secrets")
        # An empty file is an empty SQLite database; made here it is 0600, and so are its -wal and -shm.
        write_private(root / "mailroom.db", b"")
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(root / "ca.pem"))
        gpg_home, fingerprint = self._start_gpg()
        dovecot = self._start_dovecot(ca, passwords)
        courier = self._start_courier()
        relay = Relay(
            root / "relay",
            ca=ca,
            username=MAILBOX,
            password=passwords["smtp-password"],
            on_message=self._route,
        )
        config = self._write_config(relay.port, dovecot.imaps_port, gpg_home, fingerprint)
        self.settings = settings = load_settings(config)
        scenario = self._scenario_file or _default_scenario(root / "scenario.toml")
        self._simulator = DwpSimulator(
            load_scenario(scenario, known_reasons=settings.rejection_reasons),
            settings,
            authserv_id=AUTHSERV_ID,
            folder=root / "dwp",
            courier=courier,
            deliver=lambda raw: dovecot.deliver_lmtp(MAILBOX, raw, sender=DWP_INBOX),
            now=self._now,
            on_event=self._on_event,
        )
        relay.start()
        self._stack.callback(relay.stop)
        self._relay = relay
        write_samples(root / "samples")
        info = _info(root, config, scenario, relay, dovecot, gpg_home)
        (root / INFO_FILE).write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")
        return info

    def _start_gpg(self) -> tuple[Path, str]:
        gpg = GpgHome(path=self.root / "gnupg")
        self._stack.callback(gpg.kill_agent)
        key = gpg.generate_key("documents@provider.test", name="Harness documents")
        return gpg.path, key.fingerprint

    def _start_dovecot(self, ca: trustme.CA, passwords: dict[str, str]) -> Dovecot:
        users = {MAILBOX: passwords["imap-password"], TEAM: passwords["team-password"]}
        dovecot = Dovecot(users, root=self.root / "dovecot", ca=ca)
        dovecot.start()
        self._stack.callback(dovecot.stop)
        self._dovecot = dovecot
        return dovecot

    def _start_courier(self) -> Courier:
        courier = Courier(on_error=self._delivery_failed)
        courier.start()
        self._stack.callback(courier.stop)
        self._courier = courier
        return courier

    def _write_config(self, smtp_port: int, imaps_port: int, gpg_home: Path, fingerprint: str) -> Path:
        inputs = ConfigInputs(
            root=self.root,
            ca_file=self.root / "ca.pem",
            smtp_port=smtp_port,
            imaps_port=imaps_port,
            gpg_home=gpg_home,
            gpg_fingerprint=fingerprint,
            secrets=self.root / "secrets",
            log_level=self._log_level,
        )
        config = self.root / "mailroom.toml"
        config.write_text(config_text(inputs), encoding="utf-8")
        return config

    def _route(self, mail: RelayedMail) -> None:
        """Runs in the relay's thread: reports to the simulator, mail for a local mailbox by LMTP."""
        assert self._simulator is not None and self._dovecot is not None
        dovecot = self._dovecot
        for recipient in mail.recipients:
            address = recipient.lower()
            if address == DWP_INBOX:
                self._simulator.receive(mail.content)
            elif address in dovecot.users:
                self.courier.schedule(0, functools.partial(_lmtp, dovecot, address, mail))
            # Anything else (the performance manager at DWP) stays in relay/ only: it "left".

    def _delivery_failed(self, error: BaseException) -> None:
        log.warning("harness: a delivery failed: %s", error)


def _info(
    root: Path, config: Path, scenario: Path, relay: Relay, dovecot: Dovecot, gpg_home: Path
) -> HarnessInfo:
    return HarnessInfo(
        root=root,
        config=config,
        scenario=scenario,
        ca_file=root / "ca.pem",
        smtp_port=relay.port,
        imap_port=dovecot.imap_port,
        imaps_port=dovecot.imaps_port,
        lmtp_port=dovecot.lmtp_port,
        mailbox=MAILBOX,
        team=TEAM,
        gpg_home=gpg_home,
        samples=root / "samples",
        relay_mail=relay.folder,
        dwp_mail=root / "dwp",
        spool=root / "spool",
        dovecot_log=dovecot.log_file,
    )


def _lmtp(dovecot: Dovecot, address: str, mail: RelayedMail) -> None:
    dovecot.deliver_lmtp(address, mail.content, sender=mail.mail_from)


def deliver_to_mailbox(info: HarnessInfo, raw: bytes, *, sender: str = DWP_INBOX) -> None:
    """Put a message into the provider mailbox by LMTP, as if it had just arrived from outside."""
    try:
        with smtplib.LMTP(HOST, info.lmtp_port, timeout=10) as lmtp:
            lmtp.sendmail(sender, [info.mailbox], raw)
    except (OSError, smtplib.SMTPException) as exc:
        raise InputError(
            f"the harness in {info.root} is not running (LMTP {HOST}:{info.lmtp_port}: {exc})"
        ) from None


def _prepare_root(root: Path) -> None:
    if root.exists() and any(root.iterdir()):
        raise InputError(f"{root}: not empty; give a new or empty folder for the harness")
    root.mkdir(parents=True, exist_ok=True)
    # As root, Dovecot's mail and auth processes run as other users (vmail, dovecot) and must reach
    # dovecot/ inside; everything secret in the folder is 0600 or 0700 itself.
    root.chmod(0o755)
    if os.geteuid() == 0:
        closed = next((p for p in root.parents if not p.stat().st_mode & stat.S_IXOTH), None)
        if closed is not None:
            raise InputError(
                f"{closed} is closed to other users, so Dovecot cannot reach {root}: chmod o+x it"
            )


def _write_secrets(folder: Path) -> dict[str, str]:
    folder.mkdir(mode=0o700)
    values = {
        "smtp-password": secrets.token_urlsafe(18),
        "imap-password": secrets.token_urlsafe(18),
        "team-password": secrets.token_urlsafe(18),
        "nino-hmac-key": secrets.token_urlsafe(48),
    }
    for name, value in values.items():
        write_private(folder / name, value.encode("ascii"))
    return values


def _default_scenario(path: Path) -> Path:
    path.write_text(DEFAULT_SCENARIO, encoding="utf-8")
    return path
