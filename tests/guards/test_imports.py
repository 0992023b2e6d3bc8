"""Import contracts: which package may depend on which, and module sizes.

The graph is read from the source (every ``import`` statement, also those inside functions,
but not those under ``if TYPE_CHECKING:``); a module also imports its parent packages.
``tsdb`` may only be reached from the composition root (``omtsdb.compose``, ``omtsdb.server``,
the CLI) and from ``tsdb`` itself. The parser must not load numpy when imported (checked in a
fresh interpreter too).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT

PKG = ROOT / "omtsdb"
MAX_LINES = 800


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


@cache
def imports_of(name: str) -> tuple[frozenset[str], frozenset[str]]:
    """(modules imported when ``name`` is imported, modules imported anywhere in it)."""
    path = modules()[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    eager: set[str] = set()
    lazy: set[str] = set()

    def add(target: str, at_import: bool) -> None:
        (eager if at_import else lazy).add(target)

    def visit(node: ast.AST, at_import: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, at_import)
                continue
            inner = at_import and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                for a in child.names:
                    add(a.name, inner)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")
                    up = up[: len(up) - child.level + 1]
                    base = ".".join([*up, base] if base else up)
                add(base, inner)
                for a in child.names:  # ``from pkg import module``
                    if f"{base}.{a.name}" in modules():
                        add(f"{base}.{a.name}", inner)
            visit(child, inner)

    visit(tree, True)
    parts = name.split(".")
    parents = {".".join(parts[:i]) for i in range(1, len(parts))}
    eager |= parents
    return frozenset(eager), frozenset(eager | lazy)


def reachable(start: str, *, lazy: bool) -> set[str]:
    """Every module (omtsdb's and outside packages' top names) ``start`` can load."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        if m in modules():
            todo.extend(imports_of(m)[1 if lazy else 0])
    return seen


def package_modules(pkg: str) -> list[str]:
    return sorted(m for m in modules() if m == pkg or m.startswith(pkg + "."))


def tsdb_paths(pkg: str) -> list[str]:
    """Modules of ``pkg`` that can reach ``omtsdb.tsdb``, with one module they go through."""
    out = []
    for m in package_modules(pkg):
        for r in sorted(reachable(m, lazy=True)):
            if r == "omtsdb.tsdb" or r.startswith("omtsdb.tsdb."):
                out.append(f"{m} -> {r}")
                break
    return out


WRITE = "the write helper's branch moves remote/write.py, scrape/loop.py to the Appender protocol"
NO_TSDB = [
    "omtsdb.promql.engine",
    "omtsdb.promql.parser",
    "omtsdb.obs",
    "omtsdb.query",
    "omtsdb.storage",
    "omtsdb.model",
    "omtsdb.config",
    pytest.param("omtsdb.api", marks=pytest.mark.xfail(strict=True, reason=WRITE)),
    pytest.param("omtsdb.remote", marks=pytest.mark.xfail(strict=True, reason=WRITE)),
    pytest.param("omtsdb.scrape", marks=pytest.mark.xfail(strict=True, reason=WRITE)),
    pytest.param(
        "omtsdb.promql.promqltest",
        marks=pytest.mark.xfail(
            strict=True,
            reason="promqltest.runner opens its DB itself; the promql helper's branch hands "
            "the runner its storage",
        ),
    ),
]


@pytest.mark.parametrize("pkg", NO_TSDB)
def test_only_the_composition_root_reaches_tsdb(pkg: str) -> None:
    assert package_modules(pkg), pkg
    assert tsdb_paths(pkg) == []


def test_tsdb_is_reached_from_nowhere_else() -> None:
    """Outside ``tsdb`` and the composition root, no module imports ``tsdb`` directly, except
    the ones the xfails above name (kept as a list so that a new one fails)."""
    root = {"omtsdb.compose", "omtsdb.server"}
    allowed_now = {
        "omtsdb.remote.write",  # write helper
        "omtsdb.scrape.loop",  # write helper
        "omtsdb.promql.promqltest.runner",  # promql helper
    }
    offenders = set()
    for m in modules():
        if m.startswith(("omtsdb.tsdb", "omtsdb.cli")) or m in root:
            continue
        if any(i.startswith("omtsdb.tsdb") for i in imports_of(m)[1]):
            offenders.add(m)
    assert offenders <= allowed_now, sorted(offenders - allowed_now)


@pytest.mark.xfail(
    strict=True,
    reason="model/__init__ and model/exposition/__init__ load numpy; the promql helper's "
    "branch makes them lazy",
)
def test_the_parser_loads_no_numpy() -> None:
    assert "numpy" not in reachable("omtsdb.promql.parser", lazy=False)
    code = "import sys, omtsdb.promql.parser; print('numpy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_the_engine_reaches_storage_only_through_the_interface() -> None:
    got = reachable("omtsdb.promql.engine", lazy=True)
    assert not {m for m in got if m.startswith(("omtsdb.tsdb", "omtsdb.api", "aiohttp"))}


def test_modules_are_under_800_lines() -> None:
    long = {
        m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long
