"""The package arrows of docs/architecture.md, checked on the source so they cannot erode quietly.

Every import counts, at module level or inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LIBRARIES = ("parsers", "outbox")

# What each package of mailroom/ may import besides itself: the layers below it, never one above or beside.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "store": frozenset({"core"}),
    "edges": frozenset({"core"}),
    "service": frozenset({"core", "store", "edges", *LIBRARIES}),
    "daemon": frozenset({"core", "store", "edges", "service", *LIBRARIES}),
    "harness": frozenset({"core", "store", "edges", "service", "daemon", *LIBRARIES}),
    "cli": frozenset({"core", "store", "edges", "service", "daemon", "harness", *LIBRARIES}),
    "": frozenset({"cli"}),  # mailroom/__init__.py and __main__.py
}
# The pure core uses no I/O library, no event loop and no clock of its own.
CORE_FORBIDDEN_MODULES = frozenset(
    {
        "sqlmodel",
        "sqlalchemy",
        "alembic",
        "imapclient",
        "aiosmtplib",
        "gnupg",
        "pdfplumber",
        "asyncio",
        "socket",
        "ssl",
        "subprocess",
        "threading",
        "smtplib",
        "imaplib",
        "logging",
    }
)
# Calls that would read or write files or ask the clock (datetime.time(...) is a value, not the clock).
CORE_FORBIDDEN_METHODS = frozenset(
    {"read_text", "read_bytes", "write_text", "write_bytes", "mkdir", "unlink", "now", "today", "utcnow"}
)
CORE_FORBIDDEN_FUNCTIONS = frozenset({"open", "monotonic", "perf_counter"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(package: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py")) if "versions" not in p.parts}


MODULES = source_modules("mailroom")


def imported_names(tree: ast.AST) -> set[str]:
    """Every module an import statement names, with `from a.b import c` giving a.b.c when that is a module."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """mailroom module -> the mailroom modules (and libraries) it imports, packages' __init__ left out."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for imported in imported_names(ast.parse(path.read_text(encoding="utf-8"))):
            top = imported.split(".")[0]
            if top in LIBRARIES:
                found.add(top)
            elif top == "mailroom" and imported in modules and not _is_package(modules[imported]):
                found.add(imported)
        graph[name] = found - {name}
    return graph


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] in LIBRARIES:
        return parts[0]
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else ""


def upward_imports(graph: Mapping[str, Iterable[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        own = layer(module)
        for target in targets:
            other = layer(target)
            if other != own and other not in ALLOWED[own]:
                bad.append(f"{module} ({own or 'mailroom'}) imports {target} ({other})")
    return sorted(bad)


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


GRAPH = import_graph(MODULES)


def test_no_package_imports_a_layer_above_or_beside_it() -> None:
    assert upward_imports(GRAPH) == []


def test_no_import_cycle_between_modules() -> None:
    assert cycles(GRAPH) == []


def test_an_upward_import_is_caught() -> None:
    broken = {module: set(targets) for module, targets in GRAPH.items()}
    broken["mailroom.core.states"].add("mailroom.service.inbound")
    broken["mailroom.store.queries"].add("mailroom.edges.mailbox")
    broken["mailroom.service.records"].add("mailroom.cli.frame")
    assert upward_imports(broken) == [
        "mailroom.core.states (core) imports mailroom.service.inbound (service)",
        "mailroom.service.records (service) imports mailroom.cli.frame (cli)",
        "mailroom.store.queries (store) imports mailroom.edges.mailbox (edges)",
    ]


def test_an_upward_import_in_source_is_caught(tmp_path: Path) -> None:
    # The same check over real files: a core module that lazily imports the store.
    fake = tmp_path / "mailroom" / "core"
    fake.mkdir(parents=True)
    (fake / "rules.py").write_text("def f():\n    from mailroom.store.queries import get_case\n")
    modules = {**MODULES, "mailroom.core.rules": fake / "rules.py"}
    assert upward_imports(import_graph(modules)) == [
        "mailroom.core.rules (core) imports mailroom.store.queries (store)"
    ]


def test_a_cycle_is_caught() -> None:
    broken = {module: set(targets) for module, targets in GRAPH.items()}
    broken["mailroom.cli.frame"].add("mailroom.cli.main")
    assert ["mailroom.cli.cases", "mailroom.cli.frame", "mailroom.cli.main"] in [
        [m for m in c if m in ("mailroom.cli.cases", "mailroom.cli.frame", "mailroom.cli.main")]
        for c in cycles(broken)
    ]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "core"))
def test_the_core_does_no_io_and_keeps_no_clock(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    libraries = {name.split(".")[0] for name in imported_names(tree)}
    assert not libraries & CORE_FORBIDDEN_MODULES, f"{module} imports {libraries & CORE_FORBIDDEN_MODULES}"
    calls = [node.func for node in ast.walk(tree) if isinstance(node, ast.Call)]
    methods = {f.attr for f in calls if isinstance(f, ast.Attribute)}
    functions = {f.id for f in calls if isinstance(f, ast.Name)}
    clock = {ast.unparse(f) for f in calls if ast.unparse(f) in ("time.time", "time.monotonic")}
    bad = (methods & CORE_FORBIDDEN_METHODS) | (functions & CORE_FORBIDDEN_FUNCTIONS) | clock
    assert not bad, f"{module} calls {bad}"


@pytest.mark.parametrize(
    ("package", "forbidden"), [("parsers", {"mailroom", "outbox"}), ("outbox", {"mailroom", "parsers"})]
)
def test_libraries_do_not_import_the_app_or_each_other(package: str, forbidden: set[str]) -> None:
    for name, path in source_modules(package).items():
        tops = {n.split(".")[0] for n in imported_names(ast.parse(path.read_text(encoding="utf-8")))}
        assert not tops & forbidden, f"{name} imports {tops & forbidden}"


def test_only_parsers_pdf_imports_pdfplumber() -> None:
    users = [
        name
        for package in ("mailroom", "parsers", "outbox")
        for name, path in source_modules(package).items()
        if {"pdfplumber", "pdfminer"} & {n.split(".")[0] for n in imported_names(ast.parse(path.read_text()))}
    ]
    assert users == ["parsers.pdf"]


def test_every_package_says_what_it_holds_and_what_it_may_import() -> None:
    for package in ALLOWED:
        if not package:
            continue
        doc = ast.get_docstring(ast.parse((ROOT / "mailroom" / package / "__init__.py").read_text()))
        assert doc, package
        lines = doc.splitlines()
        assert len(lines) == 2 and "import" in lines[1].lower(), f"mailroom/{package}/__init__.py: {doc!r}"


def test_no_module_is_over_500_lines() -> None:
    long = {
        name: n
        for package in ("mailroom", "parsers", "outbox")
        for name, path in source_modules(package).items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}


def test_the_guard_sees_the_tree() -> None:
    # If the tree moved, the checks above would pass vacuously.
    assert {layer(m) for m in MODULES} == set(ALLOWED)
    assert len(GRAPH) > 40
    assert "mailroom.core.states" in GRAPH["mailroom.store.queries"]
