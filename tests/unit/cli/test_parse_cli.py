"""`mailroom parse FILE --json`: reads a saved message offline with the site's wording, changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Env

SAMPLES = Path(__file__).parents[2] / "samples" / "mail"
SITE_WORDING = """\
From: Sam Patel <sam.patel@dwp.gov.uk>
To: reports@provider.example
Subject: RE: MHSS Support Plan - MH-100901 [S-000901]
Message-ID: <site-wording@dwp.gov.uk>
Content-Type: text/plain; charset=utf-8

This plan needs another go: it is on the wrong template.
"""


def parse(env: Env, path: Path) -> dict[str, object]:
    result = env.run("parse", str(path), "--json")
    assert result.code == 0, result.err
    return dict(json.loads(result.out))


def test_a_sample_is_read_and_nothing_changes(env: Env) -> None:
    before = env.snapshot()
    view = parse(env, SAMPLES / "rej-01-threaded-plain.eml")
    assert view["kind"] == "rejection"
    assert view["case_refs"] and view["reasons"]
    assert env.snapshot() == before


def test_site_wording_from_the_config_is_used(make_env: Callable[..., Env], tmp_path: Path) -> None:
    message = tmp_path / "site.eml"
    message.write_text(SITE_WORDING)
    built_in = parse(make_env(), message)
    assert built_in["kind"] == "other"

    configured = make_env(
        classify={
            "rejection_phrases": [r"\bneeds another go\b"],
            "reason_phrases": {"format": [r"\bwrong template\b"]},
        }
    )
    view = parse(configured, message)
    assert view["kind"] == "rejection"
    assert view["reasons"] == ["format"]


def test_a_missing_file_is_one_line_and_non_zero(env: Env, tmp_path: Path) -> None:
    result = env.run("parse", str(tmp_path / "nowhere.eml"), "--json")
    assert result.code != 0
    assert len(result.err.strip().splitlines()) == 1 and "nowhere.eml" in result.err


def test_ingest_refuses_a_file_that_is_not_mail_and_stores_nothing(env: Env, tmp_path: Path) -> None:
    not_mail = tmp_path / "notes.txt"
    not_mail.write_bytes(b"\x00\x01binary, not a message\n")
    before = env.snapshot()
    result = env.run("ingest", str(SAMPLES / "ack-01-exchange-autoreply-headers.eml"), str(not_mail))
    assert result.code == 1
    assert result.err.strip().count("\n") == 0 and "notes.txt" in result.err
    assert env.snapshot() == before  # the good file before it was not ingested either
