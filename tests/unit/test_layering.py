"""The dependency rules of design.md §5, checked on the source so they cannot erode quietly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PURE_CORE = ["config", "states", "workdays", "deadlines", "identity", "audit_rules", "claims"]
PURE_FORBIDDEN = {
    "sqlmodel",
    "sqlalchemy",
    "imapclient",
    "aiosmtplib",
    "gnupg",
    "pdfplumber",
    "asyncio",
    "alembic",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("module", [m for m in PURE_CORE if (ROOT / "mailroom" / f"{m}.py").exists()])
def test_pure_core_imports_no_io_library(module: str) -> None:
    bad = _imports(ROOT / "mailroom" / f"{module}.py") & PURE_FORBIDDEN
    assert not bad, f"mailroom/{module}.py imports {bad}"


@pytest.mark.parametrize(
    ("package", "forbidden"), [("parsers", {"mailroom", "outbox"}), ("outbox", {"mailroom", "parsers"})]
)
def test_libraries_do_not_import_the_app_or_each_other(package: str, forbidden: set[str]) -> None:
    for path in _modules(package):
        bad = _imports(path) & forbidden
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_only_parsers_pdf_imports_pdfplumber() -> None:
    users = [
        p.relative_to(ROOT).as_posix()
        for pkg in ("mailroom", "parsers", "outbox")
        for p in _modules(pkg)
        if {"pdfplumber", "pdfminer"} & _imports(p)
    ]
    assert set(users) <= {"parsers/pdf.py"}


def test_layering_test_sees_the_modules() -> None:
    # Guards the guard: if the tree moved, the checks above would pass vacuously.
    assert len(_modules("mailroom")) > 5
    assert (ROOT / "mailroom" / "states.py").exists()
