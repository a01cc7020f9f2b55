"""Training and evaluation through the real video pipeline (PyAV decode, multi-clip test)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from videos import video_list_data

from runners.data.datasets import build_datasets
from runners.training.accuracy import TrainConfig, train_and_evaluate
from search_space import ResNet3dConfig


def test_train_on_a_video_list_with_two_test_clips(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_video("train_a.mp4", 24).parent
    for name in ("train_b.mp4", "val_a.mp4", "val_b.mp4"):
        make_video(name, 24)
    train, val = ["train_a.mp4 0", "train_b.mp4 1"], ["val_a.mp4 0", "val_b.mp4 1"]
    data = video_list_data(root, tmp_path, train=train, val=val).replace(frame_interval=2)
    train_set, val_set = build_datasets(data)
    clip, label = val_set[0]
    assert tuple(clip.shape) == (2, 3, 4, 32, 32) and label == 0
    config = ResNet3dConfig(depth=18, stage_blocks=(1, 1, 1, 1), base_channels=4)
    seen: list[int] = []
    result = train_and_evaluate(
        config,
        train_set,
        val_set,
        TrainConfig(epochs=2, batch_size=2, device="cpu", seed=0, num_threads=1),
        num_classes=2,
        on_epoch=lambda epoch, metrics: seen.append(epoch),
    )
    assert seen == [1, 2]
    # two videos: each is right or wrong, so top-1 is 0, 50 or 100
    assert result.top1 in (0.0, 50.0, 100.0)
    assert result.history[-1]["val_top1"] == result.top1
