"""The IMAP edge: the provider mailbox where DWP's acknowledgements, rejection notices and bounces arrive.

Correctness comes from UIDVALIDITY plus the last UID processed per folder (kept by the caller in the
database); IDLE is only a doorbell that says "catch up now". Everything here is blocking imapclient code for
one worker thread (the inbox runner calls it through `asyncio.to_thread`); only `stop()` may be called from
another thread. Library and socket errors are translated at this edge:

    MailboxError                                   anything the server refused (NO/BAD), or a config problem
    ├── MailboxUnavailable(…, ConnectionError)     network, timeout, TLS, BYE: reconnect with backoff
    │   └── MailboxUntrusted                       the certificate did not verify (nothing was sent)
    ├── MailboxAuthError                           login refused: permanent until the configuration changes
    └── UidValidityChanged                         the folder was recreated: resync by Message-ID

After MailboxUnavailable the connection is gone; call `connect()` again. Messages and passwords never reach
logs or error text. Keep the `imapclient` logger above DEBUG in production: at DEBUG it logs protocol lines,
message bodies included.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Self

from imapclient.exceptions import (
    CapabilityError,
    IMAPClientAbortError,
    IMAPClientError,
    LoginError,
    ProtocolError,
)

from mailroom.edges.imap import (
    FetchedMessage,
    ImapConnection,
    ImapOptions,
    MailboxAuthError,
    MailboxError,
    MailboxUnavailable,
    MailboxUntrusted,
    Namespace,
    UidValidityChanged,
    as_text,
    capability_names,
    chunks,
    header_message_id,
    is_loopback,
    keepalive,
    tls_context,
    uids_above,
    upper_names,
)

log = logging.getLogger(__name__)

IDLE_SLICE_SECONDS = 0.5  # how often a waiting IDLE looks at the stop flag
DELETED = b"\\Deleted"
_NEW_MAIL = frozenset({b"EXISTS", b"RECENT"})


# -- values -------------------------------------------------------------------------------------------------


# -- the mailbox -------------------------------------------------------------------------------------------


class Mailbox:
    """A connection to the provider mailbox. Not thread-safe, except `stop()`."""

    def __init__(self, options: ImapOptions, *, stop_event: threading.Event | None = None) -> None:
        self.options = options
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._tls = tls_context(options)
        self._client: Any = None
        self._capabilities: frozenset[str] = frozenset()
        self._namespace = Namespace()
        self._selected: str | None = None
        self._marks: dict[str, tuple[int, int]] = {}  # folder -> (uidvalidity, highest UID handed out)
        self._warned: set[str] = set()

    # -- connection ---------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, secure, log in, learn the folder layout and create the processed/quarantine folders."""
        self.close()
        self._refuse_plaintext_unless_loopback()
        try:
            with self._edge("connect"):
                self._client = self._open()
                self._login()
                ignored = upper_names(self.options.ignore_capabilities)
                self._capabilities = capability_names(self._client) - ignored
                self._namespace = self._discover_namespace()
                self._ensure_folders()
        except BaseException:
            self._drop()
            raise
        o = self.options
        log.info("IMAP connected to %s as %s (%s)", o.where, o.username, o.security)

    def close(self) -> None:
        """Log out if connected; never raises (the connection may already be dead)."""
        client, self._client = self._client, None
        self._selected = None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # a dead connection cannot be logged out of: just drop it
            with contextlib.suppress(Exception):
                client.shutdown()

    def stop(self) -> None:
        """Ask a `wait_for_change` in progress (in another thread) to return False within about a second."""
        self._stop.set()

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def capabilities(self) -> frozenset[str]:
        """The server's capabilities after login, minus `ignore_capabilities`."""
        return self._capabilities

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------------------

    def uidvalidity(self, folder: str) -> int:
        """The folder's current UIDVALIDITY.

        Asked by a fresh SELECT, not STATUS: for the selected folder Dovecot answers STATUS from the
        session's view, which still shows the old value after the folder was deleted and recreated.
        """
        with self._edge(f"SELECT {folder}"):
            return int(self._reselect(folder)[b"UIDVALIDITY"])

    def fetch_since(
        self, folder: str, last_uid: int, *, batch: int = 100, expect_uidvalidity: int | None = None
    ) -> Iterator[FetchedMessage]:
        """Every message with UID > last_uid, oldest first, fetched `batch` at a time without setting \\Seen.

        With `expect_uidvalidity`, raises UidValidityChanged before fetching anything if the folder's
        UIDVALIDITY differs (then `last_uid` refers to messages that no longer exist).
        """
        if batch < 1 or last_uid < 0:
            raise ValueError("batch must be >= 1 and last_uid >= 0")
        uidvalidity, uids = self._new_uids(folder, last_uid, expect_uidvalidity)
        for chunk in chunks(uids, batch):
            with self._edge(f"FETCH in {folder}"):
                data = self._require().fetch(chunk, [b"BODY.PEEK[]", b"INTERNALDATE"])
            for uid in chunk:
                item = data.get(uid)
                if item is None or b"BODY[]" not in item:
                    continue  # expunged by someone else between SEARCH and FETCH
                self._marks[folder] = (uidvalidity, uid)
                yield FetchedMessage(folder, uidvalidity, uid, item[b"BODY[]"], item.get(b"INTERNALDATE"))

    def uids_through(self, folder: str, last_uid: int) -> list[int]:
        """UIDs still in `folder` up to and including `last_uid`: messages read before and not moved."""
        if last_uid < 1:
            return []
        with self._edge(f"SEARCH in {folder}"):
            client = self._select(folder)
            return sorted(uid for uid in client.search(["UID", f"1:{last_uid}"]) if uid <= last_uid)

    def find_uid_by_message_id(self, folder: str, message_id: str) -> int | None:
        """The lowest UID in `folder` whose Message-ID is exactly `message_id` (angle brackets optional)."""
        wanted = message_id.strip()
        wanted = wanted if wanted.startswith("<") else f"<{wanted}>"
        if not wanted.isascii():
            return None  # a Message-ID is ASCII by RFC 5322; anything else cannot be on the server
        with self._edge(f"SEARCH Message-ID in {folder}"):
            self._reselect(folder)  # used after a folder was recreated: never trust the session's view
            client = self._require()
            candidates = sorted(client.search(["HEADER", "Message-ID", wanted]))
            if not candidates:
                return None
            # HEADER search is a substring match: confirm the exact value.
            headers = client.fetch(candidates, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        for uid in candidates:
            if header_message_id(headers.get(uid, {})) == wanted:
                return int(uid)
        return None

    # -- changing -----------------------------------------------------------------------------------------

    def move(self, folder: str, uids: Sequence[int], target: str) -> None:
        """Move messages in one command: MOVE when offered, else COPY + \\Deleted + (UID) EXPUNGE."""
        chosen = list(uids)
        if not chosen:
            return
        with self._edge(f"move from {folder} to {target}"):
            client = self._select(folder)
            destination = self._name(target)
            if "MOVE" in self._capabilities:
                client.move(chosen, destination)
            else:
                self._copy_and_expunge(client, chosen, destination)

    def flag(self, folder: str, uid: int, flag: str | bytes) -> None:
        """Add one flag (for example \\Seen or \\Flagged) to one message."""
        value = flag.encode("ascii") if isinstance(flag, str) else flag
        with self._edge(f"STORE flag in {folder}"):
            self._select(folder).add_flags([uid], [value])

    # -- waiting ------------------------------------------------------------------------------------------

    def wait_for_change(self, folder: str, timeout: float) -> bool:
        """Block until new mail may be in `folder` (True), or `timeout` passes or stop() is called (False).

        With IDLE this returns about 0.5 s after Dovecot sees a delivery; the IDLE command is renewed at
        least every `idle_renew_minutes`. Without IDLE it sleeps `poll_seconds` (at most `timeout`) and
        returns True, so the caller's catch-up runs as a poll. Mail that arrived after the last
        `fetch_since` of this folder returns True at once: no delivery falls between catch-up and IDLE.
        """
        if self._stop.is_set():
            return False
        with self._edge(f"wait for mail in {folder}"):
            uidvalidity = int(self._reselect(folder)[b"UIDVALIDITY"])
            client = self._require()
            if self._arrived_since_catch_up(client, folder, uidvalidity):
                return True
            if "IDLE" not in self._capabilities:
                self._warn_once("IDLE", "server has no IDLE: polling every %s s", self.options.poll_seconds)
                return not self._stop.wait(min(timeout, self.options.poll_seconds))
            return self._idle(client, timeout)

    # -- internals: connection ----------------------------------------------------------------------------

    def _refuse_plaintext_unless_loopback(self) -> None:
        o = self.options
        if o.security == "none" and not (o.allow_insecure_loopback and is_loopback(o.host)):
            raise MailboxError(
                f"IMAP {o.where}: security = none is allowed only to a loopback host"
                " with allow_insecure_loopback = true"
            )

    def _open(self) -> Any:
        o = self.options
        implicit_tls = o.security == "tls"
        client = ImapConnection(
            o.host, port=o.port, ssl=implicit_tls, ssl_context=self._tls, timeout=o.timeout
        )
        try:
            if o.security == "starttls":
                self._starttls(client)
            keepalive(client.socket())
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        client.normalise_times = False  # INTERNALDATE as an aware datetime
        return client

    def _starttls(self, client: Any) -> None:
        if not client.has_capability("STARTTLS"):
            where = self.options.where
            raise MailboxError(f"IMAP {where} does not offer STARTTLS; refusing to log in without TLS")
        client.starttls(self._tls)

    def _login(self) -> None:
        o = self.options
        if o.auth == "xoauth2":
            assert o.token_provider is not None  # checked by ImapOptions
            try:
                token = o.token_provider()
            except Exception as error:
                raise MailboxAuthError(
                    f"IMAP {o.where}: the XOAUTH2 token provider failed ({type(error).__name__})"
                ) from error
            try:
                self._client.oauth2_login(o.username, token)
            except LoginError:
                if o.token_refused is not None:
                    o.token_refused()
                raise
        else:
            self._client.login(o.username, o.password)

    def _discover_namespace(self) -> Namespace:
        client = self._client
        if "NAMESPACE" in self._capabilities:
            personal = client.namespace().personal
            if personal:
                prefix, delimiter = personal[0]
                return Namespace(prefix or "", delimiter or None)
        listing = client.list_folders("", "")  # LIST "" "" answers with the hierarchy delimiter
        delimiter = listing[0][1] if listing else b"/"
        return Namespace("", delimiter.decode() if isinstance(delimiter, bytes) else delimiter)

    def _ensure_folders(self) -> None:
        for folder in (self.options.processed_folder, self.options.quarantine_folder):
            name = self._name(folder)
            if self._client.folder_exists(name):
                continue
            try:
                self._client.create_folder(name)
            except IMAPClientError:
                if not self._client.folder_exists(name):  # another instance may have just created it
                    raise
                continue
            with contextlib.suppress(IMAPClientError):
                self._client.subscribe_folder(name)  # so people see it in their mail client
            log.info("IMAP created folder %s at %s", name, self.options.where)

    def _require(self) -> Any:
        if self._client is None:
            raise MailboxUnavailable(f"IMAP {self.options.where}: not connected")
        return self._client

    def _drop(self) -> None:
        """Forget a broken connection without talking to the server."""
        client, self._client = self._client, None
        self._selected = None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    @contextlib.contextmanager
    def _edge(self, action: str) -> Iterator[None]:
        """Translate imapclient, socket and TLS errors; a broken connection is dropped."""
        where = self.options.where
        try:
            yield
        except MailboxError as error:
            if isinstance(error, MailboxUnavailable):
                self._drop()
            raise
        except LoginError as error:
            self._drop()
            user = self.options.username
            raise MailboxAuthError(f"IMAP login as {user} at {where} refused: {error}") from error
        except ssl.SSLCertVerificationError as error:
            self._drop()
            raise MailboxUntrusted(
                f"IMAP {where}: server certificate not trusted ({error.verify_message})"
            ) from error
        except (IMAPClientAbortError, ProtocolError, OSError) as error:
            self._drop()
            raise MailboxUnavailable(f"IMAP {action} at {where} failed: {self._describe(error)}") from error
        except (CapabilityError, IMAPClientError) as error:
            raise MailboxError(f"IMAP {action} at {where} failed: {error}") from error

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, TimeoutError):
            return f"no answer within {self.options.timeout:g} s"
        return str(error) or type(error).__name__

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("IMAP %s: " + message, self.options.where, *args)

    # -- internals: folders and messages --------------------------------------------------------------------

    def _name(self, folder: str) -> str:
        return self._namespace.server_name(folder)

    def _select(self, folder: str) -> Any:
        """The client with `folder` selected, reusing the current selection."""
        if self._selected != self._name(folder):
            self._reselect(folder)
        return self._require()

    def _reselect(self, folder: str) -> dict[bytes, Any]:
        """SELECT `folder` again and return the response (UIDVALIDITY, UIDNEXT, EXISTS...)."""
        client = self._require()
        name = self._name(folder)
        self._selected = None
        info: dict[bytes, Any] = client.select_folder(name)
        self._selected = name
        return info

    def _new_uids(self, folder: str, last_uid: int, expect: int | None) -> tuple[int, list[int]]:
        with self._edge(f"SEARCH in {folder}"):
            info = self._reselect(folder)  # always fresh: UIDVALIDITY anchors the whole catch-up
            uidvalidity = int(info[b"UIDVALIDITY"])
            if expect is not None and expect != uidvalidity:
                raise UidValidityChanged(folder, expect, uidvalidity)
            self._marks[folder] = (uidvalidity, last_uid)
            uidnext = info.get(b"UIDNEXT")
            if uidnext is not None and int(uidnext) <= last_uid + 1:
                return uidvalidity, []
            return uidvalidity, uids_above(self._require(), last_uid)

    def _arrived_since_catch_up(self, client: Any, folder: str, uidvalidity: int) -> bool:
        mark = self._marks.get(folder)
        if mark is None:
            return False
        marked_uidvalidity, last = mark
        if marked_uidvalidity != uidvalidity:
            return True  # the catch-up will find out and raise UidValidityChanged
        return bool(uids_above(client, last))

    def _copy_and_expunge(self, client: Any, uids: list[int], destination: str) -> None:
        self._warn_once("MOVE", "server has no MOVE: moving by COPY, \\Deleted and EXPUNGE")
        client.copy(uids, destination)
        client.add_flags(uids, [DELETED], silent=True)
        if "UIDPLUS" in self._capabilities:
            client.uid_expunge(uids)
        else:
            self._warn_once("UIDPLUS", "server has no UIDPLUS: EXPUNGE removes every \\Deleted message")
            client.expunge()

    # -- internals: IDLE ----------------------------------------------------------------------------------

    def _idle(self, client: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        renew = self.options.idle_renew_minutes * 60.0
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                if self._idle_once(client, min(left, renew)):
                    return True
            except IMAPClientError as error:
                # A refused or garbled IDLE leaves the protocol state unknown: only a new connection is safe.
                raise MailboxUnavailable(f"IMAP IDLE at {self.options.where} failed: {error}") from error
        return False

    def _idle_once(self, client: Any, period: float) -> bool:
        """One IDLE command lasting at most `period`; True when the server reported new mail."""
        client.idle()
        end = time.monotonic() + period
        changed = False
        while not changed and not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            slice_ = min(IDLE_SLICE_SECONDS, left)
            started = time.monotonic()
            responses = client.idle_check(timeout=slice_)
            changed = self._reports_new_mail(responses)
            if not responses and time.monotonic() - started < slice_ / 2:
                # Readable but nothing to read: usually the server closed the connection. DONE proves it
                # (it raises on a dead connection) and otherwise simply starts a fresh IDLE.
                break
        _, trailing = client.idle_done()
        return changed or self._reports_new_mail(trailing)

    def _reports_new_mail(self, responses: Iterable[Any]) -> bool:
        changed = False
        for response in responses:
            if len(response) >= 2 and response[0] == b"BYE":
                # imapclient splits the untagged line into words: keep them all, so the log says why.
                reason = " ".join(as_text(part) for part in response[1:])
                raise MailboxUnavailable(f"IMAP {self.options.where} said BYE: {reason}")
            changed = changed or (len(response) >= 2 and response[1] in _NEW_MAIL)
        return changed


# -- reconnecting -------------------------------------------------------------------------------------------


# -- helpers ------------------------------------------------------------------------------------------------
