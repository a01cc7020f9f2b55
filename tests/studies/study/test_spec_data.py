"""``[data]`` settings as a study uses them: loader workers reach training, old ``[train]
num_workers`` specs get one line saying where the key went, ``flip_label_map`` parses from TOML,
and ``r3dnas data`` says what flipping does to the labels."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import optuna
import pytest
from torch.utils.data import Dataset
from videos import encode_video

from runners.data.motion import MotionDataset
from search_space.errors import ConfigError
from studies.run.objective import TrialRunner
from studies.study.spec import parse_spec

TINY = """
[study]
name = "workers"
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
kind = "motion"
num_classes = 2
clip_len = 4
resolution = 16
num_train_clips = 16
num_val_clips = 8
num_workers = 2

[train]
epochs = 1
batch_size = 4
device = "cpu"
num_threads = 1

[measure]
device = "cpu"
measure_latency = false
"""


def _spec(text: str, tmp_path: Path) -> Any:
    return parse_spec(tomllib.loads(text), source="test.toml", base_dir=tmp_path)


class _PidRecording(Dataset):
    """Motion clips that append the id of the loading process to a file shared by workers."""

    def __init__(self, data: MotionDataset, log: Path) -> None:
        self.data, self.log = data, log

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return self.data[index]


def test_data_num_workers_reaches_the_training_loader(tmp_path: Path) -> None:
    from runners.data.datasets import build_datasets

    spec = _spec(TINY, tmp_path)
    assert spec.data.num_workers == 2
    train, val = build_datasets(spec.data)
    log = tmp_path / "pids.txt"
    runner = TrialRunner(spec, datasets=(_PidRecording(train, log), val))
    study = optuna.create_study(direction="maximize")
    study.optimize(runner.run, n_trials=1)
    pids = {int(line) for line in log.read_text().split()}
    assert len(pids) == 2 and os.getpid() not in pids  # two DataLoader worker processes
    attrs = study.trials[0].user_attrs
    assert attrs["amp"] is False and attrs["train_device"] == "cpu"
    assert "skipped_videos" not in attrs  # generated clips have no files to skip


def test_train_num_workers_is_refused_naming_the_new_key(tmp_path: Path) -> None:
    old = TINY.replace("num_workers = 2\n", "").replace("[train]\n", "[train]\nnum_workers = 8\n")
    with pytest.raises(ConfigError, match=r"^\[train\] .*move it to \[data\] num_workers") as info:
        _spec(old, tmp_path)
    assert "\n" not in str(info.value)


def test_flip_label_map_from_toml(tmp_path: Path) -> None:
    video = TINY.replace('kind = "motion"', 'kind = "class_folders"\nroot = "videos"').replace(
        "num_train_clips = 16\nnum_val_clips = 8\n", ""
    )
    spec = _spec(
        video.replace("num_classes = 2", "num_classes = 3\nflip_label_map = { 0 = 2, 2 = 0 }"),
        tmp_path,
    )
    assert spec.data.flip_label_map == ((0, 2), (2, 0))
    one_way = video.replace("num_classes = 2", "num_classes = 3\nflip_label_map = { 0 = 2 }")
    with pytest.raises(ConfigError, match=r"^\[data\] flip_label_map must swap labels both ways"):
        _spec(one_way, tmp_path)
    on_motion = TINY.replace("num_workers = 2", "flip_label_map = { 0 = 1, 1 = 0 }")
    with pytest.raises(
        ConfigError, match=r"^\[data\] flip_label_map must be \(\) for kind 'motion'"
    ):
        _spec(on_motion, tmp_path)


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
