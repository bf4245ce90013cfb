"""The daemon computes bank holidays in a child process (the holidays package is ~9 MB): same calendar."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom.core.config_parse import settings_from_mapping
from mailroom.service.clocks import work_calendar, work_calendar_in_child

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("division", ["england-and-wales", "scotland"])
def test_the_daemons_calendar_from_a_child_process_equals_the_in_process_one(division: str) -> None:
    settings = settings_from_mapping(
        {
            "provider": {"from_address": "a@provider.example", "team_address": "t@provider.example"},
            "escalation": {"performance_manager": "pm@dwp.gov.uk"},
            "gpg": {"encrypt_at_rest": False},
            "calendar": {"division": division, "extra_closures": ["2026-12-29"]},
        },
        source="x",
        base_dir=Path("/"),
    )
    child = work_calendar_in_child(settings)
    assert child == work_calendar(settings)
    assert len(child.bank_holidays) > 200
