"""`mailroom doctor`: is this installation fit to send reports? Each check passes, warns or fails with a fix.

    config          the file loads and validates (nothing else can be checked if not); not group-writable
    secret ...      each secret file the config uses: present, 0600, not empty
    documents, gpg home   the encrypted-documents folder and the gpg home exist and are 0700
    database        reachable and at the latest migration (SQLite: the file is private too)
    stored files    every document the database names is on disk (files no row names only warn)
    gpg keys        every recipient has one usable, trusted key
    gpg round trip  a test text encrypts and decrypts again with the configured passphrase
    smtp login      TLS (certificate verified) and AUTH at the relay, then QUIT; nothing is sent
    imap login      TLS and login at the provider mailbox (creates the processed/quarantine folders)
    templates       the cover text and notice templates load and use only values the mailroom supplies
    allow-list      the DWP inbox, the performance manager and each case's own manager can be sent to
    safety          warns about test-only switches: test_mode, redirect_all_to, a non-default DWP inbox

A check never prints a secret (failures carry the component's one-line error, naming keys and files, not
content). Exit 78 when the config does not load, 1 when any check fails, else 0. SQLAlchemy loads lazily.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailroom.core.config import DWP_INBOX, Settings
from mailroom.core.errors import EX_CONFIG, EX_FAILURE, EX_OK, ConfigError, MailroomError
from mailroom.edges.configfile import load_settings, read_secret

if TYPE_CHECKING:
    import sqlalchemy as sa

MIN_HMAC_KEY_LENGTH = 32
ROUND_TRIP_TEXT = b"mailroom doctor: encryption round trip\n"


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a check's outcome, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": str(self.status), "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Diagnosis:
    config: Path
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        if self.checks and self.checks[0].name == "config" and self.checks[0].status is Status.FAIL:
            return EX_CONFIG
        return EX_OK if self.ok else EX_FAILURE

    def to_dict(self) -> dict[str, Any]:
        return {"config": str(self.config), "ok": self.ok, "checks": [c.to_dict() for c in self.checks]}


def passed(name: str, detail: str) -> Check:
    return Check(name, Status.PASS, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def warned(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.WARN, detail, fix)


# -- the checks ------------------------------------------------------------------------------------------


def check_files(settings: Settings) -> Iterator[Check]:
    config = Path(settings.source)
    mode = config.stat().st_mode
    if mode & 0o022:
        yield failed("config file", f"{config} is writable by group or others", f"chmod go-w {config}")
    else:
        yield passed("config file", f"{config} ({stat.filemode(mode)})")
    yield _private_dir(
        "documents", settings.store.documents_dir, "run `mailroom db upgrade`, which creates it"
    )
    if settings.gpg.encrypt_at_rest:
        yield _private_dir("gpg home", settings.gpg.home, "create it and import the documents key")


def _private_dir(name: str, folder: Path, create: str) -> Check:
    if not folder.is_dir():
        return failed(name, f"{folder} does not exist", create)
    mode = folder.stat().st_mode
    if mode & 0o077:
        return failed(name, f"{folder} is {stat.filemode(mode)}: others can look in", f"chmod 700 {folder}")
    return passed(name, f"{folder} ({stat.filemode(mode)})")


def secret_files(settings: Settings) -> list[tuple[str, Path | None]]:
    """The secret files this config needs: (config key, path)."""
    needed: list[tuple[str, Path | None]] = []
    if settings.smtp.username and settings.smtp.auth == "login":
        needed.append(("[smtp] password_file", settings.smtp.password_file))
    if settings.imap.username and settings.imap.auth == "login":
        needed.append(("[imap] password_file", settings.imap.password_file))
    needed.append(("[matching] nino_hmac_key_file", settings.matching.nino_hmac_key_file))
    if settings.gpg.encrypt_at_rest and settings.gpg.passphrase_file is not None:
        needed.append(("[gpg] passphrase_file", settings.gpg.passphrase_file))
    return needed


def check_secrets(settings: Settings) -> Iterator[Check]:
    for key, path in secret_files(settings):
        name = f"secret {key}"
        try:
            value = read_secret(path, source=settings.source, key=key)
        except ConfigError as exc:
            yield failed(name, exc.problem, _secret_fix(key, path, exc.problem))
            continue
        if key.startswith("[matching]") and len(value) < MIN_HMAC_KEY_LENGTH:
            yield warned(
                name, f"{path} holds a short key", f"use at least {MIN_HMAC_KEY_LENGTH} random characters"
            )
        else:
            yield passed(name, f"{path} (0600)")


def _secret_fix(key: str, path: Path | None, problem: str) -> str:
    if path is None:
        return f"set {key} to a file holding the secret"
    if "chmod" in problem:
        return f"chmod 600 {path}"
    return f"write the secret into {path} (mode 0600) or point {key} at the right file"


def check_database(settings: Settings) -> Iterator[Check]:
    from mailroom.store.engine import make_engine

    try:
        engine = make_engine(settings.store.url)
    except MailroomError as exc:
        yield failed("database", str(exc), "create the folder, or fix [store] url")
        return
    try:
        yield from _schema(engine)
        yield from _sqlite_file(engine)
    finally:
        engine.dispose()


def _schema(engine: sa.Engine) -> Iterator[Check]:
    from mailroom.store.engine import current_revision, head_revision

    try:
        current = current_revision(engine)
    except MailroomError as exc:
        yield failed("database", str(exc), "check [store] url and that the database server is running")
        return
    head = head_revision()
    if current is None:
        yield failed("database", "reachable but empty", "run `mailroom db upgrade`")
    elif current != head:
        yield failed(
            "database", f"at revision {current}; this version needs {head}", "run `mailroom db upgrade`"
        )
    else:
        yield passed("database", f"{_safe_url(engine)} at the latest revision ({head})")


def _sqlite_file(engine: sa.Engine) -> Iterator[Check]:
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return
    path = Path(engine.url.database)
    loose = [p for p in (path, *_sidecars(path)) if p.exists() and p.stat().st_mode & 0o077]
    if loose:
        names = " ".join(str(p) for p in loose)
        yield failed("database file", f"{names}: readable by group or others", f"chmod 600 {names}")
    else:
        yield passed("database file", f"{path} (private)")


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _safe_url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def check_stored_files(settings: Settings) -> Iterator[Check]:
    """Every document a row names is on disk; files no row names are only counted (a crash leaves some)."""
    root = settings.store.documents_dir
    named = _named_files(settings)
    if named is None or not root.is_dir():
        return  # the database and documents checks have said why
    on_disk = {p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}
    missing, orphans = named - on_disk, on_disk - named
    if missing:
        yield failed(
            "stored files",
            f"{len(missing)} document(s) the database names are not in {root}",
            "restore the documents folder from a backup taken after the database's",
        )
    elif orphans:
        yield warned(
            "stored files",
            f"{len(orphans)} file(s) in {root} that no row names (a crash between writing and committing)",
            "harmless; remove them once you are sure they belong to nothing",
        )
    else:
        yield passed("stored files", f"{len(on_disk)} document(s), each named by the database")


def _named_files(settings: Settings) -> set[Path] | None:
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session, col, select

    from mailroom.store.engine import make_engine
    from mailroom.store.models import Document, InboundMessage

    try:
        engine = make_engine(settings.store.url)
    except MailroomError:
        return None
    try:
        with Session(engine) as session:
            named = set(
                session.exec(select(Document.stored_path).where(col(Document.stored_path).is_not(None)))
            )
            named |= set(
                session.exec(
                    select(InboundMessage.stored_path).where(col(InboundMessage.stored_path).is_not(None))
                )
            )
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return {Path(str(path)) for path in named}


def check_gpg(settings: Settings) -> Iterator[Check]:
    if not settings.gpg.encrypt_at_rest:
        yield warned(
            "gpg keys", "encrypt_at_rest = false: documents are stored in plain text", "test systems only"
        )
        return
    from mailroom.daemon.wiring import make_cipher
    from outbox.errors import CryptoError

    try:
        cipher = make_cipher(settings)
    except ConfigError as exc:
        yield failed("gpg keys", exc.problem, _gpg_fix(exc.problem, settings))
        return
    yield passed("gpg keys", f"{len(settings.gpg.recipients)} recipient key(s) usable in {settings.gpg.home}")
    try:
        back = cipher.decrypt(cipher.encrypt(ROUND_TRIP_TEXT))
    except CryptoError as exc:
        yield failed(
            "gpg round trip",
            str(exc),
            "import the documents key's secret part into the gpg home; its passphrase into passphrase_file",
        )
        return
    if back != ROUND_TRIP_TEXT:
        yield failed(
            "gpg round trip", "decrypted text differs from what was encrypted", "check the gpg install"
        )
    else:
        yield passed("gpg round trip", "encrypted and decrypted a test text")


def _gpg_fix(problem: str, settings: Settings) -> str:
    home = settings.gpg.home
    if "no such public key" in problem:
        return f"import the key: gpg --homedir {home} --import KEY.asc (or fix [gpg] recipients)"
    if "not trusted" in problem:
        return "configure [gpg] recipients by full fingerprint, or sign the key in this keyring"
    if "passphrase_file" in problem:
        return "write the key's passphrase into [gpg] passphrase_file (mode 0600)"
    return f"check [gpg] recipients against `gpg --homedir {home} --list-keys`"


def check_smtp(settings: Settings) -> Iterator[Check]:
    import asyncio

    from mailroom.daemon.app import smtp_transport
    from outbox.errors import SendError

    s = settings.smtp
    where = f"{s.host}:{s.port}"
    try:
        transport = smtp_transport(settings)
        asyncio.run(transport.verify())
    except ConfigError as exc:
        yield failed("smtp login", exc.problem, f"fix {exc.key or '[smtp]'} in {settings.source}")
    except (SendError, ValueError) as exc:
        yield failed("smtp login", str(exc), _login_fix("smtp", str(exc), s.auth))
    else:
        who = f"as {s.username} ({s.auth})" if s.username else "without AUTH"
        yield passed("smtp login", f"{where}: {s.security}, certificate verified, logged in {who}")


def check_imap(settings: Settings) -> Iterator[Check]:
    from mailroom.daemon.app import imap_mailbox

    i = settings.imap
    if not i.username:
        yield failed(
            "imap login", "[imap] username is empty: DWP's replies are never read", "set [imap] username"
        )
        return
    try:
        mailbox = imap_mailbox(settings)
        assert mailbox is not None  # a username is set
        try:
            mailbox.connect()
        finally:
            mailbox.close()
    except ConfigError as exc:
        yield failed("imap login", exc.problem, f"fix {exc.key or '[imap]'} in {settings.source}")
    except (MailroomError, ValueError) as exc:
        yield failed("imap login", str(exc), _login_fix("imap", str(exc), i.auth))
    else:
        yield passed("imap login", f"{i.host}:{i.port}: {i.security}, logged in as {i.username} ({i.auth})")


# How the SMTP and IMAP edges word a refused login or token (outbox.transport, mailroom.mailbox).
_AUTH_WORDS = (
    "refused auth",
    "login as",
    "authentication",
    "credentials",
    "oauth2 token",
    "xoauth2 token",
)


# An SMTP reply 535 (RFC 4954 §6) as the edges word it: "refused <stage>: 535 ...".
_AUTH_CODE = re.compile(r"refused [a-z ]+: 535\b")


def _login_fix(section: str, error: str, auth: str) -> str:
    text = error.lower()
    if "certificate" in text or "ca_file" in text:
        return f"set [{section}] ca_file to the CA that signed the server's certificate"
    # Before the auth words: a port number such as 51535 must not read as SMTP reply 535.
    if "connection failed" in text or "timed out" in text:
        return _reach_fix(section)
    if _AUTH_CODE.search(text) or any(word in text for word in _AUTH_WORDS):
        if auth == "xoauth2":
            return (
                f"check that [{section}] token_command prints a valid access token for [{section}] username"
            )
        return f"check [{section}] username and the password in [{section}] password_file"
    if "starttls" in text or "plain text" in text:
        return f'use [{section}] security = "tls" or a server that offers STARTTLS'
    return _reach_fix(section)


def _reach_fix(section: str) -> str:
    return f"check [{section}] host, port and security, and that the server is reachable from here"


def check_templates(settings: Settings) -> Iterator[Check]:
    from mailroom.service.wording import TEMPLATES, Wording

    folder = settings.provider.templates_dir
    try:
        Wording(settings).check()
    except ConfigError as exc:
        yield failed(
            "templates",
            exc.problem,
            "edit the template it names (placeholders and Subject lines: docs/sending.md §2); "
            "the daemon will not start until it loads",
        )
        return
    if folder is None:
        yield passed("templates", f"{len(TEMPLATES)} package defaults (no [provider] templates_dir)")
        return
    own = sorted(name for name in TEMPLATES if (folder / f"{name}.txt").is_file())
    shown = ", ".join(own) if own else "none; all package defaults"
    yield passed("templates", f"{folder}: site wording for {shown}")


def check_allow_list(settings: Settings) -> Iterator[Check]:
    from outbox.allowlist import AllowList
    from outbox.errors import RecipientNotAllowed

    allowed = AllowList(settings.allowed_recipients())
    wanted = {
        "DWP inbox": settings.dwp.inbox,
        "performance manager": settings.escalation.performance_manager,
        "provider team": settings.provider.team_address,
    }
    missing = [name for name, address in wanted.items() if not address or not allowed.allows(address)]
    for manager in _case_managers(settings):
        try:
            allowed.check((manager,))
        except RecipientNotAllowed:
            missing.append(f"a case's performance manager ({manager})")
    if missing:
        yield failed(
            "allow-list",
            f"not on the outbound allow-list: {', '.join(missing)}",
            "add the address to [outbox] extra_allowed_recipients",
        )
    else:
        yield passed(
            "allow-list", f"{len(allowed.addresses)} address(es), DWP inbox and performance manager included"
        )


def _case_managers(settings: Settings) -> list[str]:
    """Per-case performance managers in the database, if it can be read (the database check says if not)."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session, col, select

    from mailroom.store.engine import make_engine
    from mailroom.store.models import Case

    try:
        engine = make_engine(settings.store.url)
    except MailroomError:
        return []
    query = select(Case.performance_manager).where(col(Case.performance_manager).is_not(None))
    try:
        with Session(engine) as session:
            return sorted({str(address) for address in session.exec(query)})
    except SQLAlchemyError:
        return []
    finally:
        engine.dispose()


def check_safety(settings: Settings) -> Iterator[Check]:
    if settings.daemon.test_mode:
        yield warned(
            "safety", "[daemon] test_mode = true allows time travel", "never on a live system: set it false"
        )
    if settings.outbox.redirect_all_to:
        yield warned(
            "safety",
            f"[outbox] redirect_all_to: everything goes to {settings.outbox.redirect_all_to}, nothing to DWP",
            "test systems only: empty it on a live system",
        )
    if settings.dwp.inbox != DWP_INBOX:
        yield warned(
            "safety",
            f"reports go to {settings.dwp.inbox}, not the MHSS inbox of memo 08 ({DWP_INBOX})",
            "check [dwp] inbox",
        )


CHECKS: dict[str, Callable[[Settings], Iterator[Check]]] = {
    "files": check_files,
    "secrets": check_secrets,
    "database": check_database,
    "stored-files": check_stored_files,
    "gpg": check_gpg,
    "smtp": check_smtp,
    "imap": check_imap,
    "templates": check_templates,
    "allow-list": check_allow_list,
    "safety": check_safety,
}


def diagnose(config: Path, *, skip: Collection[str] = ()) -> Diagnosis:
    """Run every check (except the groups in `skip`, by CHECKS key) against the config at `config`."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        return Diagnosis(config, (failed("config", str(exc), "fix the file: the line above names the key"),))
    results = [passed("config", f"{config} is valid")]
    for group, check in CHECKS.items():
        if group in skip:
            results.append(Check(group, Status.SKIP, "skipped (--skip)"))
            continue
        results.extend(check(settings))
    return Diagnosis(config, tuple(results))
