"""Builds the real adapters from settings: the one place that knows which class implements what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from mailroom.core.config import Settings
from mailroom.core.errors import ConfigError
from mailroom.edges.configfile import read_secret
from mailroom.service.mailroom import Mailroom
from mailroom.store.documents import Cipher, DocumentStore, PlainCipher
from mailroom.store.engine import make_engine, require_current_schema


def system_now() -> datetime:
    return datetime.now(UTC)


def make_cipher(settings: Settings) -> Cipher:
    if not settings.gpg.encrypt_at_rest:
        return PlainCipher()
    from outbox.crypto import DocumentCrypto
    from outbox.errors import CryptoError

    passphrase = None
    if settings.gpg.passphrase_file is not None:
        passphrase = read_secret(
            settings.gpg.passphrase_file, source=settings.source, key="[gpg] passphrase_file"
        )
    try:
        crypto = DocumentCrypto(
            str(settings.gpg.home),
            settings.gpg.recipients,
            gpg_binary=settings.gpg.binary,
            passphrase=passphrase,
        )
        crypto.check()
    except CryptoError as exc:
        raise ConfigError(settings.source, "[gpg]", str(exc)) from None
    return crypto


def make_documents(settings: Settings) -> DocumentStore:
    """The document store the settings describe (its gpg keys checked: ConfigError if they are not
    usable)."""
    return DocumentStore(
        settings.store.documents_dir, make_cipher(settings), encrypted=settings.gpg.encrypt_at_rest
    )


def make_mailroom(
    settings: Settings, *, engine: Engine | None = None, now: Callable[[], datetime] = system_now
) -> Mailroom:
    engine = engine or make_engine(settings.store.url)
    require_current_schema(engine)
    return Mailroom(settings, engine, make_documents(settings), now)
