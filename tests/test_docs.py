"""docs/spec.md lists every key of every spec section, and nothing that is not one."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from runners.data.datasets import DataConfig
from runners.training.accuracy import TrainConfig
from search_space.space import _TOP_KEYS
from studies.study.spec import (
    STUDY_TRAIN_KEYS,
    WANDB_KEYS,
    Constraints,
    MeasureSpec,
    StudySection,
)

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
