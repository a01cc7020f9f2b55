"""Frames to a normalised clip tensor: mmaction2's resize, crop, flip and normalisation.

The pipeline is mmaction2's ``Resize(scale=(-1, short_side))`` -> ``RandomCrop(size)`` (training)
or ``CenterCrop(size)`` (test) -> ``Flip(flip_ratio=0.5)`` (training) -> the data
preprocessor's ``(x - mean) / std`` -> ``FormatShape('NCTHW')``. One crop and one flip decision
apply to every frame of every clip of a sample, as in mmaction2; a flipped sample's label goes
through ``Flip``'s ``flip_label_map`` (:meth:`ClipPipeline.load_item`).

The test pipeline can instead take three crops, as mmaction2's ``Resize(scale=(-1, size))`` ->
``ThreeCrop(size)``: the short side is resized to the crop size and three squares are cut along
the long side (left, right, middle; or top, bottom, middle), giving three views per clip whose
scores the evaluation averages.

Differences from mmaction2, all deliberate:

* resizing is bilinear without antialiasing, as ``cv2.INTER_LINEAR`` (mmcv's default), but in
  float: mmcv rounds the resized frame to uint8 first, so pixels may differ by up to 0.5;
* a random crop may start at every valid offset ``0..H-size``; mmaction2's ``RandomCrop`` uses
  ``np.random.randint(0, H - size)`` and so never picks the last one.

Randomness comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from runners.data.sampling import OutOfBound, sample_frame_indices
from search_space.errors import ConfigError

if TYPE_CHECKING:
    from runners.data.video_reader import VideoReader

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ClipPipeline",
    "TEST_CROPS",
    "center_crop_offsets",
    "crop",
    "hflip",
    "normalize",
    "random_crop_offsets",
    "rescale_short_side",
    "resize",
    "three_crop_offsets",
    "to_clips",
    "transform_frames_flip",
]

# mmaction2's data preprocessor values (ImageNet statistics on the 0-255 scale, RGB).
IMAGENET_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)
TEST_CROPS: tuple[str, ...] = ("center", "three")


def rescale_short_side(height: int, width: int, short_side: int) -> tuple[int, int]:
    """``(new_height, new_width)`` with the short side at ``short_side``, aspect ratio kept.

    The rule of mmcv's ``rescale_size`` used by mmaction2's ``Resize(scale=(-1, short_side))``:
    scale factor ``short_side / min(h, w)``, each side rounded half up.
    """
    factor = short_side / min(height, width)
    return int(height * factor + 0.5), int(width * factor + 0.5)


def random_crop_offsets(
    height: int, width: int, size: int, rng: np.random.Generator
) -> tuple[int, int]:
    """Uniform ``(top, left)`` of a ``size`` x ``size`` crop inside ``height`` x ``width``."""
    _check_crop(height, width, size)
    return int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))


def center_crop_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """``(top, left)`` of mmaction2's ``CenterCrop``: ``(H - size) // 2``, ``(W - size) // 2``."""
    _check_crop(height, width, size)
    return (height - size) // 2, (width - size) // 2


def three_crop_offsets(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """``(top, left)`` of mmaction2's ``ThreeCrop``: start, end and middle of the long side.

    One side must equal ``size`` (the test pipeline resizes the short side to it first).
    """
    _check_crop(height, width, size)
    if height == size:
        step = (width - size) // 2
        return [(0, 0), (0, 2 * step), (0, step)]
    if width == size:
        step = (height - size) // 2
        return [(0, 0), (2 * step, 0), (step, 0)]
    raise ValueError(
        f"three crops need a side equal to the crop size {size}; got {height}x{width}"
    )


def _check_crop(height: int, width: int, size: int) -> None:
    if size > height or size > width:
        raise ValueError(f"crop size {size} exceeds the frame size {height}x{width}")


def resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of ``(N, C, H, W)`` to ``(N, C, height, width)`` (cv2 INTER_LINEAR)."""
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)


def crop(x: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """The ``size`` x ``size`` window of ``(..., H, W)`` starting at ``(top, left)``."""
    return x[..., top : top + size, left : left + size]


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror ``(..., W)`` left to right."""
    return x.flip(-1)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel of ``(N, C, H, W)``, values on mmaction2's 0-255 scale."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def to_clips(x: torch.Tensor, num_clips: int) -> torch.Tensor:
    """``(num_clips * T, C, H, W)`` frames, clip-major -> ``(num_clips, C, T, H, W)``."""
    n, c, h, w = x.shape
    if n % num_clips:
        raise ValueError(f"{n} frames do not split into {num_clips} clips")
    return x.view(num_clips, n // num_clips, c, h, w).permute(0, 2, 1, 3, 4).contiguous()


def transform_frames_flip(
    frames: np.ndarray,
    *,
    num_clips: int,
    short_side: int,
    crop_size: int,
    test_mode: bool,
    flip: bool,
    mean: Sequence[float],
    std: Sequence[float],
    rng: np.random.Generator | None = None,
    test_crop: str = "center",
) -> tuple[torch.Tensor, bool]:
    """Decoded frames of one sample -> normalised clips, and whether they were flipped.

    Args:
        frames: uint8 ``(num_clips * T, H, W, 3)``, clip-major, as ``VideoReader.read`` returns
            for ``sample_frame_indices(...).ravel()``.
        num_clips: Clips in ``frames``.
        short_side: Target of the short-side resize, before cropping.
        crop_size: Side of the square crop.
        test_mode: Center crop and no flip; otherwise a random crop and (with ``flip``) a random
            horizontal flip.
        flip: Flip with probability 0.5 in training.
        mean: Per-channel mean, 0-255 scale.
        std: Per-channel standard deviation, 0-255 scale.
        rng: Source of the crop and flip; required unless ``test_mode``.
        test_crop: ``"center"``, or ``"three"``: resize the short side to ``crop_size`` and take
            three crops (test mode only; ``short_side`` is then unused).

    Returns:
        float32 ``(num_clips, 3, T, crop_size, crop_size)``; with three crops
        ``(3 * num_clips, ...)``, crop-major as mmaction2 orders them. Then True when the sample
        was mirrored (its label may need ``flip_label_map``).
    """
    if test_crop not in TEST_CROPS:
        raise ValueError(f"test_crop must be one of 'center', 'three'; got {test_crop!r}")
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise ValueError(f"frames must be uint8 (N, H, W, C); got {frames.dtype} {frames.shape}")
    # NOTE: the frames stay uint8 until the one copy that makes the float clip, unless a resize
    # needs floats first: cropping and flipping commute exactly with the conversion, and
    # converting only the crop is most of the speed of this function.
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (N*T, C, H, W)
    three = test_mode and test_crop == "three"
    new_h, new_w = rescale_short_side(x.shape[-2], x.shape[-1], crop_size if three else short_side)
    if x.shape[-2:] != (new_h, new_w):
        x = resize(x.float(), new_h, new_w)  # -> (N*T, C, H', W'), min(H', W') == short_side
    if three:
        offsets = three_crop_offsets(new_h, new_w, crop_size)
        views = torch.cat([crop(x, top, left, crop_size) for top, left in offsets])
        return _normalized_clips(views, 3 * num_clips, mean, std), False  # (3N, C, T, S, S)
    flipped = False
    if test_mode:
        top, left = center_crop_offsets(new_h, new_w, crop_size)
        x = crop(x, top, left, crop_size)  # -> (N*T, C, S, S)
    else:
        if rng is None:
            raise ValueError("rng is required for training transforms (test_mode=False)")
        top, left = random_crop_offsets(new_h, new_w, crop_size, rng)
        x = crop(x, top, left, crop_size)  # -> (N*T, C, S, S)
        # NOTE: drawn after the crop, so turning flip off keeps the same crops for a seed.
        flipped = flip and bool(rng.random() < 0.5)
        if flipped:
            x = hflip(x)
    return _normalized_clips(x, num_clips, mean, std), flipped  # -> (N, C, T, S, S)


def _normalized_clips(
    x: torch.Tensor, num_clips: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """``(num_clips * T, C, H, W)`` (uint8 or float, any strides) -> normalised float32
    ``(num_clips, C, T, H, W)`` in one copy; the same numbers as :func:`normalize` followed by
    :func:`to_clips`."""
    n, c, h, w = x.shape
    if n % num_clips:
        raise ValueError(f"{n} frames do not split into {num_clips} clips")
    clips = x.reshape(num_clips, n // num_clips, c, h, w).permute(0, 2, 1, 3, 4)
    out = torch.empty(clips.shape, dtype=torch.float32)
    out.copy_(clips)
    out.sub_(torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1, 1))
    return out.div_(torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1, 1))


@dataclass(frozen=True, kw_only=True, slots=True)
class ClipPipeline:
    """How one item is cut from a video: mmaction2's SampleFrames + Resize + crop + Flip.

    Attributes:
        test_mode: Deterministic test sampling and center (or three) crops; otherwise random
            offsets, random crop and (with ``flip``) random flip.
        clip_len: Frames per clip.
        frame_interval: Step between sampled frames.
        num_clips: Clips per item; more than one view gives ``(views, C, T, H, W)``.
        crop_size: Side of the square crop.
        short_side: Short side after resizing, before cropping.
        flip: Random horizontal flip in training.
        flip_label_map: ``(label, mirrored label)`` pairs; a flipped sample's label is mapped
            through them (mmaction2's ``Flip(flip_label_map=...)``). Only :meth:`load_item`
            sees labels.
        mean: Normalisation mean, 0-255 scale.
        std: Normalisation std, 0-255 scale.
        temporal_jitter: SampleFrames' per-frame jitter of ``0..frame_interval-1``.
        twice_sample: SampleFrames' doubled test clips.
        keep_tail_frames: SampleFrames' fractional training segments.
        target_fps: Resample each video's frame rate to this (None: use the frames as they are).
        out_of_bound: SampleFrames' ``out_of_bound_opt``: ``"loop"`` or ``"repeat_last"``.
        test_crop: ``"center"`` or ``"three"`` (test mode).
    """

    # NOTE: DataConfig's field names, kept as a second list: DataConfig is the user's flat
    # [data] table, this is one split's resolved pipeline (crop_size, per-split clips and jitter),
    # also built directly by tests and benchmarks; nesting one in the other changes [data]'s keys.
    test_mode: bool
    clip_len: int
    frame_interval: int = 1
    num_clips: int = 1
    crop_size: int
    short_side: int
    flip: bool = True
    flip_label_map: tuple[tuple[int, int], ...] = ()
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    temporal_jitter: bool = False
    twice_sample: bool = False
    keep_tail_frames: bool = False
    target_fps: float | None = None
    out_of_bound: OutOfBound = "loop"
    test_crop: str = "center"

    def __post_init__(self) -> None:
        for name in ("clip_len", "frame_interval", "num_clips", "crop_size", "short_side"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1; got {value!r}")
        if self.short_side < self.crop_size:
            raise ConfigError(
                f"short_side must be >= crop_size ({self.crop_size}); got {self.short_side}"
            )
        if self.test_crop not in TEST_CROPS:
            raise ConfigError(
                f"test_crop must be one of 'center', 'three'; got {self.test_crop!r}"
            )

    @property
    def views(self) -> int:
        """Clips one item holds: clips (doubled by ``twice_sample``) times crops, in test mode."""
        if not self.test_mode:
            return self.num_clips
        clips = 2 * self.num_clips if self.twice_sample else self.num_clips
        return clips * (3 if self.test_crop == "three" else 1)

    def load(self, reader: VideoReader, rng: np.random.Generator) -> torch.Tensor:
        """Sample, decode and transform one item: ``(C, T, H, W)`` or ``(views, C, T, H, W)``."""
        return self._load(reader, rng)[0]

    def load_item(
        self, reader: VideoReader, rng: np.random.Generator, label: int
    ) -> tuple[torch.Tensor, int]:
        """:meth:`load`, with ``label`` mapped through ``flip_label_map`` when the clip was
        flipped (the same random draws as :meth:`load`)."""
        clip, flipped = self._load(reader, rng)
        if flipped and self.flip_label_map:
            label = dict(self.flip_label_map).get(label, label)
        return clip, label

    # NOTE: two keyword calls that hand this pipeline's fields to the pure sampling and transform
    # functions (each takes its own subset); alike in shape only.
    def _load(self, reader: VideoReader, rng: np.random.Generator) -> tuple[torch.Tensor, bool]:
        inds = sample_frame_indices(
            reader.num_frames,
            clip_len=self.clip_len,
            frame_interval=self.frame_interval,
            num_clips=self.num_clips,
            test_mode=self.test_mode,
            rng=rng,
            out_of_bound=self.out_of_bound,
            temporal_jitter=self.temporal_jitter,
            twice_sample=self.twice_sample,
            keep_tail_frames=self.keep_tail_frames,
            target_fps=self.target_fps,
            fps=reader.fps,
        )  # (clips, clip_len)
        frames = reader.read(inds.ravel())  # (clips * clip_len, H, W, 3) uint8
        clips, flipped = transform_frames_flip(
            frames,
            num_clips=len(inds),
            short_side=self.short_side,
            crop_size=self.crop_size,
            test_mode=self.test_mode,
            flip=self.flip,
            mean=self.mean,
            std=self.std,
            rng=rng,
            test_crop=self.test_crop,
        )  # (views, C, T, S, S)
        return (clips[0] if len(clips) == 1 else clips), flipped
