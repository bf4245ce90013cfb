"""The command server's wire protocol, shared by the client (`launch`), the server and `status`: standard
library only, so the `mailroom` entry point stays light.

Client to server: one frame (a 4-byte length, then JSON: argv, env, umask, code fingerprint, named files)
with stdin, stdout, stderr and the working folder attached as file descriptors. Server to client: JSON
lines, `{"pid"}` or `{"refused"}` first; after a pid the client answers GO, and only then does the worker
run the command; `{"exit"}` last.
"""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any

HEADER = struct.Struct("!I")
MAX_REQUEST = 1 << 20
GO = b"go\n"  # the client's word that it waits for the worker: before it, the worker runs nothing


def connect(address: Path) -> socket.socket | None:
    """A connection to the command server at `address`; None when nothing answers there (no daemon
    running, or a socket file left by one that was killed)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(address))
    except OSError:
        connection.close()
        return None
    return connection


def encode_request(request: dict[str, Any]) -> bytes:
    body = json.dumps(request).encode("utf-8")
    return HEADER.pack(len(body)) + body
