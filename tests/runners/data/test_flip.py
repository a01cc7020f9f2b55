"""The training flip and ``flip_label_map``: validation, and labels as mmaction2's ``Flip`` gives
them.

A flipped clip of "dark left, bright right" is "bright left, dark right", so every item shows
whether it was mirrored; its label must then have gone through the map, in r3dnas as in
mmaction2 (its own transforms, loaded by path, run the exported training pipeline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmaction_oracle import run_pipeline

from runners.data.datasets import DataConfig, build_datasets
from runners.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from search_space.errors import ConfigError
from studies.results.mmaction2_config import train_pipeline_steps

av = pytest.importorskip("av")

LABEL_MAP = {0: 1, 1: 0}  # "sweeps left" <-> "sweeps right"; label 2 has no direction


def _encode_half_lit(path: Path, num_frames: int = 12, width: int = 64, height: int = 48) -> Path:
    """A video whose left half is dark (40) and right half bright (200) in every frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = np.full((height, width, 3), 40, dtype=np.uint8)
    frame[:, width // 2 :] = 200
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(num_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _mirrored(clip: torch.Tensor) -> bool:
    """Whether a (C, T, H, W) clip (any scale) is bright on the left: the mirror image."""
    width = clip.shape[-1]
    return bool(clip[..., : width // 2].mean() > clip[..., width // 2 :].mean())


@pytest.fixture(scope="module")
def direction_data(tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    root = tmp_path_factory.mktemp("flip")
    _encode_half_lit(root / "v.mp4")
    lst = root / "list.txt"
    lst.write_text("v.mp4 0\nv.mp4 1\nv.mp4 2\n")
    return DataConfig(
        kind="video_list", train_list=str(lst), val_list=str(lst), num_classes=3, clip_len=4,
        resolution=32, flip_label_map=LABEL_MAP,
    )  # fmt: skip


def _ours(data: DataConfig, draws: int) -> dict[int, set[tuple[bool, int]]]:
    """Label as listed -> the (mirrored, label) outcomes r3dnas's training set gives."""
    train, _ = build_datasets(data)
    outcomes: dict[int, set[tuple[bool, int]]] = {}
    for index, (_, listed) in enumerate(train.videos):  # type: ignore[attr-defined]
        for item_seed in range(draws):
            clip, label = train[(index, item_seed)]
            outcomes.setdefault(listed, set()).add((_mirrored(clip), label))
    return outcomes


def _theirs(data: DataConfig, draws: int) -> dict[int, set[tuple[bool, int]]]:
    """The same through mmaction2's own transforms running the exported training pipeline."""
    train, _ = build_datasets(data)
    steps = train_pipeline_steps(data)
    outcomes: dict[int, set[tuple[bool, int]]] = {}
    for path, listed in train.videos:  # type: ignore[attr-defined]
        for seed in range(draws):
            np.random.seed(seed)  # mmaction2 draws from NumPy's global generator
            results = {"filename": path, "label": listed, "start_index": 0, "modality": "RGB"}
            packed = run_pipeline(steps, results)
            clip = packed["inputs"][0].float()  # (C, T, H, W), 0-255
            label = int(packed["data_samples"].gt_label.item())
            outcomes.setdefault(listed, set()).add((_mirrored(clip), label))
    return outcomes


def test_flip_label_map_gives_mmaction2_flips_labels(direction_data: DataConfig) -> None:
    expected = {
        label: {(False, label), (True, LABEL_MAP.get(label, label))} for label in (0, 1, 2)
    }
    assert _ours(direction_data, 24) == expected
    assert _theirs(direction_data, 24) == expected


def test_without_a_map_a_flip_keeps_the_label(direction_data: DataConfig) -> None:
    plain = direction_data.replace(flip_label_map=())
    expected = {label: {(False, label), (True, label)} for label in (0, 1, 2)}
    assert _ours(plain, 24) == expected
    assert _theirs(plain, 24) == expected


def test_validation_items_are_never_flipped_nor_relabelled(direction_data: DataConfig) -> None:
    _, val = build_datasets(direction_data)
    for index in range(3):
        clip, label = val[index]
        assert not _mirrored(clip) and label == index


def test_pixels_of_a_flipped_item_are_the_mirror_of_the_unflipped(
    direction_data: DataConfig,
) -> None:
    flipping, _ = build_datasets(direction_data)
    still, _ = build_datasets(direction_data.replace(flip=False, flip_label_map=()))
    mirrored = 0
    for item_seed in range(8):
        a, _ = flipping[(0, item_seed)]
        b, _ = still[(0, item_seed)]  # the same crop: the flip is drawn after it
        if _mirrored(a):
            mirrored += 1
            assert torch.equal(a, b.flip(-1))
        else:
            assert torch.equal(a, b)
    assert 0 < mirrored < 8
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    assert float((b * torch.tensor(IMAGENET_STD).view(3, 1, 1, 1) + mean).max()) > 150


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({0: 1}, "must swap labels both ways .*0 -> 1 but 1 -> 1; add 1 = 0"),
        ({0: 3, 3: 0}, r"values must be labels in \[0, 3\); got 3"),
        ({"a": 1, 1: 0}, r"keys must be labels in \[0, 3\); got 'a'"),
        ({True: 1}, r"keys must be labels in \[0, 3\); got True"),
        ([1, 0], r"must map labels to labels \(e.g. \{ 0 = 1, 1 = 0 \}"),
        ("0=1", "must map labels to labels"),
        ({0: 1, "0": 1, 1: 0}, "lists label 0 twice"),
    ],
)
def test_flip_label_map_rejects(value: object, match: str) -> None:
    with pytest.raises(ConfigError, match="^flip_label_map " + match) as info:
        DataConfig(kind="class_folders", root="/r", num_classes=3, flip_label_map=value)
    assert "\n" not in str(info.value)


def test_flip_label_map_needs_flip_and_real_videos() -> None:
    with pytest.raises(ConfigError, match="flip_label_map is only used with flip = true"):
        DataConfig(kind="class_folders", root="/r", flip=False, flip_label_map={0: 1, 1: 0})
    with pytest.raises(ConfigError, match="flip_label_map must be .* for kind 'motion'"):
        DataConfig(flip_label_map={0: 1, 1: 0})


def test_flip_label_map_round_trips_and_normalises() -> None:
    toml_like = {"kind": "class_folders", "root": "/r", "flip_label_map": {"3": 2, "2": 3}}
    cfg = DataConfig.from_dict(toml_like)
    assert cfg.flip_label_map == ((2, 3), (3, 2))
    assert cfg.to_dict()["flip_label_map"] == {"2": 3, "3": 2}  # JSON/TOML keys are strings
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    assert DataConfig(kind="class_folders", root="/r", flip_label_map=[(0, 1), (1, 0)]) == (
        DataConfig(kind="class_folders", root="/r", flip_label_map={1: 0, 0: 1})
    )
