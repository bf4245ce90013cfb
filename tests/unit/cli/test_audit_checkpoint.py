"""Signed audit checkpoints: `audit checkpoint` signs an intact chain, `audit verify --since` checks the
signature and only what came after; an edit after it, to it, or to the event it names is found."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Env


def key_file(root: Path) -> str:
    path = root / "audit.key"
    path.write_text("k" * 40)
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def env(make_env: Callable[..., Env], tmp_path: Path) -> Env:
    environment = make_env(audit={"checkpoint_key_file": key_file(tmp_path)})
    assert environment.run("db", "upgrade").code == 0
    for ref in ("MH-100001", "MH-100002", "MH-100003"):
        assert environment.run("case", "add", ref).code == 0
    return environment


def sql(env: Env, statement: str) -> None:
    with sqlite3.connect(env.db_path) as db:
        db.execute(statement)


def verify_since(env: Env) -> tuple[int, dict[str, object]]:
    result = env.run("audit", "verify", "--since", "--json")
    return result.code, json.loads(result.out)


def test_verify_since_checks_only_what_came_after_the_checkpoint(env: Env) -> None:
    signed = env.run("audit", "checkpoint", "--json")
    assert signed.code == 0, signed.err
    seq = json.loads(signed.out)["seq"]
    assert env.run("case", "add", "MH-100004").code == 0
    code, report = verify_since(env)
    assert code == 0 and report["intact"] and report["since_event"] == seq
    assert report["events"] == 1  # the case added after the checkpoint, not the whole chain


def test_an_edit_after_the_checkpoint_is_found(env: Env) -> None:
    assert env.run("audit", "checkpoint").code == 0
    assert env.run("case", "add", "MH-100004").code == 0
    sql(env, "UPDATE audit_events SET actor = 'someone-else' WHERE seq = (SELECT MAX(seq) FROM audit_events)")
    code, report = verify_since(env)
    assert code == 1 and not report["intact"]


def test_an_edited_checkpoint_or_the_event_it_names_is_found(env: Env) -> None:
    assert env.run("audit", "checkpoint").code == 0
    sql(env, "UPDATE audit_checkpoints SET seq = seq - 1")  # move it back, past an event someone edited
    code, report = verify_since(env)
    assert code == 1 and "signature does not match" in str(report["problems"])
    sql(env, "UPDATE audit_checkpoints SET seq = seq + 1")
    assert verify_since(env)[0] == 0
    flipped = "CASE WHEN substr(hash, 1, 1) = '0' THEN '1' ELSE '0' END || substr(hash, 2)"
    sql(env, f"UPDATE audit_events SET hash = {flipped} WHERE seq = (SELECT seq FROM audit_checkpoints)")
    code, report = verify_since(env)
    assert code == 1 and "not the event the checkpoint signed" in str(report["problems"])


def test_no_checkpoint_over_a_broken_chain_and_one_line_without_a_key(
    env: Env, make_env: Callable[..., Env]
) -> None:
    sql(env, "UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2")
    result = env.run("audit", "checkpoint")
    assert result.code == 1 and "no checkpoint is signed over it" in result.err
    assert len(result.err.strip().splitlines()) == 1
    keyless = make_env()
    result = keyless.run("audit", "verify", "--since")
    assert result.code == 78 and "[audit] checkpoint_key_file" in result.err and "Traceback" not in result.err
