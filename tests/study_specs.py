"""Study specs for tests, written once: a base as tables, and each test's changes as keyword
overrides, so a test shows only what it is about.

``spec_toml(ONE_TRIAL, data={"num_workers": 2})`` is the one-trial base with that one key set;
``None`` removes a key (TOML has no null). A nested table given in an override (``space.base``,
``space.dimensions``) replaces the base's whole table, so its key order is the override's.
The text goes through the product's own writer (``dumps_toml``), which a test holds to
``tomllib``'s reading.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from studies.study.sections import StudySpec
from studies.study.spec import parse_spec
from studies.study.toml_text import dumps_toml

Tables = dict[str, dict[str, Any]]

TINY = Path(__file__).parent / "studies" / "specs" / "tiny.toml"


def merged(base: Mapping[str, Mapping[str, Any]], **sections: Mapping[str, Any]) -> Tables:
    """A copy of ``base`` with each section's keys set (or removed where the value is None)."""
    tables: Tables = copy.deepcopy({name: dict(table) for name, table in base.items()})
    for name, values in sections.items():
        table = tables.setdefault(name, {})
        for key, value in values.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = copy.deepcopy(value)
    return tables


# One trial of a ResNet-18 on 16x16 motion clips, trained for an epoch on the CPU; no latency.
ONE_TRIAL: Tables = {
    "study": {"name": "one-trial", "objectives": ["top1:max"], "sampler": "random", "n_trials": 1},
    "space": {
        "input_shape": [1, 3, 4, 16, 16],
        "base": {"depth": 18, "stage_blocks": [1, 1, 1, 1], "base_channels": 4},
    },
    "data": {
        "kind": "motion",
        "num_classes": 2,
        "clip_len": 4,
        "resolution": 16,
        "num_train_clips": 16,
        "num_val_clips": 8,
    },
    "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "num_threads": 1},
    "measure": {"device": "cpu", "measure_latency": False},
}

# The benchmark-table tests' space: a ResNet-50 of one block per stage on 8x16x16 clips, grown
# along layer4's inflation and the inflate style (4 grid points, 3 distinct networks).
TABLE_SPACE: Tables = merged(
    ONE_TRIAL,
    study={"objectives": ["top1:max", "gflops:min"], "seed": 0, "n_trials": 8},
    space={
        "input_shape": [1, 3, 8, 16, 16],
        "base": {
            "depth": 50,
            "stage_blocks": [1, 1, 1, 1],
            "base_channels": 4,
            "inflate": [0, 0, 0, 0],
            "zero_init_residual": False,
        },
        "dimensions": {
            "layer4": {"inflate": ["none", "all"]},
            "inflate_style": ["3x1x1", "3x3x3"],
        },
    },
    data={"kind": "motion_events", "clip_len": 8},
    train={"seed": 0, "keep_checkpoints": "none"},
    measure={"device": None},
    wandb={"mode": "disabled"},
)


def spec_toml(base: Mapping[str, Mapping[str, Any]], **sections: Mapping[str, Any]) -> str:
    """``base`` with the overrides of :func:`merged`, as the TOML text of a spec file."""
    return dumps_toml(merged(base, **sections))


def parse_toml(text: str, base_dir: Path) -> StudySpec:
    """The spec a file ``test.toml`` in ``base_dir`` holding ``text`` loads as."""
    return parse_spec(tomllib.loads(text), source="test.toml", base_dir=base_dir)


def tiny_spec(base_dir: Path, **sections: Mapping[str, Any]) -> StudySpec:
    """tests/studies/specs/tiny.toml with the overrides of :func:`merged`."""
    tables = merged(tomllib.loads(TINY.read_text()), **sections)
    return parse_spec(tables, source="tiny-variant", base_dir=base_dir)
