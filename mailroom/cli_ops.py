"""Operator commands (harness, doctor, demo), registered on the main CLI group."""

from __future__ import annotations

import click


def register(app: click.Group) -> None:
    """Add the operator commands to `app`."""
