"""Fresh clips kept on disk: read back bit for bit, keyed by what draws them, never required."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from runners.data.clip_cache import task_key
from runners.data.datasets import DataConfig, build_datasets
from runners.data.fresh import FreshClips
from runners.data.motion_events import MotionEventsDataset
from runners.training.accuracy import train_and_evaluate
from runners.training.config import TrainConfig
from search_space.config import ResNet3dConfig

N = 24  # not a multiple of the generation chunk (16)


def _config(**changes: object) -> DataConfig:
    base: dict[str, object] = dict(kind="motion_events", num_classes=4, clip_len=4,
                                   resolution=16, num_train_clips=N, num_val_clips=8, noise=2.0,
                                   fresh_clips=True, noise_start=0.5, noise_ramp_epochs=2,
                                   seed=3)  # fmt: skip
    return DataConfig(**{**base, **changes})  # type: ignore[arg-type]


def _train_split(cfg: DataConfig) -> FreshClips:
    train, _ = build_datasets(cfg)
    assert isinstance(train, FreshClips)
    return train


def _items(train: FreshClips, epochs: int) -> torch.Tensor:
    return torch.stack([train[i][0] for i in range(epochs * N)])


def _files(root: Path) -> list[Path]:
    return sorted((root / "clips").rglob("*.npy"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("R3DNAS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("R3DNAS_CLIP_CACHE", raising=False)
    return tmp_path


def _counting(train: FreshClips) -> list[int]:
    """Count the chunks ``train`` draws (instead of reading them from disk)."""
    drawn: list[int] = []
    generate = train.clips._generate_chunk

    def counted(chunk: int, level: float | None = None) -> np.ndarray:
        drawn.append(chunk)
        return generate(chunk, level)

    train.clips._generate_chunk = counted  # type: ignore[method-assign]
    return drawn


def test_a_second_split_reads_every_chunk_back_bit_for_bit(cache: Path) -> None:
    first = _train_split(_config())
    drawn_first = _counting(first)
    cold = _items(first, 3)
    assert len(drawn_first) == len(set(drawn_first)) > 0
    # one file per chunk and noise level: the curriculum's epochs have their own levels
    assert len(_files(cache)) == len(drawn_first)
    second = _train_split(_config())
    drawn_second = _counting(second)
    warm = _items(second, 3)
    assert drawn_second == []
    assert torch.equal(cold, warm)
    # and both equal what the task draws with no cache at all
    plain = MotionEventsDataset(num_classes=4, num_clips=3 * N, clip_len=4, resolution=16,
                                noise=2.0, seed=3, split="train")  # fmt: skip
    level = first.noise_of_epoch(2)
    chunk = 3  # items 48-63: wholly inside epoch 2 (items 48-71)
    assert np.array_equal(cold[48:64].numpy(), plain._generate_chunk(chunk, level))


@pytest.mark.parametrize(
    ("changes", "redrawn"),
    [
        ({"seed": 4}, 5),
        ({"noise": 2.5}, 5),
        # (with 4 classes there is no pattern change to ramp: the same clips, in another folder)
        ({"transition": 2.0}, 5),
        # the curriculum's own epochs (chunks 0-2) are drawn again; the chunks of epoch 2, at
        # the task's noise, are the same clips and are read back
        ({"noise_start": 0.25}, 3),
    ],
)
def test_whatever_draws_the_clips_names_another_folder_or_file(
    cache: Path, changes: dict[str, object], redrawn: int
) -> None:
    first = _items(_train_split(_config()), 3)
    other = _train_split(_config(**changes))
    drawn = _counting(other)
    # (epoch 0 at noise_start is the same clips whatever the target noise; later epochs differ)
    assert torch.equal(first, _items(other, 3)) == ("transition" in changes)
    assert len(drawn) == redrawn  # of the 5 chunks of 72 items


def test_the_key_covers_the_task_and_its_settings() -> None:
    a = MotionEventsDataset(num_classes=4, num_clips=16, clip_len=4, resolution=16, noise=1.0,
                            seed=0)  # fmt: skip
    b = MotionEventsDataset(num_classes=4, num_clips=16, clip_len=4, resolution=16, noise=1.0,
                            seed=0, split="val")  # fmt: skip
    c = MotionEventsDataset(num_classes=4, num_clips=16, clip_len=4, resolution=16, noise=1.0,
                            seed=0, transition=1.0)  # fmt: skip
    assert len({task_key(a), task_key(b), task_key(c)}) == 3
    same = MotionEventsDataset(num_classes=4, num_clips=16, clip_len=4, resolution=16, noise=1.0,
                               seed=0)  # fmt: skip
    assert task_key(a) == task_key(same)


def test_a_damaged_or_foreign_file_is_drawn_again(cache: Path) -> None:
    cold = _items(_train_split(_config()), 1)
    files = _files(cache)
    files[0].write_bytes(b"not an array")
    np.save(files[1], np.zeros((2, 2), dtype=np.float32))
    again = _train_split(_config())
    drawn = _counting(again)
    assert torch.equal(_items(again, 1), cold)
    assert len(drawn) == 2
    assert np.load(files[0]).dtype == np.float32  # rewritten


def test_switched_off_or_unwritable_it_only_costs_time(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _items(_train_split(_config()), 2)
    monkeypatch.setenv("R3DNAS_CACHE_DIR", str(tmp_path / "off"))
    monkeypatch.setenv("R3DNAS_CLIP_CACHE", "0")
    assert torch.equal(_items(_train_split(_config()), 2), reference)
    assert not (tmp_path / "off").exists()
    monkeypatch.delenv("R3DNAS_CLIP_CACHE")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("R3DNAS_CACHE_DIR", str(blocked))
    assert torch.equal(_items(_train_split(_config()), 2), reference)


def test_a_training_reads_the_same_clips_cold_and_warm(cache: Path) -> None:
    """The product path: two trainings of one network, the second on the first one's disk
    copies, end with the same weights' accuracy and curves."""
    cfg = _config(num_val_clips=16)
    net = ResNet3dConfig(depth=18, base_channels=4, num_stages=2, out_indices=(1,),
                         spatial_strides=(1, 2), temporal_strides=(1, 1), dilations=(1, 1),
                         inflate=((1, 1), (0, 0)))  # fmt: skip
    train = TrainConfig(epochs=3, batch_size=8, lr=0.01, seed=0, num_threads=1)
    results = []
    for _ in range(2):
        train_set, val_set = build_datasets(cfg)
        results.append(train_and_evaluate(net, train_set, val_set, train, num_classes=4))
    assert _files(cache)
    cold, warm = results
    assert cold.top1 == warm.top1
    assert [h["train_loss"] for h in cold.history] == [h["train_loss"] for h in warm.history]
