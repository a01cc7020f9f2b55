"""``GeneratedClips``: what the built-in procedural video tasks share.

Why one base: the guarantees that make a generated task usable as ground truth (item ``i``
depends only on ``(seed, split, i)``, never on how many clips were asked for; splits draw from
different streams; clips are generated vectorised, a chunk at a time, and cached; labels cycle
so classes are balanced; every argument is checked with a one-line error naming it) are the
same for every task, so they live here once. A task says how a chunk of clips looks
(:meth:`GeneratedClips._generate_chunk`) and which class counts it allows.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from search_space.errors import ConfigError

__all__ = ["CHUNK", "SPLITS", "GeneratedClips", "check_int"]

# NOTE: fixed, so that item i never depends on how many clips were asked for.
CHUNK = 16
SPLITS = ("train", "val", "test")


def check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}; got {value!r}")


class GeneratedClips(Dataset):
    """A split of a procedural task: ``(clip, label)`` items, ``label = i % num_classes``.

    ``clip`` is a float32 tensor ``(3, clip_len, resolution, resolution)``. Subclasses set
    :attr:`MIN_CLIP_LEN`, check ``num_classes`` in :meth:`_check_classes` and generate
    :data:`CHUNK` clips at a time in :meth:`_generate_chunk`.

    Args:
        num_classes: Number of classes (what a task allows: see the subclass).
        num_clips: Number of clips in this split.
        clip_len: Frames per clip.
        resolution: Frame height and width in pixels (at least 8).
        noise: Standard deviation of the per-pixel Gaussian noise, relative to the scene.
        seed: Seeds every random draw together with ``split`` and the chunk index.
        split: ``"train"``, ``"val"`` or ``"test"``; each has its own random stream.
        speed: Motion speed in pixels per frame; ``None`` means ``resolution / 16``.
    """

    MIN_CLIP_LEN = 2

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
        self._check_classes(num_classes)
        check_int("num_clips", num_clips, 1)
        check_int("clip_len", clip_len, self.MIN_CLIP_LEN)
        check_int("resolution", resolution, 8)
        check_int("seed", seed, 0)
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

    # ------------------------------------------------------------------ what a task defines
    def _check_classes(self, num_classes: int) -> None:
        check_int("num_classes", num_classes, 2)

    def _generate_chunk(self, chunk: int, level: float | None = None) -> np.ndarray:
        """Clips ``chunk * CHUNK ...`` (all CHUNK of them) as ``(CHUNK, 3, T, H, W)`` float32,
        at noise ``level`` instead of the dataset's own where given (a noise curriculum)."""
        raise NotImplementedError

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

    def materialize(self) -> GeneratedClips:
        """Generate and cache every clip now (e.g. before timing a training run)."""
        for chunk in range(math.ceil(self.num_clips / CHUNK)):
            if chunk not in self._chunks:
                self._chunks[chunk] = torch.from_numpy(self._generate_chunk(chunk))
        return self

    def _labels_of_chunk(self, chunk: int) -> np.ndarray:
        return np.arange(chunk * CHUNK, (chunk + 1) * CHUNK) % self.num_classes
