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
        background = _texture(rng, (n, 3), size, exponent=1.5)
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
        pan = _displacements(2 * np.pi * labels / self.num_classes, speed, frames)
        clips = _fourier_shift(background, pan)  # (n, 3, T, H, W)
        # Distractor shapes drift their own random ways: (n, T, K, 2) positions.
        drift = _displacements(shape_angle, shape_speed, frames)  # (n, K, T, 2)
        positions = centers[:, None] + drift.transpose(0, 2, 1, 3)
        masks = _shape_masks(positions, radii, is_square, size)  # (n, T, K, H, W)
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


def _frequencies(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cycles per pixel along y (full FFT axis) and x (rfft axis), broadcastable."""
    fy = np.fft.fftfreq(size).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(size).astype(np.float32)[None, :]
    return fy, fx


def _texture(
    rng: np.random.Generator, lead: tuple[int, ...], size: int, *, exponent: float
) -> np.ndarray:
    """Periodic coloured noise with power ~ 1/f**exponent, zero mean and unit variance each.

    The Nyquist row and column are zeroed: a sub-pixel phase shift of a Nyquist component is not
    real, so keeping them would make shifted frames statistically different from unshifted ones.
    """
    white = rng.normal(size=(*lead, size, size))
    fy, fx = _frequencies(size)
    radius = np.sqrt(fy**2 + fx**2)
    amplitude = np.zeros_like(radius)
    nonzero = radius > 0
    amplitude[nonzero] = radius[nonzero] ** (-exponent / 2)
    if size % 2 == 0:
        amplitude[size // 2, :] = 0
        amplitude[:, -1] = 0
    field = np.fft.irfft2(np.fft.rfft2(white) * amplitude, s=(size, size))
    field -= field.mean(axis=(-2, -1), keepdims=True)
    field /= field.std(axis=(-2, -1), keepdims=True) + 1e-12
    return field.astype(np.float32)


def _displacements(angle: np.ndarray, speed: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``(..., T, 2)`` (dy, dx) offsets of a drift at ``angle`` (counter-clockwise from +x).

    Image rows grow downwards, so "up" (90 degrees) is negative dy.
    """
    steps = (speed * np.ones_like(angle))[..., None] * frames
    return np.stack((-np.sin(angle)[..., None] * steps, np.cos(angle)[..., None] * steps), -1)


def _fourier_shift(images: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Shift periodic ``(n, C, H, W)`` images by ``(n, T, 2)`` (dy, dx) -> ``(n, C, T, H, W)``."""
    size = images.shape[-1]
    fy, fx = _frequencies(size)
    spectrum = np.fft.rfft2(images)[:, :, None]  # (n, C, 1, H, W//2+1)
    dy = shift[..., 0][:, None, :, None, None].astype(np.float32)
    dx = shift[..., 1][:, None, :, None, None].astype(np.float32)
    angle = np.float32(-2 * np.pi) * (fy * dy + fx * dx)  # (n, 1, T, H, W//2+1)
    phase = np.cos(angle) + 1j * np.sin(angle)
    return np.fft.irfft2(spectrum * phase.astype(np.complex64), s=(size, size)).astype(
        np.float32, copy=False
    )


def _shape_masks(
    centers: np.ndarray, radii: np.ndarray, is_square: np.ndarray, size: int
) -> np.ndarray:
    """Soft discs/squares on a torus.

    Args:
        centers: ``(n, T, K, 2)`` (y, x) positions per frame and shape.
        radii: ``(n, K)`` radius (disc) or half side (square) in pixels.
        is_square: ``(n, K)`` booleans.
        size: Frame size.

    Returns:
        ``(n, T, K, H, W)`` coverage of each shape in [0, 1], anti-aliased over one pixel.
    """
    grid = np.arange(size, dtype=np.float32) + np.float32(0.5)
    half = np.float32(size / 2)
    centers = centers.astype(np.float32)
    # Wrapped offsets: (n, T, K, H, 1) and (n, T, K, 1, W).
    dy = np.abs((grid[:, None] - centers[..., 0, None, None] + half) % size - half)
    dx = np.abs((grid[None, :] - centers[..., 1, None, None] + half) % size - half)
    square = np.maximum(dy, dx)
    disc = np.sqrt(dy**2 + dx**2)
    distance = np.where(is_square[:, None, :, None, None], square, disc)
    distance -= (radii[:, None, :, None, None] + 0.5).astype(np.float32)
    np.negative(distance, out=distance)
    return np.clip(distance, 0.0, 1.0, out=distance)
