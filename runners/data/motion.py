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

Guarantees (tested in ``tests/runners/data/test_motion.py``):

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

import numpy as np

from runners.data.generated import CHUNK, SPLITS, GeneratedClips
from runners.data.scene import (
    add_noise_and_standardise,
    displacements,
    draw_drifting_shapes,
    draw_speed,
    fourier_shift,
    texture,
)

__all__ = ["CHUNK", "SPLITS", "MotionDataset"]


class MotionDataset(GeneratedClips):
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

    @property
    def class_names(self) -> tuple[str, ...]:
        """One name per class: the pan direction in degrees, counter-clockwise from +x."""
        return tuple(
            f"pan_{round(360 * k / self.num_classes):03d}deg" for k in range(self.num_classes)
        )

    # ------------------------------------------------------------------ generation
    def _generate_chunk(self, chunk: int, level: float | None = None) -> np.ndarray:
        """Clips ``chunk * CHUNK ...`` (all CHUNK of them) as ``(CHUNK, 3, T, H, W)`` float32."""
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), chunk])
        n, t, size = CHUNK, self.clip_len, self.resolution
        labels = self._labels_of_chunk(chunk)
        # Per-clip nuisances, all independent of the label.
        background = texture(rng, (n, 3), size, exponent=1.5)
        speed = draw_speed(rng, self.speed, n)
        shapes = draw_drifting_shapes(rng, n, size, self.speed)
        noise = rng.standard_normal(size=(n, 3, t, size, size), dtype=np.float32)

        frames = np.arange(t)
        # The scene pans in the class direction: (n, T, 2) displacements (dy, dx), y down.
        pan = displacements(2 * np.pi * labels / self.num_classes, speed, frames)
        clips = fourier_shift(background, pan)  # (n, 3, T, H, W)
        # Distractor shapes drift their own random ways.
        shapes.overlay(clips)
        add_noise_and_standardise(clips, noise, self.noise if level is None else level)
        return clips
