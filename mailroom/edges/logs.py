"""Logging to stderr: journald adds the time under systemd, so the time is printed only elsewhere.

One INFO line per meaningful event; ids and states, never message bodies, names or NI numbers.
"""

from __future__ import annotations

import logging
import os
import sys


def configure(level: str) -> None:
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = (
        "%(levelname)s %(name)s: %(message)s"
        if under_journald
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (SQL, SMTP and IMAP protocol lines, the scheduler's every run) stays at WARNING.
    for noisy in (
        "sqlalchemy",
        "alembic",
        "aiosmtplib",
        "imapclient",
        "apscheduler",
        "gnupg",
        "pdfminer",
        "asyncio",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
