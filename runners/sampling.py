"""Which frames of a video make a clip: mmaction2's ``SampleFrames``, as pure functions.

The rule is that of ``mmaction.datasets.transforms.SampleFrames`` (mmaction2 1.2) with its
defaults ``temporal_jitter=False``, ``twice_sample=False``, ``keep_tail_frames=False`` and
``target_fps=None``; ``out_of_bound_opt`` is supported as ``out_of_bound``. A clip of ``clip_len``
frames spaced by ``frame_interval`` starts at a clip offset:

* training draws the offsets at random: the video is cut into ``num_clips`` equal segments of
  ``avg_interval = (num_frames - clip_len * frame_interval + 1) // num_clips`` frames and each
  clip starts at a uniform position inside its segment; videos too short for that fall back to
  sorted uniform offsets, evenly rounded offsets or all zeros, exactly as mmaction2 does;
* testing is deterministic: one clip is centred (``max_offset // 2``), several clips are spread
  evenly from the first to the last possible offset (``np.round``, i.e. half to even); a 2D
  recogniser (``clip_len == 1``) takes the centre of each of ``num_clips`` segments.

Indices past the end of the video wrap around (``"loop"``, the default) or repeat the clip's last
valid frame (``"repeat_last"``). A test checks these functions against mmaction2's own class.

Randomness comes only from the ``numpy.random.Generator`` passed in, so a seed fixes the result;
mmaction2 draws from the global NumPy state instead, so the same seed gives different (equally
distributed) offsets there.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "OutOfBound",
    "sample_frame_indices",
    "uniform_clip_offsets",
    "random_clip_offsets",
]

OutOfBound = Literal["loop", "repeat_last"]
OUT_OF_BOUND_CHOICES: tuple[str, ...] = ("loop", "repeat_last")


def random_clip_offsets(
    num_frames: int,
    *,
    clip_len: int,
    frame_interval: int,
    num_clips: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Random start frames of ``num_clips`` training clips (mmaction2 ``_get_train_clips``).

    Returns:
        int64 array of shape ``(num_clips,)``; entries may exceed the video for short videos,
        which :func:`sample_frame_indices` then wraps or clamps.
    """
    span = clip_len * frame_interval  # mmaction2's ori_clip_len in training
    # NOTE: floor division on purpose, also for negative values, as mmaction2 does.
    avg_interval = (num_frames - span + 1) // num_clips
    if avg_interval > 0:
        base = np.arange(num_clips, dtype=np.int64) * avg_interval
        return base + rng.integers(avg_interval, size=num_clips)
    if num_frames > max(num_clips, span):
        return np.sort(rng.integers(num_frames - span + 1, size=num_clips)).astype(np.int64)
    if avg_interval == 0:
        ratio = (num_frames - span + 1.0) / num_clips
        return np.around(np.arange(num_clips) * ratio).astype(np.int64)
    return np.zeros(num_clips, dtype=np.int64)


def uniform_clip_offsets(
    num_frames: int, *, clip_len: int, frame_interval: int, num_clips: int
) -> np.ndarray:
    """Deterministic start frames of ``num_clips`` test clips (mmaction2 ``_get_test_clips``).

    Returns:
        float64 array of shape ``(num_clips,)``: whole numbers for 3D clips, segment centres
        (fractional) for ``clip_len == 1``; :func:`sample_frame_indices` floors them.
    """
    if clip_len == 1:  # a 2D recogniser: the centre of each of num_clips segments
        avg_interval = num_frames / float(num_clips)
        return np.arange(num_clips) * avg_interval + avg_interval / 2.0
    span = (clip_len - 1) * frame_interval + 1  # mmaction2's ori_clip_len at test time
    max_offset = max(num_frames - span, 0)
    if num_clips > 1:
        return np.round(np.arange(num_clips) * (max_offset / float(num_clips - 1)))
    return np.array([max_offset // 2], dtype=np.float64)


def sample_frame_indices(
    num_frames: int,
    *,
    clip_len: int,
    frame_interval: int = 1,
    num_clips: int = 1,
    test_mode: bool,
    rng: np.random.Generator | None = None,
    out_of_bound: OutOfBound = "loop",
) -> np.ndarray:
    """Frame indices of every clip, as mmaction2's ``SampleFrames`` with ``start_index=0``.

    Args:
        num_frames: Frames in the video (at least 1).
        clip_len: Frames per clip.
        frame_interval: Step between consecutive frames of a clip.
        num_clips: Clips per video.
        test_mode: Deterministic test sampling instead of random training offsets.
        rng: Source of the training offsets; required unless ``test_mode``.
        out_of_bound: ``"loop"`` wraps indices modulo ``num_frames``; ``"repeat_last"`` replaces
            them by the clip's last in-range index.

    Returns:
        int64 array of shape ``(num_clips, clip_len)``, every entry in ``[0, num_frames)``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1; got {num_frames}")
    for name, value in (
        ("clip_len", clip_len),
        ("frame_interval", frame_interval),
        ("num_clips", num_clips),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")
    if out_of_bound not in OUT_OF_BOUND_CHOICES:
        raise ValueError(
            f"out_of_bound must be one of 'loop', 'repeat_last'; got {out_of_bound!r}"
        )
    if test_mode:
        offsets = uniform_clip_offsets(
            num_frames, clip_len=clip_len, frame_interval=frame_interval, num_clips=num_clips
        )
    else:
        if rng is None:
            raise ValueError("rng is required for training sampling (test_mode=False)")
        offsets = random_clip_offsets(
            num_frames,
            clip_len=clip_len,
            frame_interval=frame_interval,
            num_clips=num_clips,
            rng=rng,
        ).astype(np.float64)
    steps = np.arange(clip_len, dtype=np.float64) * frame_interval
    inds = offsets[:, None] + steps[None, :]
    if out_of_bound == "loop":
        # NOTE: mmaction2 takes the modulo before truncating fractional 2D offsets to int;
        # for non-negative values floor(x mod n) == floor(x) mod n, so the order is immaterial.
        inds = np.mod(inds, num_frames)
    else:
        safe = inds < num_frames
        last = np.max(np.where(safe, inds, 0), axis=1, keepdims=True)
        inds = np.where(safe, inds, last)
    return np.floor(inds).astype(np.int64)
