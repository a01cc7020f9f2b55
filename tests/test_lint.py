"""The code style rules that a tool can check: ruff's lint rules over the three packages."""

from __future__ import annotations

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
