"""The spool folder: claimed by rename, routed by sidecar, file name or PDF text, refused with a reason."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.support import pdfs
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.integration


@pytest.fixture
def spool_env(make_daemon_env: Callable[..., Env], tmp_path: Path) -> Env:
    env = make_daemon_env(intake={"spool_dir": str(tmp_path / "spool")})
    (tmp_path / "spool").mkdir(mode=0o700)
    assert env.run("case", "add", "MH-100001").code == 0
    return env


def queue(env: Env) -> list[dict[str, object]]:
    return list(json.loads(env.run("queue", "--json").out))


def test_files_are_routed_by_sidecar_name_or_text_and_the_plain_pdf_is_gone(
    spool_env: Env, relay: SmtpServer
) -> None:
    spool = spool_env.root / "spool"
    (spool / "a.pdf").write_bytes(pdfs.arial_12_report())
    (spool / "a.json").write_text(json.dumps({"case": "MH-100001", "type": "support-plan"}))
    (spool / "MH-100001_support-plan.pdf").write_bytes(pdfs.arial_12_report())
    (spool / "scan-0042.pdf").write_bytes(pdfs.arial_12_report())  # case and type only inside the PDF
    assert spool_env.run("run", "--once").code == 0
    rows = queue(spool_env)
    assert [r["state"] for r in rows] == ["sent", "sent", "sent"]
    assert len(relay.messages) == 3
    assert sorted(p.name for p in spool.rglob("*") if p.is_file()) == []


def test_a_file_that_cannot_be_taken_goes_to_failed_with_the_reason(spool_env: Env) -> None:
    spool = spool_env.root / "spool"
    (spool / "MH-999999_exit-report.pdf").write_bytes(pdfs.arial_12_report())
    (spool / "notes.pdf").write_bytes(b"not a pdf at all")
    assert spool_env.run("run", "--once").code == 0
    failed = spool / "failed"
    reasons = {p.name: p.read_text() for p in failed.glob("*.error.txt")}
    assert "no case MH-999999" in reasons["MH-999999_exit-report.pdf.error.txt"]
    assert "notes.pdf.error.txt" in reasons
    assert stat.S_IMODE((failed / "notes.pdf.error.txt").stat().st_mode) == 0o600
    assert queue(spool_env) == []


def test_a_claimed_file_left_by_a_crash_is_submitted_once(spool_env: Env) -> None:
    spool = spool_env.root / "spool"
    claimed = spool / ".claimed"
    claimed.mkdir(mode=0o700)
    data = pdfs.arial_12_report()
    (claimed / "MH-100001_support-plan.pdf").write_bytes(data)
    # The crash came after the submission was committed but before the file was cleaned up.
    assert spool_env.run("run", "--once").code == 0
    (claimed / "MH-100001_support-plan.pdf").write_bytes(data)
    assert spool_env.run("run", "--once").code == 0
    assert len(queue(spool_env)) == 1
