"""DocumentCrypto with the real gpg binary in throwaway homes: round trips, and every way it must refuse."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import outbox.crypto
from outbox.crypto import DocumentCrypto
from outbox.errors import CryptoError
from tests.support.gpg import GpgHome, GpgKey

pytestmark = pytest.mark.integration

RECORDS = "records@provider.example"
REPORT = b"%PDF-1.7\n" + os.urandom(256 * 1024) + b"\n%%EOF\n"


@pytest.fixture(scope="module")
def keyring() -> Iterator[tuple[GpgHome, GpgKey]]:
    """The mailroom's own home: a key generated here, so gpg trusts it ultimately."""
    with GpgHome() as home:
        yield home, home.generate_key(RECORDS)


@pytest.fixture(scope="module")
def imported() -> Iterator[tuple[GpgHome, str]]:
    """A second home holding only the public half of someone else's key, as an operator would import it."""
    with GpgHome() as source, GpgHome() as home:
        key = source.generate_key("archive@provider.example")
        assert home.import_keys(source.export_public(key.fingerprint)) == (key.fingerprint,)
        yield home, key.fingerprint


def test_round_trip_by_fingerprint(keyring: tuple[GpgHome, GpgKey]) -> None:
    home, key = keyring
    crypto = DocumentCrypto(str(home.path), (key.fingerprint,))
    crypto.check()
    sealed = crypto.encrypt(REPORT)
    assert sealed and sealed != REPORT
    assert b"%PDF" not in sealed
    assert sealed[0] & 0x80  # a binary OpenPGP packet, not ASCII armour
    assert crypto.decrypt(sealed) == REPORT


def test_round_trip_by_email_for_a_trusted_key(keyring: tuple[GpgHome, GpgKey]) -> None:
    home, _ = keyring
    crypto = DocumentCrypto(str(home.path), (RECORDS.upper(),))
    assert crypto.decrypt(crypto.encrypt(b"small")) == b"small"


def test_empty_document_round_trips(keyring: tuple[GpgHome, GpgKey]) -> None:
    home, key = keyring
    crypto = DocumentCrypto(str(home.path), (key.fingerprint,))
    assert crypto.decrypt(crypto.encrypt(b"")) == b""


def test_an_untrusted_key_named_by_email_is_refused(imported: tuple[GpgHome, str]) -> None:
    home, _ = imported
    crypto = DocumentCrypto(str(home.path), ("archive@provider.example",))
    with pytest.raises(CryptoError, match=r"archive@provider\.example: key is not trusted \(validity -\)"):
        crypto.check()
    with pytest.raises(CryptoError, match="not trusted"):
        crypto.encrypt(REPORT)


def test_the_same_key_pinned_by_fingerprint_is_used(imported: tuple[GpgHome, str]) -> None:
    home, fingerprint = imported
    crypto = DocumentCrypto(str(home.path), (f"0x{fingerprint.lower()}",))
    assert crypto.trust_by_pin
    crypto.check()
    assert crypto.encrypt(REPORT)


def test_a_mixed_list_needs_every_key_trusted(
    keyring: tuple[GpgHome, GpgKey], imported: tuple[GpgHome, str]
) -> None:
    home, fingerprint = imported
    crypto = DocumentCrypto(str(home.path), (fingerprint, "archive@provider.example"))
    assert not crypto.trust_by_pin
    with pytest.raises(CryptoError, match="not trusted"):
        crypto.check()


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"small", "invalid recipient"), (REPORT, "it gave up before reading the input")],
    ids=["small", "large"],
)
def test_gpgs_refusal_after_check_becomes_an_error(data: bytes, reason: str) -> None:
    # check() passes while the key is trusted; then its trust is withdrawn behind our back and gpg itself
    # refuses. python-gnupg reports that as ok=False with EMPTY output (small input) or re-raises a
    # broken pipe (large input, gpg exits before reading it): neither may come back as b"".
    with GpgHome() as source, GpgHome() as home:
        key = source.generate_key("archive@provider.example")
        home.import_keys(source.export_public(key.fingerprint))
        home.trust(key.fingerprint, "TRUST_ULTIMATE")
        crypto = DocumentCrypto(str(home.path), ("archive@provider.example",))
        crypto.check()
        home.trust(key.fingerprint, "TRUST_UNDEFINED")
        with pytest.raises(
            CryptoError, match=rf"gpg could not encrypt to archive@provider\.example: {reason}"
        ):
            crypto.encrypt(data)


def test_a_missing_key_is_named(keyring: tuple[GpgHome, GpgKey]) -> None:
    home, _ = keyring
    crypto = DocumentCrypto(str(home.path), ("nobody@provider.example",))
    with pytest.raises(CryptoError, match=r"nobody@provider\.example: no such public key"):
        crypto.check()
    with pytest.raises(CryptoError, match="no such public key"):
        crypto.encrypt(b"x")


def test_an_ambiguous_recipient_is_refused() -> None:
    with GpgHome() as home:
        home.generate_key("twin@provider.example", name="First")
        home.generate_key("twin@provider.example", name="Second")
        with pytest.raises(CryptoError, match="matches 2 keys; configure the fingerprint"):
            DocumentCrypto(str(home.path), ("twin@provider.example",)).check()


@pytest.mark.parametrize(
    "data",
    [b"not an OpenPGP message", b"\x85\x01\x0c\x03garbage", b"-----BEGIN PGP MESSAGE-----\n\nxx\n-----END"],
)
def test_data_that_is_not_ours_is_an_error(keyring: tuple[GpgHome, GpgKey], data: bytes) -> None:
    home, key = keyring
    with pytest.raises(CryptoError, match="gpg could not decrypt"):
        DocumentCrypto(str(home.path), (key.fingerprint,)).decrypt(data)


def test_truncated_ciphertext_is_an_error(keyring: tuple[GpgHome, GpgKey]) -> None:
    home, key = keyring
    crypto = DocumentCrypto(str(home.path), (key.fingerprint,))
    sealed = crypto.encrypt(REPORT)
    with pytest.raises(CryptoError, match="gpg could not decrypt"):
        crypto.decrypt(sealed[: len(sealed) // 2])


def test_empty_input_is_an_error(keyring: tuple[GpgHome, GpgKey]) -> None:
    home, key = keyring
    with pytest.raises(CryptoError, match="input is empty"):
        DocumentCrypto(str(home.path), (key.fingerprint,)).decrypt(b"")


def test_a_home_without_the_secret_key_cannot_decrypt(
    keyring: tuple[GpgHome, GpgKey], imported: tuple[GpgHome, str]
) -> None:
    home, key = keyring
    sealed = DocumentCrypto(str(home.path), (key.fingerprint,)).encrypt(REPORT)
    other, fingerprint = imported
    with pytest.raises(CryptoError, match="no secret key"):
        DocumentCrypto(str(other.path), (fingerprint,)).decrypt(sealed)


@pytest.mark.parametrize(
    ("data", "without_passphrase"),
    [(b"small report", "need passphrase"), (REPORT, "gave up before reading the input")],
    ids=["small", "large"],
)
def test_passphrase_protected_key(data: bytes, without_passphrase: str) -> None:
    with GpgHome() as home:
        key = home.generate_key(RECORDS, passphrase="correct horse battery")
        plain = DocumentCrypto(str(home.path), (key.fingerprint,))
        sealed = plain.encrypt(data)
        with pytest.raises(CryptoError, match=r"decryption failed|gave up"):
            plain.decrypt(sealed, passphrase="wrong")
        with pytest.raises(CryptoError, match=without_passphrase):
            plain.decrypt(sealed)
        assert plain.decrypt(sealed, "correct horse battery") == data
        configured = DocumentCrypto(str(home.path), (key.fingerprint,), passphrase="correct horse battery")
        assert configured.decrypt(sealed) == data


def test_missing_home_and_missing_binary(tmp_path: object, keyring: tuple[GpgHome, GpgKey]) -> None:
    with pytest.raises(CryptoError, match="does not exist"):
        DocumentCrypto("/nonexistent/gnupg", ("x@provider.example",))
    home, key = keyring
    with pytest.raises(CryptoError, match="cannot run the GnuPG binary 'gpg-not-installed'"):
        DocumentCrypto(str(home.path), (key.fingerprint,), gpg_binary="gpg-not-installed")
    with pytest.raises(CryptoError, match="no GnuPG recipients"):
        DocumentCrypto(str(home.path), ())


def test_many_documents_encrypt_in_one_run_and_each_decrypts(keyring: tuple[GpgHome, GpgKey]) -> None:
    home, key = keyring
    crypto = DocumentCrypto(str(home.path), (key.fingerprint,))
    documents = [os.urandom(n) for n in (1, 3800, 70_000)] + [b"From: a@b\n\nhello\n"]
    sealed = crypto.encrypt_many(documents)
    assert all(blob and blob not in documents for blob in sealed)
    assert [crypto.decrypt(blob) for blob in sealed] == documents
    assert crypto.encrypt_many([]) == []


def test_a_batch_puts_its_plaintext_in_memory_and_leaves_none_behind(
    keyring: tuple[GpgHome, GpgKey], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, key = keyring
    crypto = DocumentCrypto(str(home.path), (key.fingerprint,))
    memory = tmp_path / "memory"
    memory.mkdir()
    monkeypatch.setattr(outbox.crypto, "MEMORY_FOLDER", memory)
    made: list[str] = []
    real_run = DocumentCrypto._run

    def watching(command: list[str], stdin: bytes) -> str:
        made.extend(str(Path(arg).parent) for arg in command if arg.startswith(str(memory)))
        return real_run(command, stdin)

    monkeypatch.setattr(DocumentCrypto, "_run", staticmethod(watching))
    documents = [b"one\n", b"two\n" * 100, b"three\n"]
    assert [crypto.decrypt(blob) for blob in crypto.encrypt_many(documents)] == documents
    assert made and all(folder.startswith(str(memory / "mailroom-")) for folder in made)
    assert list(memory.iterdir()) == []  # the scratch folder is gone with its plaintext
    # Too big for memory: the system's temporary folder.
    monkeypatch.setattr(outbox.crypto, "MEMORY_LIMIT", 10)
    made.clear()
    assert [crypto.decrypt(blob) for blob in crypto.encrypt_many(documents)] == documents
    assert made == []


def test_a_batch_whose_memory_folder_fails_is_encrypted_from_the_temporary_folder(
    keyring: tuple[GpgHome, GpgKey], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, key = keyring
    crypto = DocumentCrypto(str(home.path), (key.fingerprint,))
    gone = tmp_path / "gone"  # usable when asked, removed before it is used: as a full /dev/shm fails
    gone.mkdir()
    monkeypatch.setattr(outbox.crypto, "memory_scratch", lambda size: str(gone))
    gone.rmdir()
    documents = [b"one\n", b"two\n"]
    assert [crypto.decrypt(blob) for blob in crypto.encrypt_many(documents)] == documents


def test_encrypting_many_to_a_key_gpg_refuses_is_an_error_never_empty_output() -> None:
    with GpgHome() as source, GpgHome() as home:
        key = source.generate_key("archive@provider.example")
        home.import_keys(source.export_public(key.fingerprint))
        home.trust(key.fingerprint, "TRUST_ULTIMATE")
        crypto = DocumentCrypto(str(home.path), ("archive@provider.example",))
        crypto.check()
        home.trust(key.fingerprint, "TRUST_UNDEFINED")
        with pytest.raises(CryptoError, match=r"gpg could not encrypt to archive@provider\.example"):
            crypto.encrypt_many([b"one", b"two", b"three"])
