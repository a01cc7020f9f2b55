"""Which frames of a video make a clip: mmaction2's ``SampleFrames``, as pure functions.

The rule is that of ``mmaction.datasets.transforms.SampleFrames`` (mmaction2 1.2), with all of
its options: ``out_of_bound_opt`` (here ``out_of_bound``), ``temporal_jitter``, ``twice_sample``,
``keep_tail_frames`` and ``target_fps``. A clip of ``clip_len`` frames spaced by
``frame_interval`` starts at a clip offset:

* training draws the offsets at random: the video is cut into ``num_clips`` equal segments of
  ``avg_interval = (num_frames - clip_len * frame_interval + 1) // num_clips`` frames and each
  clip starts at a uniform position inside its segment; videos too short for that fall back to
  sorted uniform offsets, evenly rounded offsets or all zeros, exactly as mmaction2 does.
  ``keep_tail_frames`` uses fractional segments instead, so the last frames can be drawn too;
* testing is deterministic: one clip is centred (``max_offset // 2``), several clips are spread
  evenly from the first to the last possible offset (``np.round``, i.e. half to even); a 2D
  recogniser (``clip_len == 1``) takes the centre of each of ``num_clips`` segments.
  ``twice_sample`` doubles the test clips (mmaction2's TSN/TSM trick);
* ``target_fps`` resamples the video's own frame rate ``fps`` to ``target_fps``: a clip spans
  ``clip_len * frame_interval * fps / target_fps`` source frames and its frames are spread over
  that span (PySlowFast's rule, which mmaction2 follows);
* ``temporal_jitter`` moves every training frame forward by a random ``0..frame_interval-1``.

Indices past the end of the video wrap around (``"loop"``, the default) or repeat the clip's last
valid frame (``"repeat_last"``). Tests check these functions against mmaction2's own class.

Two mmaction2 combinations are refused instead of reproduced, because they crash or divide by
zero there: ``twice_sample`` of a single 3D test clip, and ``temporal_jitter`` with
``target_fps``.

Randomness comes only from the ``numpy.random.Generator`` passed in, so a seed fixes the result;
mmaction2 draws from the global NumPy state instead, so the same seed gives different (equally
distributed) offsets there.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "OutOfBound",
    "clip_span",
    "random_clip_offsets",
    "sample_frame_indices",
    "uniform_clip_offsets",
]

OutOfBound = Literal["loop", "repeat_last"]
OUT_OF_BOUND_CHOICES: tuple[str, ...] = ("loop", "repeat_last")


def clip_span(
    clip_len: int, frame_interval: int, *, test_mode: bool, fps_ratio: float | None = None
) -> float:
    """Source frames one clip covers (mmaction2's ``ori_clip_len``).

    Args:
        fps_ratio: ``fps / target_fps`` when resampling the frame rate, else None.
    """
    if fps_ratio is not None:
        return max(1.0, clip_len * frame_interval * fps_ratio)
    if test_mode:
        return float((clip_len - 1) * frame_interval + 1)
    return float(clip_len * frame_interval)


def random_clip_offsets(
    num_frames: int,
    *,
    span: float,
    num_clips: int,
    rng: np.random.Generator,
    keep_tail_frames: bool = False,
) -> np.ndarray:
    """Random start frames of ``num_clips`` training clips (mmaction2 ``_get_train_clips``).

    Args:
        span: Source frames per clip, from :func:`clip_span`.
        keep_tail_frames: Fractional segments, so the video's last frames can start a clip too.

    Returns:
        float64 array of shape ``(num_clips,)`` holding whole numbers; entries may exceed the
        video for short videos, which :func:`sample_frame_indices` then wraps or clamps.
    """
    if keep_tail_frames:
        avg = (num_frames - span + 1) / float(num_clips)
        if num_frames > span - 1:
            offsets = np.arange(num_clips) * avg + rng.uniform(0, avg, num_clips)
            return np.floor(offsets)
        return np.zeros(num_clips)
    # NOTE: floor division on purpose, also for negative values, as mmaction2 does.
    avg_interval = (num_frames - span + 1) // num_clips
    if avg_interval > 0:
        base = np.arange(num_clips) * avg_interval
        return base + rng.integers(int(avg_interval), size=num_clips)
    if num_frames > max(num_clips, span):
        # NOTE: NumPy truncates a fractional upper bound (target_fps spans), as mmaction2 gets.
        return np.sort(rng.integers(int(num_frames - span + 1), size=num_clips)).astype(np.float64)
    if avg_interval == 0:
        ratio = (num_frames - span + 1.0) / num_clips
        return np.around(np.arange(num_clips) * ratio)
    return np.zeros(num_clips)


def uniform_clip_offsets(
    num_frames: int,
    *,
    clip_len: int,
    span: float,
    num_clips: int,
    twice_sample: bool = False,
    resampled: bool = False,
) -> np.ndarray:
    """Deterministic start frames of the test clips (mmaction2 ``_get_test_clips``).

    Args:
        span: Source frames per clip, from :func:`clip_span`.
        twice_sample: Twice the clips: 2D clips add the segment starts to their centres, 3D
            clips continue the even spacing for ``num_clips`` more offsets.
        resampled: ``target_fps`` is set: the spacing is floored instead of rounded.

    Returns:
        float64 array of ``num_clips`` offsets (twice that with ``twice_sample``): whole
        numbers for 3D clips, segment centres (fractional) for ``clip_len == 1``;
        :func:`sample_frame_indices` floors them.
    """
    if clip_len == 1:  # a 2D recogniser: the centre of each of num_clips segments
        avg_interval = num_frames / float(num_clips)
        base = np.arange(num_clips) * avg_interval
        centres = base + avg_interval / 2.0
        return np.concatenate([centres, base]) if twice_sample else centres
    max_offset = max(num_frames - span, 0)
    total = 2 * num_clips if twice_sample else num_clips
    if total == 1:
        return np.array([max_offset // 2], dtype=np.float64)
    if num_clips == 1:
        raise ValueError("twice_sample needs num_clips >= 2 for clips of more than one frame")
    step = max_offset / float(num_clips - 1)
    if resampled:
        return np.arange(total) * np.floor(step)
    return np.round(np.arange(total) * step)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")


def _check_options(
    *,
    out_of_bound: str,
    target_fps: float | None,
    temporal_jitter: bool,
    needs_rng: bool,
    rng: np.random.Generator | None,
) -> None:
    if out_of_bound not in OUT_OF_BOUND_CHOICES:
        raise ValueError(
            f"out_of_bound must be one of 'loop', 'repeat_last'; got {out_of_bound!r}"
        )
    if target_fps is not None and not target_fps > 0:
        raise ValueError(f"target_fps must be > 0 or None; got {target_fps!r}")
    if temporal_jitter and target_fps is not None:
        raise ValueError("temporal_jitter cannot be combined with target_fps (mmaction2 fails)")
    if rng is None and needs_rng:
        raise ValueError("rng is required for training sampling and for temporal_jitter")


def sample_frame_indices(
    num_frames: int,
    *,
    clip_len: int,
    frame_interval: int = 1,
    num_clips: int = 1,
    test_mode: bool,
    rng: np.random.Generator | None = None,
    out_of_bound: OutOfBound = "loop",
    temporal_jitter: bool = False,
    twice_sample: bool = False,
    keep_tail_frames: bool = False,
    target_fps: float | None = None,
    fps: float | None = None,
) -> np.ndarray:
    """Frame indices of every clip, as mmaction2's ``SampleFrames`` with ``start_index=0``.

    Args:
        num_frames: Frames in the video (at least 1).
        clip_len: Frames per clip.
        frame_interval: Step between consecutive frames of a clip.
        num_clips: Clips per video.
        test_mode: Deterministic test offsets instead of random training offsets.
        rng: Source of the random choices; required unless ``test_mode`` without jitter.
        out_of_bound: ``"loop"`` wraps indices modulo ``num_frames``; ``"repeat_last"`` replaces
            them by the clip's last in-range index.
        temporal_jitter: Add a random ``0..frame_interval-1`` to every frame index (mmaction2
            does this in test mode too; our datasets only ask for it in training).
        twice_sample: Test mode: twice as many clips (see :func:`uniform_clip_offsets`).
        keep_tail_frames: Training: fractional segments that reach the last frames.
        target_fps: Resample the video's ``fps`` to this rate; an unknown ``fps`` means no
            resampling, but the frames are still spread over the span as mmaction2 does.
        fps: The video's average frame rate, when known.

    Returns:
        int64 array of shape ``(clips, clip_len)``, every entry in ``[0, num_frames)``;
        ``clips`` is ``num_clips``, or twice that with ``twice_sample`` in test mode.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1; got {num_frames}")
    _check_positive(clip_len=clip_len, frame_interval=frame_interval, num_clips=num_clips)
    _check_options(
        out_of_bound=out_of_bound,
        target_fps=target_fps,
        temporal_jitter=temporal_jitter,
        needs_rng=temporal_jitter or not test_mode,
        rng=rng,
    )
    fps_ratio = None
    if target_fps is not None:
        fps_ratio = fps / target_fps if fps else 1.0
    span = clip_span(clip_len, frame_interval, test_mode=test_mode, fps_ratio=fps_ratio)
    if test_mode:
        offsets = uniform_clip_offsets(
            num_frames,
            clip_len=clip_len,
            span=span,
            num_clips=num_clips,
            twice_sample=twice_sample,
            resampled=target_fps is not None,
        )
    else:
        assert rng is not None
        offsets = random_clip_offsets(
            num_frames, span=span, num_clips=num_clips, rng=rng, keep_tail_frames=keep_tail_frames
        )
    if target_fps is not None:
        steps = np.floor(np.linspace(0, span - 1, clip_len))
    else:
        steps = np.arange(clip_len, dtype=np.float64) * frame_interval
    inds = offsets[:, None] + steps[None, :]
    if temporal_jitter:
        assert rng is not None
        inds = inds + rng.integers(frame_interval, size=inds.shape)
    if out_of_bound == "loop":
        # NOTE: mmaction2 takes the modulo before truncating fractional 2D offsets to int;
        # for non-negative values floor(x mod n) == floor(x) mod n, so the order is immaterial.
        inds = np.mod(inds, num_frames)
    else:
        safe = inds < num_frames
        last = np.max(np.where(safe, inds, 0), axis=1, keepdims=True)
        inds = np.where(safe, inds, last)
    return np.floor(inds).astype(np.int64)
