"""``MotionDataset``: a procedural video task that only a network with temporal modelling solves.

Why it exists: the default proxy task of a study must rank the search space's *temporal* choices
(inflation, temporal kernels, pooling over time). A task a 2D network can solve from one frame
would rank them at random. So the classes here differ only in how things move.

What a clip shows: a coloured-noise scene that pans (translates rigidly, wrapping around the
edges: the frame is a torus) in the class direction ``2 * pi * label / num_classes``, with a few
flat-coloured discs and squares drifting over it in random directions as distractors, plus
per-pixel Gaussian noise. Everything but the pan direction is drawn independently of the label:
textures, the scene's phase, shape kinds, sizes, colours, positions (uniform on the torus) and
velocities, and the pan speed (``speed`` pixels per frame, jittered by +-20%).

Guarantees (tested in ``tests/runners/test_motion.py``):

* Every single frame has the same distribution for every class. The scene is a stationary
  random field and a pan by any vector leaves its distribution unchanged (shifts are Fourier
  phase shifts, which keep the power spectrum exactly; the Nyquist terms are zero so that sub-pixel
  shifts stay real); the shapes do not depend on the label. A network without temporal modelling
  has per-frame evidence only.
* Opposite directions are exact time reversals of each other, so even the unordered set of frames
  cannot tell them apart. (Non-opposite directions differ, as sets, only in the axis along which
  the frames are shifted, visible to a per-frame network only through content entering at the
  borders; the sanity benchmark measures that such a network stays at chance.)
* Item ``i`` depends only on ``(seed, split, i)`` and the other arguments, never on
  ``num_clips``; splits draw from different random streams.

Clips are generated in chunks of :data:`CHUNK` with vectorised numpy and cached on the instance
(``num_clips * 3 * clip_len * resolution**2 * 4`` bytes when all were read).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from runners.scene import displacements, fourier_shift, shape_masks, texture
from search_space.errors import ConfigError

__all__ = ["CHUNK", "SPLITS", "MotionDataset"]

# NOTE: fixed, so that item i never depends on how many clips were asked for.
CHUNK = 16
SPLITS = ("train", "val", "test")
_SPEED_JITTER = 0.2
_NUM_SHAPES = 3
_RADIUS_RANGE = (0.12, 0.2)  # shape half-size as a fraction of the resolution


class MotionDataset(Dataset):
    """Clips of a panning textured scene with distractor shapes; the label is the pan direction.

    Items are ``(clip, label)``: ``clip`` a float32 tensor ``(3, clip_len, resolution,
    resolution)``, each frame and channel standardised to zero mean and unit variance, and
    ``label`` an int in ``[0, num_classes)``. Labels cycle (``i % num_classes``), so every class
    has the same number of clips up to one.

    Args:
        num_classes: Number of pan directions, evenly spaced on the circle (at least 2).
        num_clips: Number of clips in this split.
        clip_len: Frames per clip (at least 2).
        resolution: Frame height and width in pixels (at least 8).
        noise: Standard deviation of the per-pixel Gaussian noise, relative to the unit-variance
            scene (0 for none).
        seed: Seeds every random draw together with ``split`` and the chunk index.
        split: ``"train"``, ``"val"`` or ``"test"``; each has its own random stream.
        speed: Pan (and distractor) speed in pixels per frame; ``None`` means
            ``resolution / 16``. Faster is easier for early temporal convolutions to see, until
            content jumps farther than a kernel reaches.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        num_clips: int,
        clip_len: int,
        resolution: int,
        noise: float,
        seed: int,
        split: str = "train",
        speed: float | None = None,
    ) -> None:
        _check_int("num_classes", num_classes, 2)
        _check_int("num_clips", num_clips, 1)
        _check_int("clip_len", clip_len, 2)
        _check_int("resolution", resolution, 8)
        _check_int("seed", seed, 0)
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not noise >= 0:
            raise ConfigError(f"noise must be a number >= 0; got {noise!r}")
        if not math.isfinite(noise):
            raise ConfigError(f"noise must be finite; got {noise!r}")
        if split not in SPLITS:
            raise ConfigError(
                f"split must be one of {', '.join(map(repr, SPLITS))}; got {split!r}"
            )
        if speed is None:
            speed = resolution / 16
        if (
            isinstance(speed, bool)
            or not isinstance(speed, int | float)
            or not 0 < speed < resolution
        ):
            raise ConfigError(
                f"speed must be a number of pixels per frame in (0, resolution={resolution}); "
                f"got {speed!r}"
            )
        self.num_classes = num_classes
        self.num_clips = num_clips
        self.clip_len = clip_len
        self.resolution = resolution
        self.noise = float(noise)
        self.seed = seed
        self.split = split
        self.speed = float(speed)
        self._chunks: dict[int, torch.Tensor] = {}

    # ------------------------------------------------------------------ Dataset protocol
    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -self.num_clips <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        index %= self.num_clips
        chunk, offset = divmod(index, CHUNK)
        if chunk not in self._chunks:
            self._chunks[chunk] = torch.from_numpy(self._generate_chunk(chunk))
        # NOTE: a copy, so that an in-place transform downstream cannot corrupt the cache.
        return self._chunks[chunk][offset].clone(), self.label(index)

    def label(self, index: int) -> int:
        """The label of item ``index``, without generating the clip."""
        return index % self.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        """One name per class: the pan direction in degrees, counter-clockwise from +x."""
        return tuple(
            f"pan_{round(360 * k / self.num_classes):03d}deg" for k in range(self.num_classes)
        )

    def materialize(self) -> MotionDataset:
        """Generate and cache every clip now (e.g. before timing a training run)."""
        for chunk in range(math.ceil(self.num_clips / CHUNK)):
            if chunk not in self._chunks:
                self._chunks[chunk] = torch.from_numpy(self._generate_chunk(chunk))
        return self

    # ------------------------------------------------------------------ generation
    def _generate_chunk(self, chunk: int) -> np.ndarray:
        """Clips ``chunk * CHUNK ...`` (all CHUNK of them) as ``(CHUNK, 3, T, H, W)`` float32."""
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), chunk])
        n, t, size = CHUNK, self.clip_len, self.resolution
        labels = np.arange(chunk * CHUNK, (chunk + 1) * CHUNK) % self.num_classes
        # Per-clip nuisances, all independent of the label.
        background = texture(rng, (n, 3), size, exponent=1.5)
        speed = self.speed * rng.uniform(1 - _SPEED_JITTER, 1 + _SPEED_JITTER, size=n)
        centers = rng.uniform(0, size, size=(n, _NUM_SHAPES, 2))  # (y, x)
        radii = size * rng.uniform(*_RADIUS_RANGE, size=(n, _NUM_SHAPES))
        is_square = rng.random(size=(n, _NUM_SHAPES)) < 0.5
        colours = rng.normal(0.0, 1.0, size=(n, 3, _NUM_SHAPES)).astype(np.float32)
        shape_angle = rng.uniform(0, 2 * np.pi, size=(n, _NUM_SHAPES))
        shape_speed = self.speed * rng.uniform(
            1 - _SPEED_JITTER, 1 + _SPEED_JITTER, size=(n, _NUM_SHAPES)
        )
        noise = rng.standard_normal(size=(n, 3, t, size, size), dtype=np.float32)

        frames = np.arange(t)
        # The scene pans in the class direction: (n, T, 2) displacements (dy, dx), y down.
        pan = displacements(2 * np.pi * labels / self.num_classes, speed, frames)
        clips = fourier_shift(background, pan)  # (n, 3, T, H, W)
        # Distractor shapes drift their own random ways: (n, T, K, 2) positions.
        drift = displacements(shape_angle, shape_speed, frames)  # (n, K, T, 2)
        positions = centers[:, None] + drift.transpose(0, 2, 1, 3)
        masks = shape_masks(positions, radii, is_square, size)  # (n, T, K, H, W)
        for k in range(_NUM_SHAPES):
            mask = masks[:, None, :, k]  # (n, 1, T, H, W)
            # clips = mask * colour + (1 - mask) * clips, in place
            clips -= colours[:, :, k, None, None, None]
            clips *= 1 - mask
            clips += colours[:, :, k, None, None, None]
        noise *= self.noise
        clips += noise
        # Per-frame, per-channel standardisation: a function of one frame only, so it keeps
        # every frame's distribution independent of the label.
        clips -= clips.mean(axis=(3, 4), keepdims=True)
        clips /= clips.std(axis=(3, 4), keepdims=True) + 1e-6
        return clips


# ---------------------------------------------------------------------- pure helpers
def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}; got {value!r}")
