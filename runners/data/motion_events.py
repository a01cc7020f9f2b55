"""``MotionEventsDataset``: a graded task whose classes need temporal structure at several scales.

Why it exists: the built-in ``motion`` task splits architectures in two (a temporal stem solves
it, nothing else does), so it cannot rank a space by degrees. Here the label is a pan direction
*and* what happens to the pan over time, so a network is rewarded for each scale of temporal
modelling it has:

* **direction** (4 classes, like ``motion``): seen by any spatio-temporal filter over 2-3 frames;
* **pattern** over the clip: ``steady`` (pans the whole clip), ``reverse`` (pans one way, then
  back), ``stop`` (pans, then stands still) or ``start`` (stands still, then pans), the change at
  a random time in the middle half of the clip.

A network with only local motion detectors and global average pooling sees *which* directions
occur and for how long, but not in which *order*: it tells ``steady`` classes apart but confuses
``reverse`` right-then-left with left-then-right, and ``stop`` with ``start`` (about 62% of 16
classes at best). Telling those apart needs a temporal receptive field that spans the change
(stacked temporal kernels, temporal strides, pooling over time), and seeing slow pans at all
needs temporal kernels where the resolution is still high. So accuracy grows by degrees with
where and how a network is inflated, instead of jumping on one switch.

Everything else is drawn independently of the label, as in :mod:`runners.data.motion`: textures,
the scene's phase, the change time, the pan speed (jittered +-20%), distractor shapes drifting
their own random ways, and per-pixel noise.

Guarantees (tested in ``tests/runners/data/test_motion_events.py``):

* Every single frame has the same distribution for every class (a pan of a stationary periodic
  field by any vector keeps its distribution; the shapes do not depend on the label).
* Labels cycle (``i % num_classes``); with ``num_classes = 4 * P`` the first ``P`` patterns of
  ``steady, reverse, stop, start`` are used (``num_classes = 4`` is a pure direction task).
* Item ``i`` depends only on ``(seed, split, i)`` and the other arguments, never on
  ``num_clips``; splits draw from different random streams; generation is vectorised by chunk.
"""

from __future__ import annotations

import math

import numpy as np

from runners.data.generated import CHUNK, SPLITS, GeneratedClips
from runners.data.scene import (
    add_noise_and_standardise,
    draw_drifting_shapes,
    draw_speed,
    fourier_shift,
    texture,
)
from search_space.errors import ConfigError

__all__ = ["DIRECTIONS", "PATTERNS", "MotionEventsDataset"]

DIRECTIONS = 4
# pattern -> (pan velocity before the change, after it), in units of the clip's speed
PATTERNS: dict[str, tuple[float, float]] = {
    "steady": (1.0, 1.0),
    "reverse": (1.0, -1.0),
    "stop": (1.0, 0.0),
    "start": (0.0, 1.0),
}
_CHANGE_RANGE = (0.25, 0.75)  # change time as a fraction of the clip


class MotionEventsDataset(GeneratedClips):
    """Clips of a textured scene whose pan direction and pan pattern over time are the label.

    Items are ``(clip, label)``: ``clip`` a float32 tensor ``(3, clip_len, resolution,
    resolution)``, each frame and channel standardised, and ``label = direction + 4 * pattern``
    (direction ``k`` pans at ``90 * k`` degrees counter-clockwise from +x).

    Args:
        num_classes: 4, 8, 12 or 16: four directions times the first ``num_classes // 4``
            patterns of :data:`PATTERNS`.
        num_clips: Number of clips in this split.
        clip_len: Frames per clip (at least 4, so a change can fall inside the clip).
        resolution: Frame height and width in pixels (at least 8).
        noise: Standard deviation of the per-pixel Gaussian noise (relative to the scene).
        seed: Seeds every random draw together with ``split`` and the chunk index.
        split: ``"train"``, ``"val"`` or ``"test"``.
        speed: Pan speed in pixels per frame; ``None`` means ``resolution / 16``.
        transition: Frames over which the pan's velocity ramps from its value before the
            change to its value after it (0: at once). A slow ramp leaves little for a detector
            of 2-3 frames to see, so telling the patterns apart needs temporal integration over
            many frames: accuracy then depends on an architecture's temporal receptive field,
            not only on how fast it learns (issue 23).
    """

    MIN_CLIP_LEN = 4  # a change of pattern must fall inside the clip

    def __init__(self, *, transition: float = 0.0, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if (
            isinstance(transition, bool)
            or not isinstance(transition, int | float)
            or not math.isfinite(transition)
            or not 0 <= transition <= self.clip_len
        ):
            raise ConfigError(
                f"transition must be a number of frames in [0, clip_len={self.clip_len}]; "
                f"got {transition!r}"
            )
        self.transition = float(transition)

    def _check_classes(self, num_classes: int) -> None:
        allowed = tuple(DIRECTIONS * p for p in range(1, len(PATTERNS) + 1))
        if isinstance(num_classes, bool) or num_classes not in allowed:
            raise ConfigError(
                f"num_classes must be one of {', '.join(map(str, allowed))} for the motion "
                f"events task (4 directions x 1-4 patterns); got {num_classes!r}"
            )

    @property
    def class_names(self) -> tuple[str, ...]:
        """``<pattern>_<degrees>deg`` per class, in label order."""
        patterns = tuple(PATTERNS)[: self.num_classes // DIRECTIONS]
        return tuple(f"{p}_{90 * d:03d}deg" for p in patterns for d in range(DIRECTIONS))

    # ------------------------------------------------------------------ generation
    def _generate_chunk(self, chunk: int, level: float | None = None) -> np.ndarray:
        """Clips ``chunk * CHUNK ...`` (all CHUNK of them) as ``(CHUNK, 3, T, H, W)`` float32."""
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), chunk, 0xE7])
        n, t, size = CHUNK, self.clip_len, self.resolution
        labels = self._labels_of_chunk(chunk)
        direction, pattern = labels % DIRECTIONS, labels // DIRECTIONS
        # Per-clip nuisances, all independent of the label.
        # NOTE: MotionDataset's scene draws, in its order, with ``change`` between the speed and
        # the shapes: the order of the draws from one generator *is* the dataset.
        background = texture(rng, (n, 3), size, exponent=1.5)
        speed = draw_speed(rng, self.speed, n)
        change = (t - 1) * rng.uniform(*_CHANGE_RANGE, size=n)
        shapes = draw_drifting_shapes(rng, n, size, self.speed)
        noise = rng.standard_normal(size=(n, 3, t, size, size), dtype=np.float32)

        pan = pan_displacements(direction, pattern, speed, change, t, self.transition)
        clips = fourier_shift(background, pan)  # (n, 3, T, H, W)
        shapes.overlay(clips)
        add_noise_and_standardise(clips, noise, self.noise if level is None else level)
        return clips


# ---------------------------------------------------------------------- pure helpers
def pan_displacements(
    direction: np.ndarray,
    pattern: np.ndarray,
    speed: np.ndarray,
    change: np.ndarray,
    clip_len: int,
    transition: float = 0.0,
) -> np.ndarray:
    """``(n, T, 2)`` (dy, dx) pan offsets of each clip, frame 0 at the origin.

    Between frames ``s`` and ``s + 1`` the pan moves ``speed`` pixels times the pattern's
    velocity, ``before`` until time ``change`` and ``after`` from then on (a step that straddles
    the change moves by the time-weighted mix), in the direction ``90 * direction`` degrees.
    With ``transition = L > 0`` the velocity ramps linearly from ``before`` to ``after`` over
    ``[change - L/2, change + L/2]``, and each step moves by its time average.
    """
    velocity = np.array(list(PATTERNS.values()))[pattern]  # (n, 2): before, after
    steps = np.arange(clip_len - 1)[None, :]  # (1, T-1)
    if transition > 0:
        before = 1.0 - (_ramp_integral(steps + 1 - change[:, None], transition)
                        - _ramp_integral(steps - change[:, None], transition))  # fmt: skip
    else:
        before = np.clip(change[:, None] - steps, 0.0, 1.0)  # share of each step before it
    per_step = velocity[:, :1] * before + velocity[:, 1:] * (1.0 - before)  # (n, T-1)
    travelled = np.concatenate([np.zeros((len(speed), 1)), np.cumsum(per_step, axis=1)], axis=1)
    travelled *= speed[:, None]
    angle = np.pi / 2 * direction
    # Image rows grow downwards, so "up" (90 degrees) is negative dy.
    return np.stack((-np.sin(angle)[:, None] * travelled, np.cos(angle)[:, None] * travelled), -1)


def _ramp_integral(tau: np.ndarray, length: float) -> np.ndarray:
    """The integral up to ``tau`` (time from the change) of the ramp that rises from 0 to 1
    over ``[-length/2, length/2]``."""
    inside = np.clip(tau + length / 2, 0.0, length)
    return inside**2 / (2 * length) + np.maximum(tau - length / 2, 0.0)
