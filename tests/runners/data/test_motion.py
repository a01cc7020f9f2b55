"""MotionDataset: shapes, determinism, validation, and that single frames carry no label.

The last property is what makes the dataset a proxy task for temporal modelling. It is checked
with the same statistic computed two ways: the correlation of a frame with a one-pixel shift of
*itself* (single-frame evidence) must not predict the label, while the correlation of a frame
with a shift of the *previous* frame (two-frame evidence) must.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from probes import nearest_mean_accuracy

from runners.data.motion import CHUNK, MotionDataset
from search_space.errors import ConfigError

SMALL = {"num_classes": 4, "clip_len": 4, "resolution": 16, "noise": 0.2, "seed": 3}


def _dataset(**changes: object) -> MotionDataset:
    kwargs = {**SMALL, "num_clips": 40, **changes}
    return MotionDataset(**kwargs)  # type: ignore[arg-type]


def test_items_are_standardised_float_clips_with_cycling_labels() -> None:
    dataset = _dataset()
    clip, label = dataset[6]
    assert clip.shape == (3, 4, 16, 16)
    assert clip.dtype == torch.float32
    assert isinstance(label, int) and label == 6 % 4
    assert len(dataset) == 40
    # every frame and channel: zero mean, unit variance
    frame_mean = clip.mean(dim=(2, 3))
    frame_std = clip.std(dim=(2, 3), unbiased=False)
    assert torch.allclose(frame_mean, torch.zeros_like(frame_mean), atol=1e-4)
    assert torch.allclose(frame_std, torch.ones_like(frame_std), atol=1e-3)
    labels = [dataset[i][1] for i in range(len(dataset))]
    assert np.bincount(labels).tolist() == [10, 10, 10, 10]
    assert dataset.class_names == ("pan_000deg", "pan_090deg", "pan_180deg", "pan_270deg")


def test_items_depend_only_on_seed_split_and_index() -> None:
    a, b = _dataset(num_clips=40), _dataset(num_clips=CHUNK + 3)
    for index in (0, 5, CHUNK + 2):
        assert torch.equal(a[index][0], b[index][0])
    assert torch.equal(a[-1][0], a[39][0])
    assert not torch.equal(a[0][0], _dataset(split="val")[0][0])
    assert not torch.equal(a[0][0], _dataset(seed=4)[0][0])
    assert not torch.equal(a[0][0], a[4][0])  # same label, different clip


def test_returned_clip_is_a_copy_of_the_cache() -> None:
    dataset = _dataset()
    clip, _ = dataset[1]
    clip.zero_()
    assert dataset[1][0].abs().sum() > 0


def test_out_of_range_index_raises_index_error() -> None:
    with pytest.raises(IndexError):
        _dataset()[40]


def test_noise_is_added_per_pixel() -> None:
    clean, noisy = _dataset(noise=0.0)[0][0], _dataset(noise=2.0)[0][0]

    # Neighbouring pixels of the smooth scene are correlated; white noise decorrelates them.
    def neighbour_corr(clip: torch.Tensor) -> float:
        return float((clip[..., 1:] * clip[..., :-1]).mean())

    assert neighbour_corr(noisy) < neighbour_corr(clean) - 0.2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_classes", 1),
        ("num_clips", 0),
        ("clip_len", 1),
        ("resolution", 4),
        ("noise", -0.1),
        ("noise", float("nan")),
        ("seed", -1),
        ("split", "validation"),
        ("speed", 0),
        ("speed", 16.0),
        ("num_classes", True),
    ],
)
def test_invalid_arguments_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        _dataset(**{field: value})


def _shift_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """mean(b * shift(a, d)) for the 8 one-pixel shifts d; a, b: (N, C, H, W) -> (N, 8)."""
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    return np.stack(
        [(b * np.roll(a, s, axis=(-2, -1))).mean(axis=(1, 2, 3)) for s in shifts], axis=1
    )


def _features(dataset: MotionDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    clips = np.stack([dataset[i][0].numpy() for i in range(len(dataset))])
    labels = np.array([dataset.label(i) for i in range(len(dataset))])
    # (N, C, T, H, W): one frame against itself, and against the frame before it
    within = _shift_correlations(clips[:, :, 1], clips[:, :, 1])
    across = _shift_correlations(clips[:, :, 0], clips[:, :, 1])
    return within, across, labels


def test_single_frames_carry_no_label_information_but_frame_pairs_do() -> None:
    common = {**SMALL, "speed": 1.0, "noise": 0.2}
    train = MotionDataset(num_clips=320, split="train", **common)  # type: ignore[arg-type]
    val = MotionDataset(num_clips=320, split="val", **common)  # type: ignore[arg-type]
    within_tr, across_tr, y_tr = _features(train)
    within_va, across_va, y_va = _features(val)
    chance = 100.0 / SMALL["num_classes"]
    # Positive control: the pan direction is plain to see across two frames.
    assert nearest_mean_accuracy(across_tr, y_tr, across_va, y_va) >= 80.0
    # The same statistic within one frame is at chance (sd of the estimate ~2.4 points).
    assert nearest_mean_accuracy(within_tr, y_tr, within_va, y_va) <= chance + 10.0
    # And its class means agree within 4 standard errors.
    pooled = np.concatenate([within_tr, within_va])
    labels = np.concatenate([y_tr, y_va])
    overall = pooled.mean(0)
    for c in range(SMALL["num_classes"]):
        rows = pooled[labels == c]
        stderr = rows.std(0) / np.sqrt(len(rows))
        assert np.all(np.abs(rows.mean(0) - overall) < 4 * stderr + 1e-6), c


def test_materialize_generates_every_chunk_once() -> None:
    dataset = _dataset(num_clips=CHUNK * 2 + 1).materialize()
    assert len(dataset._chunks) == 3
    first = dataset._chunks[0]
    dataset.materialize()
    assert dataset._chunks[0] is first
