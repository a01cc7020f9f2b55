"""Procedural scene pieces shared by the built-in video tasks (pure numpy, vectorised).

A periodic coloured-noise texture is a stationary random field on a torus, so a shift by any
vector (a Fourier phase shift) leaves its distribution unchanged: that is what lets the
built-in tasks put their labels in *how things move* and never in a single frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DriftingShapes",
    "add_noise_and_standardise",
    "displacements",
    "draw_drifting_shapes",
    "draw_speed",
    "fourier_shift",
    "frequencies",
    "overlay_drifting_shapes",
    "shape_masks",
    "texture",
]


def frequencies(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cycles per pixel along y (full FFT axis) and x (rfft axis), broadcastable."""
    fy = np.fft.fftfreq(size).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(size).astype(np.float32)[None, :]
    return fy, fx


def texture(
    rng: np.random.Generator, lead: tuple[int, ...], size: int, *, exponent: float
) -> np.ndarray:
    """Periodic coloured noise with power ~ 1/f**exponent, zero mean and unit variance each.

    The Nyquist row and column are zeroed: a sub-pixel phase shift of a Nyquist component is not
    real, so keeping them would make shifted frames statistically different from unshifted ones.
    """
    white = rng.normal(size=(*lead, size, size))
    fy, fx = frequencies(size)
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


def displacements(angle: np.ndarray, speed: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``(..., T, 2)`` (dy, dx) offsets of a drift at ``angle`` (counter-clockwise from +x).

    Image rows grow downwards, so "up" (90 degrees) is negative dy.
    """
    steps = (speed * np.ones_like(angle))[..., None] * frames
    return np.stack((-np.sin(angle)[..., None] * steps, np.cos(angle)[..., None] * steps), -1)


def fourier_shift(images: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Shift periodic ``(n, C, H, W)`` images by ``(n, T, 2)`` (dy, dx) -> ``(n, C, T, H, W)``."""
    size = images.shape[-1]
    fy, fx = frequencies(size)
    spectrum = np.fft.rfft2(images)[:, :, None]  # (n, C, 1, H, W//2+1)
    dy = shift[..., 0][:, None, :, None, None].astype(np.float32)
    dx = shift[..., 1][:, None, :, None, None].astype(np.float32)
    angle = np.float32(-2 * np.pi) * (fy * dy + fx * dx)  # (n, 1, T, H, W//2+1)
    phase = np.cos(angle) + 1j * np.sin(angle)
    return np.fft.irfft2(spectrum * phase.astype(np.complex64), s=(size, size)).astype(
        np.float32, copy=False
    )


def shape_masks(
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


def overlay_drifting_shapes(
    clips: np.ndarray,
    *,
    centers: np.ndarray,
    radii: np.ndarray,
    is_square: np.ndarray,
    colours: np.ndarray,
    angle: np.ndarray,
    speed: np.ndarray,
) -> np.ndarray:
    """Paint flat-coloured discs/squares drifting in straight lines over ``clips`` (in place).

    Args:
        clips: ``(n, C, T, H, W)`` frames.
        centers: ``(n, K, 2)`` (y, x) positions at frame 0.
        radii, is_square: ``(n, K)`` sizes and kinds (see :func:`shape_masks`).
        colours: ``(n, C, K)`` one flat colour per shape.
        angle, speed: ``(n, K)`` drift direction (counter-clockwise from +x) and pixels/frame.
    """
    frames = np.arange(clips.shape[2])
    drift = displacements(angle, speed, frames)  # (n, K, T, 2)
    positions = centers[:, None] + drift.transpose(0, 2, 1, 3)
    masks = shape_masks(positions, radii, is_square, clips.shape[-1])  # (n, T, K, H, W)
    for k in range(masks.shape[2]):
        mask = masks[:, None, :, k]  # (n, 1, T, H, W)
        # clips = mask * colour + (1 - mask) * clips, in place
        clips -= colours[:, :, k, None, None, None]
        clips *= 1 - mask
        clips += colours[:, :, k, None, None, None]
    return clips


SPEED_JITTER = 0.2  # a speed is drawn uniformly within +-20% of the nominal one
NUM_SHAPES = 3
RADIUS_RANGE = (0.12, 0.2)  # shape half-size as a fraction of the resolution


def draw_speed(rng: np.random.Generator, speed: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Speeds (pixels/frame) jittered uniformly by :data:`SPEED_JITTER` around ``speed``."""
    return speed * rng.uniform(1 - SPEED_JITTER, 1 + SPEED_JITTER, size=size)


@dataclass(frozen=True, slots=True)
class DriftingShapes:
    """The distractor shapes of ``n`` clips, as :func:`overlay_drifting_shapes` takes them."""

    centers: np.ndarray  # (n, K, 2) (y, x)
    radii: np.ndarray  # (n, K)
    is_square: np.ndarray  # (n, K)
    colours: np.ndarray  # (n, 3, K)
    angle: np.ndarray  # (n, K)
    speed: np.ndarray  # (n, K)

    def overlay(self, clips: np.ndarray) -> np.ndarray:
        """Paint them over ``clips`` ``(n, 3, T, H, W)``, in place."""
        return overlay_drifting_shapes(clips, centers=self.centers, radii=self.radii,
                                       is_square=self.is_square, colours=self.colours,
                                       angle=self.angle, speed=self.speed)  # fmt: skip


def draw_drifting_shapes(
    rng: np.random.Generator, n: int, size: int, speed: float
) -> DriftingShapes:
    """:data:`NUM_SHAPES` random shapes per clip, each drifting its own way near ``speed``.

    The draws' order is part of every dataset that calls this (one generator feeds a whole
    chunk): change it and the datasets change.
    """
    shape = (n, NUM_SHAPES)
    return DriftingShapes(
        centers=rng.uniform(0, size, size=(*shape, 2)),
        radii=size * rng.uniform(*RADIUS_RANGE, size=shape),
        is_square=rng.random(size=shape) < 0.5,
        colours=rng.normal(0.0, 1.0, size=(n, 3, NUM_SHAPES)).astype(np.float32),
        angle=rng.uniform(0, 2 * np.pi, size=shape),
        speed=draw_speed(rng, speed, shape),
    )


def add_noise_and_standardise(clips: np.ndarray, noise: np.ndarray, level: float) -> np.ndarray:
    """``clips + level * noise``, then each frame and channel to zero mean and unit variance.

    The standardisation is a function of one frame only, so it keeps every frame's
    distribution independent of the label (in place; ``noise`` is scaled in place too).
    """
    noise *= level
    clips += noise
    clips -= clips.mean(axis=(3, 4), keepdims=True)
    clips /= clips.std(axis=(3, 4), keepdims=True) + 1e-6
    return clips
