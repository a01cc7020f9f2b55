"""An installed (non-editable) wheel holds every module and data file of the three packages.

The tests run against the source tree, so a subpackage missing from ``pyproject.toml`` would pass
them and still be absent for a user who runs ``pip install r3dnas``. This builds the wheel as pip
does (offline, from a copy of the sources), installs it into a folder of its own and imports it
from there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("search_space", "runners", "studies")


def _shipped(root: Path) -> set[str]:
    """The package files a wheel must hold: every module, preset and space, relative paths."""
    return {
        path.relative_to(root).as_posix()
        for package in PACKAGES
        for path in (root / package).rglob("*")
        if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp)]
    subprocess.run([*build, str(source)], check=True, capture_output=True, text=True)
    (wheel,) = tmp.glob("r3dnas-*.whl")
    site = tmp / "site"
    install = [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, text=True)
    return site


def test_the_wheel_holds_every_module_and_data_file(installed: Path) -> None:
    missing = _shipped(ROOT) - _shipped(installed)
    assert not missing, f"not in the installed wheel: {sorted(missing)}"


def test_the_installed_package_imports_and_finds_its_presets(
    installed: Path, tmp_path: Path
) -> None:
    """Imported from the install (not this checkout): the CLI, every stage, a shipped preset."""
    code = (
        "import studies, studies.cli, studies.run.launch, studies.benchmark.table, "
        "runners.latency.measure, runners.data.motion\n"
        "from studies import load_spec\n"
        "print(studies.__file__)\n"
        "print(load_spec('cpu_default').study.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    where, name = result.stdout.split()
    assert Path(where).is_relative_to(installed)
    assert name
