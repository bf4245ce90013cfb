"""A store at the newest schema with the sample corpora's trust settings, and the Inbox over it: for
tests that push whole corpora through the inbound pipeline without a mailbox."""

from __future__ import annotations

from pathlib import Path

from mailroom.cli.main import run
from mailroom.daemon.wiring import make_mailroom
from mailroom.edges.configfile import load_settings
from mailroom.service.clocks import ClockKeeper
from mailroom.service.inbound import Inbox
from mailroom.service.mailroom import Mailroom
from tests.conftest import base_sections, write_config


def fresh_inbox(root: Path) -> tuple[Mailroom, Inbox]:
    """The samples carry Authentication-Results from mx.provider.example, as the provider's MTA adds them."""
    sections = base_sections(root)
    sections["trust"] = {"authserv_ids": ["mx.provider.example"]}
    config = write_config(root / "mailroom.toml", sections)
    assert run(["--config", str(config), "db", "upgrade"]) == 0
    settings = load_settings(config)
    mailroom = make_mailroom(settings)
    inbox = Inbox(
        settings, mailroom.engine, mailroom.documents, mailroom.now, ClockKeeper(settings), mailroom.nino_key
    )
    return mailroom, inbox
