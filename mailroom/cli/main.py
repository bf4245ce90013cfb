"""The `mailroom` command: the root group with every command group added, and the entry points.

python -m mailroom ...   ·   the `mailroom` console script   ·   tests call `run([...])`
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

from mailroom.cli import cases, clocks, inbox, operators, queue, records, status
from mailroom.cli.frame import app, invoke

for _module in (cases, queue, inbox, clocks, records, operators, status):
    for _command in _module.COMMANDS:
        app.add_command(_command)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code (tests and the demo call this; `main` exits with it)."""
    return invoke(app, argv)


def main() -> NoReturn:
    sys.exit(run())
