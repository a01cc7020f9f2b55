"""docs/spec.md lists every key of every spec section, and nothing that is not one."""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import tomllib
from pathlib import Path

import pytest

from runners.data.datasets import DataConfig
from runners.training.accuracy import TrainConfig
from search_space.space import _TOP_KEYS
from studies.study.sections import (
    LATENCY_SETTINGS,
    Constraints,
    MeasureSpec,
    Objective,
    StudySection,
    StudySpec,
)
from studies.study.spec import STUDY_TRAIN_KEYS, WANDB_KEYS
from studies.tracking.tracker import TrackingConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"


def _documented_keys() -> dict[str, list[str]]:
    """Section -> the keys in the first column of its table, in order."""
    keys: dict[str, list[str]] = {}
    section = None
    for line in DOC.read_text().splitlines():
        heading = re.fullmatch(r"## \[(\w+)\]", line)
        if heading:
            section = heading.group(1)
            keys[section] = []
            continue
        row = re.match(r"\| `(\w+)` \|", line)
        if row and section is not None:
            keys[section].append(row.group(1))
    return keys


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("study", _fields(StudySection)),
        ("space", list(_TOP_KEYS)),
        ("data", _fields(DataConfig)),
        ("train", [*_fields(TrainConfig), *STUDY_TRAIN_KEYS]),
        ("measure", _fields(MeasureSpec)),
        ("constraints", _fields(Constraints)),
        ("wandb", list(WANDB_KEYS)),
    ],
)
def test_every_key_of_the_section_is_documented(section: str, expected: list[str]) -> None:
    documented = _documented_keys()[section]
    assert sorted(documented) == sorted(expected), section
    assert len(documented) == len(set(documented)), f"a key is listed twice in [{section}]"


# ---------------------------------------------------------------------- the README as written
README = DOC.parents[1] / "README.md"


def _python_lines() -> list[str]:
    return re.findall(r"^\$ (\S*python) -c (.+)$", README.read_text(), flags=re.M)


def test_readme_python_lines_use_the_venv_and_run(tmp_path: Path) -> None:
    """``python -c`` fails with "No module named torch" outside the venv: the README says
    ``.venv/bin/python``, and the line prints what the README shows after it."""
    import json
    import shlex
    import subprocess
    import sys

    from search_space import ResNet3dConfig

    lines = _python_lines()
    assert lines, "the README shows a python -c line"
    config = ResNet3dConfig(depth=50, stage_blocks=(1, 1, 1, 1), base_channels=8)
    (tmp_path / "best.json").write_text(json.dumps(config.to_dict()))
    text = README.read_text()
    for python, code in lines:
        assert python == ".venv/bin/python", python
        out = subprocess.run([sys.executable, "-c", shlex.split(code)[0]], cwd=tmp_path,
                             capture_output=True, text=True, check=True, env={**os.environ,
                             "PYTHONPATH": str(README.parent)})  # fmt: skip
        shown = text.split(code, 1)[1].splitlines()[1]
        assert out.stdout.strip() == shown.strip() == "256"


def test_readme_commands_write_nothing_tracked_and_state_their_conditions() -> None:
    text = README.read_text()
    assert not re.search(r"--(plot|out)\s+docs/", text), "a README command overwrites docs/"
    assert "five minutes on an idle machine" in text  # the measured tour, with its conditions
    # building the export inside mmaction2 1.2.0 needs the drn stand-in, which the README names
    assert "drn" in text and "tests/studies/mmaction2_runner.py" in text
    assert (README.parent / "tests" / "studies" / "mmaction2_runner.py").is_file()
    # the README's Pareto table fits 100 columns, as `r3dnas pareto` prints it
    block = text[text.index("Pareto front of 'cpu-default'") :]
    block = block[: block.index("```")]
    assert max(len(line) for line in block.splitlines()) <= 100


def _documented_defaults() -> dict[tuple[str, str], str]:
    """``(section, key)`` -> the text of the default column of its row."""
    found: dict[tuple[str, str], str] = {}
    section = None
    for line in DOC.read_text().splitlines():
        heading = re.fullmatch(r"## \[(\w+)\]", line)
        if heading:
            section = heading.group(1)
            continue
        row = re.match(r"\| `(\w+)` \| (.+?) \|", line)
        if row and section is not None:
            found[(section, row.group(1))] = row.group(2)
    return found


def _code_default(cls: type, key: str) -> object:
    field = next(f for f in dataclasses.fields(cls) if f.name == key)
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return dataclasses.MISSING
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [str(v) if isinstance(v, Objective) else v for v in value]
    return value


# Defaults the doc states in words, because the code has no single value for them.
IN_WORDS = {
    ("study", "name"): "the file's stem",
    ("data", "short_side"): "`resolution * 256 / 224`",
    ("data", "mean"): "ImageNet",
    ("data", "std"): "ImageNet",
    ("measure", "input_shape"): "the space's",
}
CLASSES = {
    "study": (StudySection,),
    "data": (DataConfig,),
    "train": (TrainConfig, StudySpec),
    "measure": (MeasureSpec,),
    "constraints": (Constraints,),
    "wandb": (TrackingConfig,),
}


def test_every_documented_default_is_the_code_default() -> None:
    """The default column of docs/spec.md is the dataclass field's default (``none``: None,
    a TOML value in backticks: that value); a default stated in words is listed above."""
    checked = 0
    for (section, key), text in _documented_defaults().items():
        if section not in CLASSES or IN_WORDS.get((section, key)) == text:
            continue
        cls = next(c for c in CLASSES[section] if key in {f.name for f in dataclasses.fields(c)})
        expected = _code_default(cls, key)
        if text == "none":
            assert expected is None, (section, key, expected)
        else:
            value = re.fullmatch(r"`(.+)`", text)
            assert value, f"[{section}] {key}: default {text!r} is neither a value nor known"
            documented = tomllib.loads(f"v = {value.group(1)}")["v"]
            if documented == {}:  # an empty table: the code may hold its pairs as a tuple
                documented = type(expected)()  # type: ignore[operator]
            assert documented == expected, (section, key, documented, expected)
        checked += 1
    assert checked > 60


def test_the_latency_settings_of_a_spec_default_to_the_latency_configs() -> None:
    """A study's [measure] latency defaults and the runner's LatencyConfig defaults agree, so
    a measurement made outside a study follows the same protocol."""
    from runners.latency.measure import LatencyConfig

    spec_built = MeasureSpec().latency_config()
    assert spec_built == LatencyConfig()
    for key, name in LATENCY_SETTINGS.items():
        assert _code_default(MeasureSpec, key) == _code_default(LatencyConfig, name), key
