"""Shared fixtures: a hermetic environment, config files in a temp folder, and a CLI runner."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailroom.cli.main import run

HMAC_KEY = "k" * 48


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`mailroom run` configures the root logger for the process; in tests that must not outlive the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MAILROOM_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def base_sections(root: Path) -> dict[str, dict[str, Any]]:
    key = root / "nino.key"
    if not key.exists():
        key.write_text(HMAC_KEY)
        key.chmod(0o600)
    return {
        "provider": {"from_address": "reports@provider.example", "team_address": "team@provider.example"},
        "escalation": {"performance_manager": "pm@dwp.gov.uk"},
        "store": {"url": f"sqlite:///{root}/mailroom.db", "documents_dir": str(root / "documents")},
        "gpg": {"encrypt_at_rest": False},
        "matching": {"nino_hmac_key_file": str(key)},
    }


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Env:
    """A config file in a temp folder, and a way to run the CLI against it."""

    root: Path
    config: Path
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str) -> Result:
        self.capsys.readouterr()
        code = run(["--config", str(self.config), *args])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    @property
    def db_path(self) -> Path:
        return self.root / "mailroom.db"

    def snapshot(self) -> tuple[list[str], list[str]]:
        """Every row of every table, and every stored file: to prove a failed command changed nothing."""
        rows: list[str] = []
        if self.db_path.exists():
            with sqlite3.connect(self.db_path) as connection:
                rows = [line for line in connection.iterdump() if line.startswith("INSERT")]
        documents = self.root / "documents"
        files = sorted(str(p) for p in documents.rglob("*")) if documents.exists() else []
        return rows, files


@pytest.fixture
def make_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Env]:
    def factory(**overrides: dict[str, Any]) -> Env:
        sections = base_sections(tmp_path)
        for section, values in overrides.items():
            sections.setdefault(section, {}).update(values)
        config = write_config(tmp_path / "mailroom.toml", sections)
        return Env(tmp_path, config, capsys)

    return factory


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Iterator[Env]:
    environment = make_env()
    assert environment.run("db", "upgrade").code == 0
    yield environment
