"""Who this daemon process is, in terms that outlive it: host, boot, pid and the pid's start time.

A pid alone is reused after a reboot or a busy day; the pair (boot id, pid, start time in clock ticks)
names one process for ever, so another daemon on the same host can tell whether the owner of a row is
still alive (`is_alive`). Linux /proc only; elsewhere the boot id and start time are empty and only the
random instance id is unique.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class ProcessIdentity:
    instance_id: str
    host: str
    boot_id: str
    pid: int
    started: str


def this_process() -> ProcessIdentity:
    pid = os.getpid()
    return ProcessIdentity(uuid.uuid4().hex, socket.gethostname(), boot_id(), pid, start_ticks(pid))


def boot_id() -> str:
    try:
        return BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> str:
    """Field 22 of /proc/PID/stat (starttime), or "" when the process does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def is_alive(identity: ProcessIdentity) -> bool | None:
    """True or False for a process of this host; None when that cannot be known from here."""
    if identity.host != socket.gethostname():
        return None
    current = boot_id()
    if not current or not identity.boot_id:
        return None
    if identity.boot_id != current:
        return False  # an earlier boot of this host: nothing of it runs now
    return start_ticks(identity.pid) == identity.started
