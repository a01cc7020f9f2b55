"""``[data]`` settings as a study uses them: loader workers reach training, old ``[train]
num_workers`` specs get one line saying where the key went, ``flip_label_map`` parses from TOML,
and ``r3dnas data`` says what flipping does to the labels."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest
from loader_pids import PidRecording, loading_pids
from study_specs import ONE_TRIAL, merged, parse_toml, spec_toml
from videos import encode_video

from runners.data.motion import MotionDataset
from search_space.errors import ConfigError
from studies.run.objective import TrialRunner
from studies.study.sections import StudySpec

WORKERS = merged(
    ONE_TRIAL, study={"name": "workers"}, data={"num_workers": 2}, train={"batch_size": 4}
)


def _spec(tmp_path: Path, **sections: Mapping[str, Any]) -> StudySpec:
    """The workers spec with ``sections`` changed, as written to and read from TOML."""
    return parse_toml(spec_toml(WORKERS, **sections), tmp_path)


def test_data_num_workers_reaches_the_training_loader(tmp_path: Path) -> None:
    from runners.data.datasets import build_datasets

    spec = _spec(tmp_path)
    assert spec.data.num_workers == 2
    train, val = build_datasets(spec.data)
    assert isinstance(train, MotionDataset)  # kind "motion"
    log = tmp_path / "pids.txt"
    runner = TrialRunner(spec, datasets=(PidRecording(train, log), val))
    study = optuna.create_study(direction="maximize")
    study.optimize(runner.run, n_trials=1)
    pids = loading_pids(log)
    assert len(pids) == 2 and os.getpid() not in pids  # two DataLoader worker processes
    attrs = study.trials[0].user_attrs
    assert attrs["amp"] is False and attrs["train_device"] == "cpu"
    assert "skipped_videos" not in attrs  # generated clips have no files to skip


def test_train_num_workers_is_refused_naming_the_new_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\[train\] .*move it to \[data\] num_workers") as info:
        _spec(tmp_path, data={"num_workers": None}, train={"num_workers": 8})
    assert "\n" not in str(info.value)


def test_flip_label_map_from_toml(tmp_path: Path) -> None:
    video = {"kind": "class_folders", "root": "videos", "num_classes": 3}
    video |= {"num_train_clips": None, "num_val_clips": None}
    spec = _spec(tmp_path, data=video | {"flip_label_map": {"0": 2, "2": 0}})
    assert spec.data.flip_label_map == ((0, 2), (2, 0))
    with pytest.raises(ConfigError, match=r"^\[data\] flip_label_map must swap labels both ways"):
        _spec(tmp_path, data=video | {"flip_label_map": {"0": 2}})
    on_motion = {"num_workers": None, "flip_label_map": {"0": 1, "1": 0}}
    with pytest.raises(
        ConfigError, match=r"^\[data\] flip_label_map must be \(\) for kind 'motion'"
    ):
        _spec(tmp_path, data=on_motion)


@pytest.mark.parametrize(
    ("options", "note"),
    [
        ("", "note: flip = true mirrors half the training clips, which turns left/right motion"),
        (
            "flip_label_map = { 0 = 1, 1 = 0 }",
            "note: flip = true mirrors half the training clips; flip_label_map swaps the labels "
            "of mirrored clips: 0<->1",
        ),
        ("flip = false", None),
    ],
)
def test_data_report_says_what_flipping_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: str, note: str | None
) -> None:
    from studies.cli import main

    pytest.importorskip("av")
    for split in ("train", "val"):
        for label in ("left", "right"):
            encode_video(tmp_path / "videos" / split / label / "a.mp4", 8)
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[study]\nname = "flip"\n[data]\nkind = "class_folders"\nroot = "videos"\n'
        f"num_classes = 2\nclip_len = 4\n{options}\n"
    )
    assert main(["data", str(spec), "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    if note is None:
        assert "note: flip" not in out
    else:
        assert note in out
