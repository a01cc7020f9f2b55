"""``[data] fresh_clips``: new generated training clips every epoch, reproducible from the seed."""

from __future__ import annotations

import pytest
import torch

from runners.data.datasets import DataConfig, build_datasets, build_loader
from runners.data.fresh import FreshClips
from runners.data.motion_events import MotionEventsDataset
from search_space.errors import ConfigError

N = 24  # not a multiple of the generation chunk (16), so chunks straddle epochs


def _config(**changes: object) -> DataConfig:
    base: dict[str, object] = dict(kind="motion_events", num_classes=4, clip_len=4,
                                   resolution=16, num_train_clips=N, num_val_clips=8, noise=0.5,
                                   fresh_clips=True, seed=3)  # fmt: skip
    return DataConfig(**{**base, **changes})  # type: ignore[arg-type]


def _epochs(cfg: DataConfig, epochs: int, *, num_workers: int = 0) -> list[torch.Tensor]:
    """The clips of each epoch's batches, concatenated, for ``epochs`` passes of one loader."""
    train, _ = build_datasets(cfg)
    loader = build_loader(train, batch_size=8, shuffle=True, num_workers=num_workers, seed=5,
                          drop_last=True, persistent_workers=num_workers > 0)  # fmt: skip
    return [torch.cat([clips for clips, _ in loader]) for _ in range(epochs)]


def test_every_epoch_trains_on_its_own_slice_of_the_task() -> None:
    train, val = build_datasets(_config())
    assert isinstance(train, FreshClips) and len(train) == N
    plain = MotionEventsDataset(num_classes=4, num_clips=3 * N, clip_len=4, resolution=16,
                                noise=0.5, seed=3, split="train")  # fmt: skip
    epochs = _epochs(_config(), 3)
    for e, clips in enumerate(epochs):
        # epoch e is exactly items e*N .. (e+1)*N - 1 of the plain split, each once
        expected = torch.stack([plain[i][0] for i in range(e * N, (e + 1) * N)])
        found = {tuple(c.flatten()[:8].tolist()) for c in clips}
        assert found == {tuple(c.flatten()[:8].tolist()) for c in expected}
    # no clip is seen twice across epochs
    first = torch.cat(epochs).flatten(1)[:, :8]
    assert len({tuple(row.tolist()) for row in first}) == 3 * N
    # labels stay balanced within an epoch
    assert [train.label(i) for i in range(N, 2 * N)].count(0) == N // 4
    # validation is the fixed split of the non-fresh run
    fixed_val = build_datasets(_config(fresh_clips=False))[1]
    assert torch.equal(val[5][0], fixed_val[5][0])


def test_fresh_clips_are_deterministic_and_independent_of_workers() -> None:
    again = _epochs(_config(), 2)
    assert all(torch.equal(a, b) for a, b in zip(_epochs(_config(), 2), again, strict=True))
    with_workers = _epochs(_config(), 2, num_workers=2)
    assert all(torch.equal(a, b) for a, b in zip(with_workers, again, strict=True))
    # epoch 0 is the plain run's first epoch; epoch 1 differs from the plain run's second
    plain = _epochs(_config(fresh_clips=False), 2)
    assert torch.equal(plain[0], again[0]) and not torch.equal(plain[1], again[1])
    other_seed = _epochs(_config(seed=4), 1)
    assert not torch.equal(other_seed[0], again[0])


def test_a_noise_curriculum_starts_clear_and_reaches_the_task_s_noise() -> None:
    """``noise_start``: epoch 0 at that noise, then linearly to ``noise`` by epoch
    ``noise_ramp_epochs``; every clip is otherwise the same clip, and validation is untouched."""
    n = 32  # two generation chunks per epoch: every chunk lies in one epoch
    cfg = _config(num_train_clips=n, noise_start=0.0, noise_ramp_epochs=2)
    train, val = build_datasets(cfg)
    assert isinstance(train, FreshClips)
    assert [train.noise_of_epoch(e) for e in range(4)] == [0.0, 0.25, 0.5, 0.5]

    def plain(noise: float) -> MotionEventsDataset:
        return MotionEventsDataset(num_classes=4, num_clips=4 * n, clip_len=4, resolution=16,
                                   noise=noise, seed=3, split="train")  # fmt: skip

    for index, noise in ((3, 0.0), (n + 3, 0.25), (2 * n + 3, 0.5), (3 * n + 3, 0.5)):
        assert torch.equal(train[index][0], plain(noise)[index][0]), (index, noise)
    assert not torch.equal(train[3][0], plain(0.5)[3][0])  # epoch 0 is not at the task's noise
    assert torch.equal(val[3][0], build_datasets(_config(num_train_clips=n))[1][3][0])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"noise_start": 0.1, "noise_ramp_epochs": 2, "fresh_clips": False},
         "noise_start and noise_ramp_epochs need fresh_clips = true (a curriculum over epochs "
         "of new clips); got noise_start=0.1, fresh_clips=false"),
        ({"noise_start": 0.1}, "noise_ramp_epochs must be an int >= 1; got 0"),
        ({"noise_ramp_epochs": 2}, "noise_start must be a finite number >= 0; got None"),
        ({"noise_start": -1.0, "noise_ramp_epochs": 2},
         "noise_start must be a finite number >= 0; got -1.0"),
    ],
)  # fmt: skip
def test_a_bad_curriculum_is_one_line(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(**changes)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fresh_clips": "yes"}, "fresh_clips must be true or false; got 'yes'"),
        (
            {"kind": "class_folders", "root": "videos", "fresh_clips": True},
            "fresh_clips is only used with kinds 'motion' and 'motion_events'; got "
            "fresh_clips=true for kind 'class_folders'",
        ),
    ],
)
def test_bad_fresh_clips_is_one_line(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(**changes)
    assert str(info.value) == message
