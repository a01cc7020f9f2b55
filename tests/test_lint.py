"""The code style rules that a tool can check: ruff's lint rules and the import layering."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean() -> None:
    if shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run(
        [ruff, "check", "search_space", "runners", "studies"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_package_imports_upward() -> None:
    """search_space never imports runners or studies; runners never imports studies."""
    rules = {"search_space": ("runners", "studies"), "runners": ("studies",)}
    for package, forbidden in rules.items():
        for path in (ROOT / package).rglob("*.py"):
            for line in path.read_text().splitlines():
                stripped = line.strip()
                for name in forbidden:
                    assert not stripped.startswith((f"from {name}", f"import {name}")), (
                        f"{path.relative_to(ROOT)} imports {name}: {stripped}"
                    )


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.Module) -> set[str]:
    """Every module an ``import`` anywhere in ``tree`` may load (module and function level),
    except under ``if TYPE_CHECKING:``; ``from a import b`` yields ``a`` and ``a.b``."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _import_graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports (the package itself included)."""
    modules: dict[str, Path] = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = _imported_names(ast.parse(path.read_text(encoding="utf-8")))
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def test_cycle_finder_sees_function_level_imports_and_skips_type_checking() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from p.hidden import X\n"
        "def f():\n    from p.b import y\n    import p.c\n"
    )
    assert _imported_names(tree) >= {"p.b", "p.b.y", "p.c"}
    assert "p.hidden" not in _imported_names(tree)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", ["search_space", "runners", "studies"])
def test_no_import_cycle_inside_a_package(package: str) -> None:
    """Modules of one package import each other one way (function-level imports count too;
    ``if TYPE_CHECKING:`` imports do not)."""
    cycles = _cycles(_import_graph(package))
    assert not cycles, f"import cycles in {package}/: " + "; ".join(
        " <-> ".join(cycle) for cycle in cycles
    )
