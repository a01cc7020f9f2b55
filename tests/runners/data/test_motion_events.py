"""MotionEventsDataset: shapes, determinism, validation, closed-form trajectories, and the two
properties that make it a graded task: single frames carry no label, and telling the patterns
apart needs the *order* of the motion, not only which motions occur."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from probes import nearest_mean_accuracy

from runners.data.datasets import DataConfig, build_datasets
from runners.data.motion_events import CHUNK, PATTERNS, MotionEventsDataset, pan_displacements
from search_space.errors import ConfigError

SMALL = {"num_classes": 16, "clip_len": 8, "resolution": 16, "noise": 0.2, "seed": 3}


def _dataset(**changes: object) -> MotionEventsDataset:
    kwargs = {**SMALL, "num_clips": 48, **changes}
    return MotionEventsDataset(**kwargs)  # type: ignore[arg-type]


def test_items_are_standardised_float_clips_with_cycling_labels() -> None:
    dataset = _dataset()
    clip, label = dataset[21]
    assert clip.shape == (3, 8, 16, 16)
    assert clip.dtype == torch.float32
    assert label == 21 % 16
    frame_std = clip.std(dim=(2, 3), unbiased=False)
    assert torch.allclose(clip.mean(dim=(2, 3)), torch.zeros(3, 8), atol=1e-4)
    assert torch.allclose(frame_std, torch.ones_like(frame_std), atol=1e-3)
    assert np.bincount([dataset[i][1] for i in range(48)]).tolist() == [3] * 16
    names = dataset.class_names
    assert names[:4] == ("steady_000deg", "steady_090deg", "steady_180deg", "steady_270deg")
    assert names[-1] == "start_270deg" and len(names) == 16
    assert _dataset(num_classes=8).class_names[4:] == (
        "reverse_000deg",
        "reverse_090deg",
        "reverse_180deg",
        "reverse_270deg",
    )


def test_items_depend_only_on_seed_split_and_index() -> None:
    a, b = _dataset(num_clips=48), _dataset(num_clips=CHUNK + 3)
    for index in (0, 7, CHUNK + 2):
        assert torch.equal(a[index][0], b[index][0])
    assert torch.equal(a[-1][0], a[47][0])
    assert not torch.equal(a[0][0], _dataset(split="val")[0][0])
    assert not torch.equal(a[0][0], _dataset(seed=4)[0][0])
    assert not torch.equal(a[0][0], a[16][0])  # same label, different clip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_classes", 6),
        ("num_classes", 20),
        ("num_classes", True),
        ("num_clips", 0),
        ("clip_len", 3),
        ("resolution", 4),
        ("noise", -0.1),
        ("seed", -1),
        ("split", "validation"),
        ("speed", 0),
        ("transition", -1.0),
        ("transition", 9.0),  # longer than the clip
        ("transition", float("nan")),
    ],
)
def test_invalid_arguments_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        _dataset(**{field: value})


@pytest.mark.parametrize("change", [2.0, 3.5, 4.25])
def test_pan_travel_has_the_closed_form_of_each_pattern(change: float) -> None:
    """Final displacement along the direction: steady T-1, reverse 2c-(T-1), stop c, start T-1-c
    (in units of speed), for change time c; direction 0 moves along +x only."""
    t, speed = 8, 1.5
    expected = {
        "steady": t - 1,
        "reverse": 2 * change - (t - 1),
        "stop": change,
        "start": t - 1 - change,
    }
    for index, name in enumerate(PATTERNS):
        pan = pan_displacements(
            np.array([0]), np.array([index]), np.array([speed]), np.array([change]), t
        )
        assert pan.shape == (1, t, 2)
        assert np.allclose(pan[0, 0], 0.0)
        assert np.allclose(pan[0, -1], (0.0, speed * expected[name])), name
        assert np.allclose(pan[..., 0], 0.0)
    up = pan_displacements(np.array([1]), np.array([0]), np.array([1.0]), np.array([3.0]), t)
    assert np.allclose(up[0, -1], (-(t - 1), 0.0))  # 90 degrees: rows grow downwards


@pytest.mark.parametrize("transition", [2.0, 4.0])
def test_a_ramp_spreads_the_change_and_keeps_each_pattern_s_travel(transition: float) -> None:
    """A linear ramp centred on the change time travels as far as the instantaneous change
    (when it fits inside the clip), but its velocity moves by at most ``1/L`` of the jump per
    frame step, where the instantaneous change jumps in one step."""
    t, change = 16, 7.5
    args = (np.array([0, 0, 0, 0]), np.arange(4), np.ones(4), np.full(4, change), t)
    at_once, ramp = pan_displacements(*args), pan_displacements(*args, transition)
    assert np.allclose(ramp[:, -1], at_once[:, -1])
    velocity = np.diff(ramp[..., 1], axis=1)  # per frame step, along +x
    jumps = np.abs(np.diff(velocity, axis=1)).max(axis=1)
    jump_at_once = np.abs(np.diff(np.diff(at_once[..., 1], axis=1), axis=1)).max(axis=1)
    for name, index in zip(PATTERNS, range(4), strict=True):
        size = abs(PATTERNS[name][1] - PATTERNS[name][0])
        assert jumps[index] <= size / transition + 1e-9, name
        if size:  # the change took more steps than at once
            assert jumps[index] < jump_at_once[index], name
    assert np.array_equal(pan_displacements(*args, 0.0), at_once)


def test_transition_goes_through_the_data_config_for_motion_events_only() -> None:
    cfg = DataConfig(kind="motion_events", num_classes=16, clip_len=8, resolution=16,
                     num_train_clips=20, num_val_clips=12, noise=0.1, seed=1,
                     transition=4)  # fmt: skip
    train, val = build_datasets(cfg)
    assert isinstance(val, MotionEventsDataset) and val.transition == 4.0
    plain = build_datasets(cfg.replace(transition=0.0))[1]
    assert not torch.equal(val[5][0], plain[5][0])  # a reverse clip: the ramp changed it
    assert torch.equal(val[1][0], plain[1][0])  # a steady clip has nothing to ramp
    with pytest.raises(ConfigError, match="transition is only used with kind 'motion_events'"):
        DataConfig(kind="motion", clip_len=8, transition=2)
    with pytest.raises(ConfigError, match=r"transition must be a number of frames in \[0, clip"):
        cfg.replace(transition=True)


def test_generated_kind_builds_through_the_data_config() -> None:
    cfg = DataConfig(
        kind="motion_events",
        num_classes=8,
        clip_len=8,
        resolution=16,
        num_train_clips=20,
        num_val_clips=12,
        noise=0.1,
        seed=1,
    )
    train, val = build_datasets(cfg)
    assert isinstance(train, MotionEventsDataset) and len(train) == 20 and len(val) == 12
    assert train[0][0].shape == (3, 8, 16, 16)
    with pytest.raises(ConfigError, match="frame_interval"):
        cfg.replace(frame_interval=2)
    with pytest.raises(ConfigError, match="num_classes"):
        build_datasets(cfg.replace(num_classes=5))


# ---------------------------------------------------------------------- what the label needs
def _pair_statistics(clips: np.ndarray) -> np.ndarray:
    """Per frame pair (t, t+1): correlation of frame t+1 with frame t shifted by each of the 8
    one-pixel offsets -> (N, T-1, 8): a local motion detector."""
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    before, after = clips[:, :, :-1], clips[:, :, 1:]
    return np.stack(
        [(after * np.roll(before, s, axis=(-2, -1))).mean(axis=(1, 3, 4)) for s in shifts], -1
    )


def _clips(split: str, **changes: object) -> tuple[np.ndarray, np.ndarray]:
    common = {**SMALL, "speed": 1.0, "noise": 0.1, **changes}
    data = MotionEventsDataset(num_clips=640, split=split, **common)  # type: ignore[arg-type]
    clips = np.stack([data[i][0].numpy() for i in range(len(data))])
    return clips, np.array([data.label(i) for i in range(len(data))])


def test_single_frames_carry_no_label_information_but_frame_pairs_do() -> None:
    (train, y_tr), (val, y_va) = _clips("train"), _clips("val")
    # A frame against itself shifted: single-frame evidence only -> chance (6.25% for 16).
    within_tr = _pair_statistics(np.stack([train[:, :, 4], train[:, :, 4]], axis=2))[:, 0]
    within_va = _pair_statistics(np.stack([val[:, :, 4], val[:, :, 4]], axis=2))[:, 0]
    assert nearest_mean_accuracy(within_tr, y_tr, within_va, y_va) <= 6.25 + 6.0
    # Positive control: the direction of the first frame pair is plain to see (all patterns
    # but 'start' move there).
    moving = y_tr // 4 != 3
    first_tr, first_va = _pair_statistics(train)[:, 0], _pair_statistics(val)[:, 0]
    accuracy = nearest_mean_accuracy(
        first_tr[moving], y_tr[moving] % 4, first_va[y_va // 4 != 3], y_va[y_va // 4 != 3] % 4
    )
    assert accuracy >= 80.0


def test_stop_and_start_differ_only_in_the_order_of_the_motion() -> None:
    """Averaged over time, local motion evidence cannot tell 'stop' from 'start' (the change
    time is symmetric about the middle); split into early and late halves, it can."""
    (train, y_tr), (val, y_va) = _clips("train"), _clips("val")
    pairs_tr, pairs_va = _pair_statistics(train), _pair_statistics(val)
    # direction 0, pattern stop (label 8) vs start (label 12)
    keep_tr, keep_va = np.isin(y_tr, (8, 12)), np.isin(y_va, (8, 12))
    pooled = nearest_mean_accuracy(
        pairs_tr[keep_tr].mean(1), y_tr[keep_tr], pairs_va[keep_va].mean(1), y_va[keep_va]
    )
    half = pairs_tr.shape[1] // 2

    def ordered(p: np.ndarray) -> np.ndarray:
        return np.concatenate([p[:, :half].mean(1), p[:, half:].mean(1)], axis=1)

    in_order = nearest_mean_accuracy(
        ordered(pairs_tr[keep_tr]), y_tr[keep_tr], ordered(pairs_va[keep_va]), y_va[keep_va]
    )
    assert pooled <= 50.0 + 25.0  # 40 validation clips: chance +- 2.5 sd
    assert in_order >= 90.0
