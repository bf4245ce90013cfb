"""Starts and stops the command server beside the daemon (`[daemon] command_socket`; mailroom/cli/server.py
says what it does). It is an accelerator for the CLI, never needed for the daemon's own work: if it
cannot start, the daemon logs why once and the CLI runs commands in its own processes as before.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
STOP_SECONDS = 5.0


@dataclass
class CommandServer:
    process: subprocess.Popen[bytes]
    lifeline: int  # the daemon's end of a pipe; the server ends when it closes, even after a kill -9

    @classmethod
    def start(cls, path: Path) -> CommandServer | None:
        watched, lifeline = os.pipe()
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mailroom.cli.server",
                    "--socket",
                    str(path),
                    "--watch-fd",
                    str(watched),
                ],
                pass_fds=(watched,),
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            os.close(lifeline)
            log.warning("command server not started (%s); CLI commands run in their own processes", exc)
            return None
        finally:
            os.close(watched)
        return cls(process, lifeline)

    def stop(self) -> None:
        # SIGTERM first: closing the lifeline first would race the server's own exit against the signal.
        self.process.terminate()
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.lifeline)
