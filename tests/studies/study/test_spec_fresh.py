"""``[data] fresh_clips`` in a study spec: parsed, written back, part of the training signature
(so a trial or table row trained on fixed clips is never reused for fresh ones), and trained."""

from __future__ import annotations

import tomllib
from pathlib import Path

import optuna
import pytest
from study_specs import ONE_TRIAL, merged, parse_toml, spec_toml

from search_space.errors import ConfigError
from studies.run.objective import TrialRunner
from studies.study.toml_text import dumps_toml

FRESH = merged(
    ONE_TRIAL,
    study={"name": "fresh"},
    data={"kind": "motion_events", "num_classes": 4, "fresh_clips": True},
    train={"epochs": 2},
)
SPEC = spec_toml(FRESH)


def test_fresh_clips_round_trips_and_changes_the_training_signature(tmp_path: Path) -> None:
    spec = parse_toml(SPEC, tmp_path)
    assert spec.data.fresh_clips is True
    assert spec.data.to_dict()["fresh_clips"] is True
    again = parse_toml(dumps_toml(tomllib.loads(SPEC)), tmp_path)
    assert again.data == spec.data
    fixed = parse_toml(spec_toml(FRESH, data={"fresh_clips": None}), tmp_path)
    assert fixed.data.fresh_clips is False
    signature = TrialRunner(spec).training_signature(0)
    assert signature != TrialRunner(fixed).training_signature(0)
    assert signature == TrialRunner(again).training_signature(0)


def test_a_trial_trains_on_fresh_clips(tmp_path: Path) -> None:
    runner = TrialRunner(parse_toml(SPEC, tmp_path))
    study = optuna.create_study(direction="maximize")
    study.optimize(runner.run, n_trials=1)
    attrs = study.trials[0].user_attrs
    assert attrs["state"] == "complete" and len(attrs["history"]) == 2


def test_a_bad_fresh_clips_is_one_line_naming_the_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_toml(spec_toml(FRESH, data={"fresh_clips": "yes"}), tmp_path)
    assert str(info.value) == "[data] fresh_clips must be true or false; got 'yes'"
