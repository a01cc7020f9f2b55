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


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that may run (module and function level), skipping the bodies of
    ``if TYPE_CHECKING:`` (they never run)."""
    found: list[ast.Import | ast.ImportFrom] = []

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


def _imported_names(tree: ast.AST) -> set[str]:
    """Every module an import in ``tree`` may load; ``from a import b`` yields ``a`` and
    ``a.b`` (``b`` may be a module)."""
    names: set[str] = set()
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _private_imports(tree: ast.AST, module: str, package: str) -> list[str]:
    """``from package.other import _name``: a private name taken from another module."""
    return [
        f"{module} imports {alias.name} from {node.module}"
        for node in _imports(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        and node.module.split(".")[0] == package and node.module != module
        for alias in node.names
        if alias.name.startswith("_")
    ]  # fmt: skip


def _modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` (subpackages included)."""
    modules: dict[str, Path] = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _import_graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports (the package itself included)."""
    modules = _modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = _imported_names(ast.parse(path.read_text(encoding="utf-8")))
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def _room(module: str) -> str:
    """The subpackage a module belongs to (``studies.run.loop`` -> ``studies.run``); a module
    at the top of its package (``studies.cli``) and the package itself are rooms of their own."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _room_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The import graph between subpackages: an edge when any module of one imports any module of
    the other."""
    rooms: dict[str, set[str]] = {}
    for module, imported in graph.items():
        room = _room(module)
        rooms.setdefault(room, set()).update(_room(m) for m in imported if _room(m) != room)
    for targets in list(rooms.values()):
        for target in targets:
            rooms.setdefault(target, set())
    return rooms


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


def test_room_graph_sees_a_cycle_between_subpackages_and_a_private_import() -> None:
    """Two subpackages whose modules import each other one way per module still form a cycle."""
    graph = {"p.a.x": {"p.b.y"}, "p.b.z": {"p.a.w"}, "p.a.w": set(), "p.b.y": set(), "p.c": set()}
    assert _cycles(graph) == []
    assert _cycles(_room_graph(graph)) == [["p.a", "p.b"]]
    tree = ast.parse("def f():\n    from p.b.y import _hidden, shown\n")
    assert _private_imports(tree, "p.a.x", "p") == ["p.a.x imports _hidden from p.b.y"]


@pytest.mark.parametrize("package", ["search_space", "runners", "studies"])
def test_no_import_cycle_inside_a_package(package: str) -> None:
    """Modules of one package import each other one way (function-level imports count too;
    ``if TYPE_CHECKING:`` imports do not)."""
    cycles = _cycles(_import_graph(package))
    assert not cycles, f"import cycles in {package}/: " + "; ".join(
        " <-> ".join(cycle) for cycle in cycles
    )


@pytest.mark.parametrize("package", ["runners", "studies"])
def test_no_import_cycle_between_subpackages(package: str) -> None:
    """The subpackages of a package (``studies.run``, ``studies.results``, ...) and its top-level
    modules import each other one way, so each stage sits above the ones it uses."""
    cycles = _cycles(_room_graph(_import_graph(package)))
    assert not cycles, f"import cycles between subpackages of {package}/: " + "; ".join(
        " <-> ".join(cycle) for cycle in cycles
    )


@pytest.mark.parametrize("package", ["search_space", "runners", "studies"])
def test_no_private_name_crosses_modules(package: str) -> None:
    """A leading underscore means "this module only": no module imports another's ``_name``."""
    found = [
        line
        for name, path in sorted(_modules(package).items())
        for line in _private_imports(ast.parse(path.read_text(encoding="utf-8")), name, package)
    ]
    assert not found, "\n".join(found)


def _readme_rooms(package: str) -> list[str]:
    """The subpackages README.md's Layout tree lists under ``package/``, in its order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tree = text.split("## Layout", 1)[1].split("```", 2)[1]
    rooms: list[str] = []
    inside = False
    for line in tree.splitlines():
        if not line.startswith(" "):
            inside = line.strip() == f"{package}/"
        elif inside and line.startswith("  ") and not line.startswith("   "):
            name = line.split()[0]
            if name.endswith("/"):
                rooms.append(f"{package}.{name.rstrip('/')}")
    return rooms


@pytest.mark.parametrize("package", ["runners", "studies"])
def test_readme_lists_every_subpackage_below_the_ones_it_imports(package: str) -> None:
    """The README says each subpackage imports only the ones listed above it: hold it to that,
    and to naming every subpackage."""
    listed = _readme_rooms(package)
    actual = sorted(f"{package}.{p.parent.name}" for p in (ROOT / package).glob("*/__init__.py"))
    assert sorted(listed) == actual, f"README Layout lists {listed}; the package has {actual}"
    rooms = _room_graph(_import_graph(package))
    wrong = [
        f"{room} imports {other}, listed below it"
        for position, room in enumerate(listed)
        for other in sorted(rooms.get(room, set()))
        if other in listed and listed.index(other) > position
    ]
    assert not wrong, "; ".join(wrong)
