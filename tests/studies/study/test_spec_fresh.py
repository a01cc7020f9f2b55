"""``[data] fresh_clips`` in a study spec: parsed, written back, part of the training signature
(so a trial or table row trained on fixed clips is never reused for fresh ones), and trained."""

from __future__ import annotations

import tomllib
from pathlib import Path

import optuna
import pytest

from search_space.errors import ConfigError
from studies.run.objective import TrialRunner
from studies.study.spec import parse_spec
from studies.study.toml_text import dumps_toml

SPEC = """
[study]
name = "fresh"
objectives = ["top1:max"]
sampler = "random"
n_trials = 1

[space]
input_shape = [1, 3, 4, 16, 16]

[space.base]
depth = 18
stage_blocks = [1, 1, 1, 1]
base_channels = 4

[data]
kind = "motion_events"
num_classes = 4
clip_len = 4
resolution = 16
num_train_clips = 16
num_val_clips = 8
fresh_clips = true

[train]
epochs = 2
batch_size = 8
device = "cpu"
num_threads = 1

[measure]
device = "cpu"
measure_latency = false
"""


def _spec(text: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_spec(tomllib.loads(text), source="test.toml", base_dir=tmp_path)


def test_fresh_clips_round_trips_and_changes_the_training_signature(tmp_path: Path) -> None:
    spec = _spec(SPEC, tmp_path)
    assert spec.data.fresh_clips is True
    assert spec.data.to_dict()["fresh_clips"] is True
    again = _spec(dumps_toml(tomllib.loads(SPEC)), tmp_path)
    assert again.data == spec.data
    fixed = _spec(SPEC.replace("fresh_clips = true\n", ""), tmp_path)
    assert fixed.data.fresh_clips is False
    signature = TrialRunner(spec).training_signature(0)
    assert signature != TrialRunner(fixed).training_signature(0)
    assert signature == TrialRunner(again).training_signature(0)


def test_a_trial_trains_on_fresh_clips(tmp_path: Path) -> None:
    runner = TrialRunner(_spec(SPEC, tmp_path))
    study = optuna.create_study(direction="maximize")
    study.optimize(runner.run, n_trials=1)
    attrs = study.trials[0].user_attrs
    assert attrs["state"] == "complete" and len(attrs["history"]) == 2


def test_a_bad_fresh_clips_is_one_line_naming_the_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _spec(SPEC.replace("fresh_clips = true", 'fresh_clips = "yes"'), tmp_path)
    assert str(info.value) == "[data] fresh_clips must be true or false; got 'yes'"
