"""Every shipped spec and every command the README shows, run as a user would.

The README's commands are read from the README itself (``bash``/``text`` code blocks and inline
code), so a command added there is tested here without touching this file. Each runs through
``studies.cli.main`` in one scratch folder, in README order (``pareto`` reads what ``launch``
made), with a smaller budget: one trial, one epoch on a few clips (``--set``), one seed per
grid point. Commands that need a user's videos or GPUs are expected to stop with one clear
line and exit code 2, having written nothing.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import optuna
import pytest
from cli_runs import run_cli

from runners.data.datasets import DataKind
from studies.study.spec import load_spec, spec_names

ROOT = Path(__file__).resolve().parents[2]
TINY = Path(__file__).parent / "specs" / "tiny.toml"

# Small budgets, applied where a command would take long.
TRAIN_SET = ["train.epochs=1", "measure.latency_warmup=1", "measure.latency_repeats=2"]
MOTION_SET = ["data.num_train_clips=16", "data.num_val_clips=8"]
# README placeholders -> what the test passes.
PLACEHOLDERS = {"SPEC": str(TINY), "DIGEST": "DIGEST"}
# README commands that must stop with a usage error (exit 2) and this text: they need the
# user's videos (or a study only those could make), or name no study where there are several.
USAGE_ERRORS = {
    "r3dnas launch i3d_r50_gpu --workers 8": "train_list",
    "r3dnas launch i3d_r50_gpu --runs-dir /shared/runs --workers 8": "train_list",
    "r3dnas worker --study i3d-r50 --device cuda:0": "no study named 'i3d-r50'",
    "r3dnas pareto --study i3d-r50": "no study named 'i3d-r50'",
    "r3dnas worker": "name one with --study",
}


def readme_commands(text: str) -> list[str]:
    """``r3dnas ...`` commands of the README, in order, each once, as ``r3dnas ARGS``."""
    found: list[tuple[int, str]] = []
    for block in re.finditer(r"```(?:bash|text)\n(.*?)```", text, flags=re.S):
        joined = block.group(1).replace("\\\n", " ")
        offset = block.start()
        for line in joined.splitlines():
            for part in line.removeprefix("$ ").split("&&"):
                if re.match(r"\s*(\.venv/bin/)?r3dnas\s", part):
                    found.append((offset, part))
                    offset += 1
    for span in re.finditer(r"`((?:\.venv/bin/)?r3dnas\s[^`]+)`", text):
        found.append((span.start(), span.group(1)))
    commands: list[str] = []
    for _, command in sorted(found):
        words = " ".join(command.split()).removeprefix(".venv/bin/")
        if words not in commands:
            commands.append(words)
    return commands


def _argv(command: str) -> list[str]:
    """The command's arguments with placeholders filled and budgets made small."""
    argv = [PLACEHOLDERS.get(word, word) for word in shlex.split(command)[1:]]
    for word in argv:
        known = word in PLACEHOLDERS.values()
        assert known or not (word.isupper() and word.isalpha()), f"unknown placeholder {word}"
    if argv[0] in ("launch", "ablate"):
        spec = load_spec(next((w for w in argv[1:2] if not w.startswith("-")), None))
        if spec.data.kind.is_generated:
            extra = TRAIN_SET + MOTION_SET
            argv += [a for s in extra for a in ("--set", s)]
        argv += ["--n-trials", "1"] if argv[0] == "launch" else ["--seeds", "1"]
    if argv[:2] == ["table", "build"]:  # one network, one seed, one epoch on a few clips
        argv += ["--limit", "1", "--seeds", "1"]
        argv += [a for s in TRAIN_SET + MOTION_SET for a in ("--set", s)]
    if argv[:2] == ["table", "latency"]:
        argv += ["--limit", "1", "--warmup", "1", "--repeats", "2", "--isolation", "none"]
    if argv[:2] == ["table", "retrain"]:  # a digest of the table the README exported before
        table = Path(argv[argv.index("--table") + 1])
        argv[argv.index("--digest") + 1] = table.read_text().splitlines()[1].split(",")[0]
    if argv[0] == "latency-table":  # every distinct layer of the space, on a small clip
        argv += ["--input", "1,3,4,32,32", "--warmup", "1", "--repeats", "2", "--calibrate", "2"]
        argv += ["--quiet"]
    if "--trial" in argv:  # the README's trial numbers come from its 16-trial study
        argv[argv.index("--trial") + 1] = "0"
    return argv


def test_the_readme_shows_the_commands_this_test_expects() -> None:
    commands = readme_commands((ROOT / "README.md").read_text())
    assert commands[0] == "r3dnas launch"
    assert any(c.startswith("r3dnas ablate inflation_ablation --factor") for c in commands)
    assert set(USAGE_ERRORS) <= set(commands), set(USAGE_ERRORS) - set(commands)


@pytest.mark.usefixtures("scratch")  # tmp_path is the working directory
def test_every_readme_command_runs_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failures = []
    for command in readme_commands((ROOT / "README.md").read_text()):
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.db"))
        code = run_cli(_argv(command))
        out, err = capsys.readouterr()
        expected = USAGE_ERRORS.get(command)
        if expected is None and code != 0:
            failures.append(f"{command}: exit {code}: {err.strip()[-500:]}")
        elif expected is not None:
            after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.db"))
            lines = err.strip().splitlines()
            if code != 2 or len(lines) != 1 or expected not in err or after != before:
                failures.append(f"{command}: exit {code}, stderr {err!r}, files {after}")
    assert not failures, "\n".join(failures)
    # What the commands made is what the README says they make.
    assert (tmp_path / "best.json").is_file()
    assert (tmp_path / "runs" / "pareto_cpu_default.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "docs").exists()  # nothing written over a tracked file
    assert (tmp_path / "runs" / "inflation-ablation-ablation" / "ablation.csv").is_file()


@pytest.mark.usefixtures("scratch")  # tmp_path is the working directory
@pytest.mark.parametrize("name", spec_names())
def test_every_shipped_spec_launches_one_short_trial(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = load_spec(name)
    argv = ["launch", name, "--n-trials", "1", "--wandb", "disabled", "--quiet"]
    argv += ["--runs-dir", "out"]
    if spec.data.kind in (DataKind.VIDEO_LIST, DataKind.CLASS_FOLDERS):
        assert run_cli(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "does not exist" in err, err
        assert not (tmp_path / "out").exists()  # nothing written
        return
    sets = TRAIN_SET + (MOTION_SET if spec.data.kind.is_generated else [])
    assert run_cli(argv + [a for s in sets for a in ("--set", s)]) == 0, capsys.readouterr().err
    url = f"sqlite:///{tmp_path / 'out' / f'{spec.study.name}.db'}"
    study = optuna.load_study(study_name=spec.study.name, storage=url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    assert (
        study.trials[0].user_attrs["history"] and len(study.trials[0].user_attrs["history"]) == 1
    )
    # A worker joins it (the study is inferred: the only one in --runs-dir), builds the spec's
    # sampler (grid included) and finds the budget complete.
    assert run_cli(["worker", "--runs-dir", "out", "--wandb", "disabled", "--quiet"]) == 0
    assert "1 of 1 completed trials" in capsys.readouterr().out
