from __future__ import annotations

import json
import subprocess
import sys

import pytest

from search_space import preset
from studies.cli import main

HEAVY = ("torch", "optuna", "wandb", "pandas", "fvcore", "av", "matplotlib", "mmcv")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from studies.cli import main; sys.exit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from studies.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: r3dnas" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("r3dnas ")


def test_shapes_prints_the_seed_table_and_checks_it_by_forward() -> None:
    result = _run("shapes")
    assert result.returncode == 0, result.stderr
    assert "pool2   1x256x2x80x64" in result.stdout
    assert "layer4  1x2048x2x10x8" in result.stdout
    assert "matches inference" in result.stdout


def test_shapes_from_a_json_config(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(preset("i3d_r50").to_dict()))
    assert (
        main(["shapes", "--config", str(path), "--input", "1,3,32,224,224", "--no-forward"]) == 0
    )
    assert "layer4  1x2048x4x7x7" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["shapes", "--preset", "nope"], "unknown preset 'nope'; choose one of"),
        (["shapes", "--input", "1,3,1,64,64", "--no-forward"], "collapses at"),
        (["shapes", "--config", "/nonexistent.json"], "not found"),
        # the forward check of a huge clip: MemoryError's traceback before
        (["shapes", "--input", "1,3,100000,100000,100000"], "does not fit in memory"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback() -> None:
    from search_space import ConfigError

    with pytest.raises(ConfigError):
        main(["--debug", "shapes", "--preset", "nope"])
