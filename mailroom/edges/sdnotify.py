"""Tell systemd how the daemon is doing: the sd_notify datagram protocol, without libsystemd.

Under `Type=notify` systemd counts the unit as started only once READY=1 arrives, shows STATUS= in
`systemctl status`, and with `WatchdogSec=` kills and restarts the daemon when WATCHDOG=1 stops arriving.
Outside systemd (no $NOTIFY_SOCKET: a terminal, the tests, the harness) every call is a no-op, so callers
never ask whether they run under systemd.

Notifications are best effort: an unreachable socket is logged once at DEBUG and never raised, because
failing to tell systemd must not stop the mailroom sending reports. STATUS text is shown to anyone who
can run `systemctl status`, so it must never hold personal data: counts and states only.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

# systemd drains its notification socket at once; the bound only matters if PID 1 is wedged, and then
# the daemon should carry on rather than block its event loop.
_SEND_TIMEOUT_SECONDS = 1.0


def notify_address(value: str) -> str | None:
    """The AF_UNIX address $NOTIFY_SOCKET names: an absolute path, or "@name" in the abstract namespace."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class SystemdNotifier:
    """Sends READY, STOPPING, STATUS and WATCHDOG to systemd; does nothing when systemd did not start us.

    The environment is read once, at construction. Each method returns True when systemd was told,
    False when there is nobody to tell or the socket could not be reached.
    """

    __slots__ = ("_address", "_pid", "_socket_name", "_unreachable", "_watchdog_pid", "_watchdog_usec")

    def __init__(self, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        self._socket_name = env.get("NOTIFY_SOCKET", "")
        self._address = notify_address(self._socket_name)
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        self._pid = os.getpid() if pid is None else pid
        self._unreachable = False
        if self._socket_name and self._address is None:
            log.debug("NOTIFY_SOCKET is neither an absolute path nor @abstract; systemd is not told")

    @property
    def enabled(self) -> bool:
        """True when systemd gave us a notification socket."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """READY=1: start-up is complete and the runners are working; systemd may order others after us."""
        return self._send("READY=1", status)

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1: shutdown has begun, so systemd does not mistake the quiet for a hang."""
        return self._send("STOPPING=1", status)

    def watchdog(self) -> bool:
        """WATCHDOG=1: still alive. Send it only when every runner is, or the watchdog is pointless."""
        return self._send("WATCHDOG=1", None)

    def status(self, text: str) -> bool:
        """STATUS=: one line for `systemctl status`. No personal data: it is readable by every user."""
        return self._send(None, text)

    def watchdog_interval(self) -> float | None:
        """Seconds systemd waits for a WATCHDOG=1 ping (WatchdogSec=), or None when there is no watchdog.

        Ping at half this interval. $WATCHDOG_PID names the process the watchdog is meant for; a child
        that inherited the variables (gpg, a token command) must not think it is watched.
        """
        if self._address is None or (self._watchdog_pid and self._watchdog_pid != str(self._pid)):
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 1_000_000 if usec > 0 else None

    def _send(self, state: str | None, status: str | None) -> bool:
        if self._address is None:
            return False
        lines = [state] if state else []
        if status is not None:
            # The protocol is one assignment per line: a newline in the text would start a new field.
            lines.append("STATUS=" + " ".join(status.split()))
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(_SEND_TIMEOUT_SECONDS)
                sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            if not self._unreachable:
                log.debug("systemd notify socket %s unreachable (%s); skipping", self._socket_name, exc)
                self._unreachable = True
            return False
        if self._unreachable:
            log.debug("systemd notify socket %s reachable again", self._socket_name)
            self._unreachable = False
        return True
