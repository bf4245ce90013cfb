"""The read-only commands' light path (issue 13): the same answers as the services give, without loading
the daemon's wiring, the writing services, the classifier, gpg or (where no working day is counted) the
holidays package."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailroom.daemon.wiring import make_mailroom
from mailroom.edges.configfile import load_settings
from mailroom.service.clocks import ClockKeeper
from mailroom.service.inbound import Inbox
from tests.conftest import Env
from tests.support import pdfs

ROOT = Path(__file__).parents[3]
HEAVY = (
    "mailroom.daemon.wiring",
    "mailroom.service.mailroom",
    "mailroom.service.inbound",
    "mailroom.service.clocks",
    "mailroom.service.sending",
    "mailroom.service.reading",
    "outbox.crypto",
    "gnupg",
    "parsers.classify",
    "pdfplumber",
    "alembic",
)
ORM = ("sqlalchemy", "sqlmodel", "mailroom.store.models")  # what only `status` still reads through
WRAPPER = """
import json, sys
from mailroom.cli.main import run
code = run(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


@pytest.fixture
def store(env: Env) -> Env:
    assert env.run("case", "add", "MH-200001", "--atw-ref", "ATW1").code == 0
    assert env.run("case", "add", "MH-200002").code == 0
    pdf = env.root / "report.pdf"
    pdf.write_bytes(pdfs.arial_12_report())
    for ref in ("MH-200001", "MH-200002"):
        assert env.run("submit", str(pdf), "--case", ref, "--type", "support-plan").code == 0
    return env


def _json(env: Env, *args: str) -> object:
    result = env.run(*args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def _as_json(value: object) -> object:
    return json.loads(json.dumps(value, default=str))


def test_queue_and_escalations_answer_as_the_service_does(store: Env) -> None:
    mailroom = make_mailroom(load_settings(store.config))
    assert _json(store, "queue") == _as_json(mailroom.queue(limit=1000).rows)
    assert _json(store, "queue", "--state", "queued") == _as_json(mailroom.queue(state="queued").rows)
    assert _json(store, "escalations") == _as_json(mailroom.escalations().rows)
    mailroom.engine.dispose()


def test_case_show_answers_as_the_service_does(store: Env) -> None:
    mailroom = make_mailroom(load_settings(store.config))
    assert _json(store, "case", "show", "MH-200001") == _as_json(mailroom.case_view("MH-200001"))
    mailroom.engine.dispose()


def test_inbox_and_clocks_answer_as_the_services_do(store: Env) -> None:
    settings = load_settings(store.config)
    mailroom = make_mailroom(settings)
    keeper = ClockKeeper(settings)
    inbox = Inbox(settings, mailroom.engine, mailroom.documents, mailroom.now, keeper, mailroom.nino_key)
    assert _json(store, "inbox") == _as_json(inbox.desk.listing(state=None, limit=1000).rows)
    assert _json(store, "inbox", "--state", "matched") == _as_json(inbox.desk.listing(state="matched").rows)
    from datetime import date

    shown = _json(store, "clocks", "--as-of", "2030-01-15")
    assert isinstance(shown, dict)
    assert shown["clocks"] == _as_json(keeper.preview(mailroom.engine, date(2030, 1, 15), limit=1000).rows)
    mailroom.engine.dispose()


def _loaded(env: Env, tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    report = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", WRAPPER, str(report), "--config", str(env.config), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=False,
        timeout=60,
    )
    answer = json.loads(report.read_text())
    return answer["code"], set(answer["modules"])


@pytest.mark.parametrize(
    ("args", "calendar", "orm"),
    [
        (("queue",), False, False),
        (("queue", "--state", "queued"), False, False),
        (("inbox",), False, False),
        (("escalations",), False, False),
        (("case", "show", "MH-200001"), False, False),
        (("clocks",), True, False),
        (("clocks", "--as-of", "2030-01-15"), True, False),
        (("status",), True, True),
    ],
)
def test_a_read_only_command_loads_only_what_it_needs(
    store: Env, tmp_path: Path, args: tuple[str, ...], calendar: bool, orm: bool
) -> None:
    code, modules = _loaded(store, tmp_path, *args)
    assert code in (0, 1)  # status says 1 when no daemon runs
    assert not [m for m in HEAVY if m in modules]
    if not calendar:
        assert "holidays" not in modules
    if not orm:
        assert not [m for m in ORM if m in modules]


def test_a_read_only_command_still_refuses_an_old_schema(make_env: object) -> None:
    env = make_env()  # type: ignore[operator]
    for args in (("queue",), ("inbox",), ("clocks",), ("escalations",), ("case", "show", "MH-1")):
        result = env.run(*args)
        assert result.code != 0
        assert result.err.strip() == "mailroom: error: the database is empty; run `mailroom db upgrade` first"


def test_case_show_prints_the_newest_timelines_and_says_what_it_left_out(store: Env) -> None:
    pdf = store.root / "report.pdf"
    for _ in range(2):
        assert store.run("submit", str(pdf), "--case", "MH-200001", "--type", "exit-report").code == 0
    ids = [s["id"] for s in _json(store, "case", "show", "MH-200001")["submissions"]]  # type: ignore[index]
    assert len(ids) == 3
    shown = store.run("case", "show", "MH-200001", "--timelines", "1")
    assert shown.code == 0
    assert f"Timeline of submission {ids[-1]}" in shown.out
    assert not [i for i in ids[:-1] if f"Timeline of submission {i}" in shown.out]
    assert "not shown: 2 timeline(s); --timelines N, --all or --json show them" in shown.out
    every = store.run("case", "show", "MH-200001", "--all")
    assert all(f"Timeline of submission {i}" in every.out for i in ids)
    assert "not shown" not in every.out
    assert "not shown" not in store.run("case", "show", "MH-200001").out  # 3 of the default 10
    view = _json(store, "case", "show", "MH-200001", "--timelines", "0")
    assert all(s["timeline"] for s in view["submissions"])  # type: ignore[index]  # --json: every one
    from mailroom.cli import cases

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cases, "SUBMISSIONS_SHOWN", 2)
        newest = store.run("case", "show", "MH-200001", "--timelines", "1")
    assert "not shown: 1 older submission(s), 1 timeline(s);" in newest.out
    listed = [int(m) for m in re.findall(r"^│ (\d+) +│ [a-z-]+ +│", newest.out, re.MULTILINE)]
    assert listed == ids[1:]
