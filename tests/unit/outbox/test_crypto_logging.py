"""crypto's one import-time rule: python-gnupg's DEBUG output (plaintext bytes) never reaches the logs."""

from __future__ import annotations

import logging

import outbox.crypto  # noqa: F401  (importing it applies the cap)


def test_python_gnupg_debug_logging_is_capped_at_info() -> None:
    logger = logging.getLogger("gnupg")
    # At INFO or stricter (the daemon's logging set-up raises it to WARNING), even with the root at DEBUG.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        assert logger.level >= logging.INFO
        assert not logger.isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(level)
