"""``studies/`` is layered one way: no import cycle between its modules, and no private name
(``_x``) imported from one of its modules into another.

Module-level and function-level imports both count as edges (a deferred import is still a
dependency); imports under ``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "studies"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.ImportFrom | ast.Import]:
    """Every import statement that runs, skipping the bodies of ``if TYPE_CHECKING:``."""
    found: list[ast.ImportFrom | ast.Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    """``module -> modules of the package it imports``, and the private names imported."""
    modules = {p.stem for p in ROOT.glob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private: list[str] = []
    for path in sorted(ROOT.glob("*.py")):
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
                names: list[str] = []
            else:
                if node.level:  # relative import inside the package
                    targets = [f"{PACKAGE}.{node.module}" if node.module else PACKAGE]
                else:
                    targets = [node.module or ""]
                names = [a.name for a in node.names]
            for target in targets:
                parts = target.split(".")
                if parts[0] != PACKAGE:
                    continue
                if len(parts) == 1:  # from studies import x: x is a module or a name of __init__
                    hits = [n for n in names if n in modules] or ["__init__"]
                else:
                    hits = [parts[1]]
                for hit in hits:
                    if hit != path.stem:
                        edges[path.stem].add(hit)
                if len(parts) > 1 and parts[1] != path.stem:
                    private += [f"{path.stem} imports {n} from {target}" for n in names
                                if n.startswith("_")]  # fmt: skip
    return edges, private


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for nxt in sorted(edges.get(module, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def test_no_import_cycle_inside_studies() -> None:
    edges, _ = _graph()
    # __init__ re-exports every entry point: it sits on top and nothing imports it back.
    cycle = _cycle(edges)
    assert cycle is None, "import cycle in studies/: " + " -> ".join(cycle or [])


def test_no_private_name_crosses_modules() -> None:
    _, private = _graph()
    assert not private, "\n".join(private)


def test_the_checks_see_a_cycle_and_a_private_import() -> None:
    """The checker itself: a planted cycle and a private import are found."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from studies.x import Y\n"
        "def f():\n    from studies.z import _w\n"
    )
    modules = [n.module for n in _imports(tree) if isinstance(n, ast.ImportFrom)]
    assert modules == ["typing", "studies.z"]
