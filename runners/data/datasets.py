"""What a run trains on: :class:`DataConfig`, the datasets it names, and seeded loaders.

:func:`build_datasets` turns a config into a ``(train, val)`` pair and :func:`build_loader` into
reproducible DataLoaders. Every item is ``(clip, label)``: ``clip`` a float32 tensor
``(C, T, H, W)``, normalised, ``label`` an int. A validation set with several views per video
(``num_clips > 1``, ``twice_sample`` or ``test_crop = "three"``) returns ``(views, C, T, H, W)``
(mmaction2's multi-view testing: average the scores over the views), batched to
``(N, views, C, T, H, W)``.

Kinds of data:

* ``motion``: the built-in procedural dataset (:mod:`runners.data.motion`), generated from
  ``seed``;
* ``motion_events``: the built-in graded task (:mod:`runners.data.motion_events`): pan direction x
  what the pan does over time, for ranking architectures by degrees;
* ``video_list``: mmaction2's annotation lists, one ``relative/path/video.mp4 LABEL`` per line,
  paths relative to ``root`` (or to the list file's folder when ``root`` is None);
* ``class_folders``: ``root/train/CLASS/*.mp4`` and ``root/val/CLASS/*.mp4``; classes sorted
  by name give labels ``0..num_classes-1``.

Real videos are read by the datasets of :mod:`runners.data.video`: data mistakes (missing list file
or video, bad label, empty list or folder) are one-line :class:`ConfigError`\\ s raised here,
before training starts; a corrupt video at load time is skipped, warned about and counted in
``dataset.skipped`` (see :class:`runners.data.video.VideoClipDataset`).

Randomness: the loader's sampler draws every item's seed together with the order from the
loader's seeded generator, so batches are identical for a seed whatever the number of workers,
and differ between epochs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from runners.data.fresh import FreshClips, FreshEpochSampler
from runners.data.sampling import OUT_OF_BOUND_CHOICES, OutOfBound
from runners.data.transforms import IMAGENET_MEAN, IMAGENET_STD, TEST_CROPS, ClipPipeline
from runners.data.video import ClassFolderDataset, VideoClipDataset, VideoListDataset
from search_space.errors import ConfigError
from search_space.strict import StrictConfig, check_int

__all__ = [
    "DataConfig",
    "DataKind",
    "SeededSampler",
    "build_datasets",
    "build_loader",
]


class DataKind(StrEnum):
    MOTION = "motion"  # built-in procedural dataset (runners.data.motion), no files
    MOTION_EVENTS = "motion_events"  # built-in graded task (runners.data.motion_events), no files

    @property
    def is_generated(self) -> bool:
        """A built-in procedural task: clips come from ``seed``, not from files."""
        return self in (DataKind.MOTION, DataKind.MOTION_EVENTS)

    VIDEO_LIST = "video_list"  # mmaction2 annotation lists + data root
    CLASS_FOLDERS = "class_folders"  # root/{train,val}/CLASS/*.mp4


def _check_triple(name: str, value: Any, *, positive: bool) -> tuple[float, float, float]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ok = ok and all(math.isfinite(v) and (v > 0 or not positive) for v in value)
    if not ok:
        rule = "positive finite numbers" if positive else "finite numbers"
        raise ConfigError(f"{name} must be 3 {rule} (R, G, B on 0-255); got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _label(name: str, value: Any, num_classes: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)  # TOML and JSON table keys are strings
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_classes:
        raise ConfigError(
            f"flip_label_map {name} must be labels in [0, {num_classes}); got {value!r}"
        )
    return value


def _check_flip_label_map(value: Any, num_classes: int) -> tuple[tuple[int, int], ...]:
    """``{label: mirrored}`` or ``((label, mirrored), ...)`` -> sorted pairs, checked.

    A mirror image mirrored again is the original, so the map must be its own inverse: a pair
    listed one way only is refused (mmaction2 would accept it and leave one direction wrong).
    """
    example = "e.g. { 0 = 1, 1 = 0 } to swap labels 0 and 1"
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = list(value)
        if not all(
            isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2 for p in items
        ):
            raise ConfigError(
                f"flip_label_map must map labels to labels ({example}); got {value!r}"
            )
    else:
        raise ConfigError(f"flip_label_map must map labels to labels ({example}); got {value!r}")
    pairs: dict[int, int] = {}
    for key, mirrored in items:
        k = _label("keys", key, num_classes)
        if k in pairs:
            raise ConfigError(f"flip_label_map lists label {k} twice; got {value!r}")
        pairs[k] = _label("values", mirrored, num_classes)
    for k, v in pairs.items():
        if pairs.get(v, v) != k:
            raise ConfigError(
                f"flip_label_map must swap labels both ways (a mirrored clip mirrored again is "
                f"the original): {k} -> {v} but {v} -> {pairs.get(v, v)}; add {v} = {k}"
            )
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True, kw_only=True, slots=True)
class DataConfig(StrictConfig):
    """Which data a run trains and validates on, and how clips are cut from it.

    Attributes:
        kind: ``"motion"`` or ``"motion_events"`` (built-in, generated from ``seed``),
            ``"video_list"`` or
            ``"class_folders"``.
        root: Video root. ``video_list``: list paths are relative to it (None: to the list
            file's folder). ``class_folders``: holds ``train/`` and ``val/``.
        train_list: ``video_list`` only: the training annotation list.
        val_list: ``video_list`` only: the validation annotation list.
        num_classes: Classes; labels must lie in ``[0, num_classes)``.
        clip_len: Frames per clip.
        frame_interval: Step between sampled frames (real videos; the motion dataset must be 1).
        num_clips: Clips per validation video (mmaction2 multi-view testing); training always
            samples one. Must be 1 for ``motion``.
        resolution: Side of the square crop fed to the network (and of motion frames).
        short_side: Short side after resizing, before cropping; None: ``resolution * 256/224``
            rounded, mmaction2's 256-then-224 ratio (see :attr:`effective_short_side`).
        num_workers: DataLoader worker processes of training (0 loads in the training
            process), and of the exported mmaction2 loaders.
        mean: Per-channel normalisation mean, RGB, 0-255 scale (real videos).
        std: Per-channel normalisation std, RGB, 0-255 scale (real videos).
        flip: Random horizontal flip in training (real videos only: the motion classes are
            directions of motion, which a flip would swap).
        flip_label_map: Labels a flip swaps, as pairs ``(label, mirrored label)`` (each pair
            listed both ways; mmaction2's ``Flip(flip_label_map=...)``): for classes such as
            "swipe left" / "swipe right", whose mirror image is the other class. Given as a
            mapping ``{0: 1, 1: 0}`` (TOML ``{ 0 = 1, 1 = 0 }``); stored sorted.
        num_train_clips: Built-in kinds only: generated training clips.
        num_val_clips: Built-in kinds only: generated validation clips.
        noise: Built-in kinds only: noise level of the generated frames.
        fresh_clips: Built-in kinds only: new training clips every epoch (epoch ``e`` trains on
            items ``e * num_train_clips`` onwards; validation stays fixed), so that nothing is
            memorised (:mod:`runners.data.fresh`).
        noise_start: ``fresh_clips`` only: a noise curriculum: the first training epoch's clips
            have this noise, moving linearly to ``noise`` over ``noise_ramp_epochs`` epochs
            (validation always at ``noise``); None: every epoch at ``noise``.
        noise_ramp_epochs: Epochs of the curriculum (>= 1 with ``noise_start``).
        transition: ``motion_events`` only: frames over which the pan's velocity ramps from
            before the change to after it (0: at once); a slow ramp makes the task need
            temporal integration over many frames.
        seed: Seed of the generated data (motion) and of every random sampling choice.
        temporal_jitter: Real videos, training: SampleFrames' random per-frame shift of
            ``0..frame_interval-1``.
        keep_tail_frames: Real videos, training: SampleFrames' fractional segments, so clips can
            start in the video's last frames.
        twice_sample: Real videos, validation: twice the test clips (SampleFrames).
        target_fps: Real videos: resample each video's frame rate to this many frames per
            second before sampling (SampleFrames); None uses frames as they are.
        out_of_bound: Real videos: frames past a short video's end ``"loop"`` back to the start
            or ``"repeat_last"`` (SampleFrames' ``out_of_bound_opt``).
        test_crop: Real videos, validation: ``"center"`` crop, or ``"three"`` crops along the
            long side after resizing the short side to ``resolution`` (mmaction2's ThreeCrop);
            the scores of the views are averaged.
    """

    config_name = "DataConfig"

    kind: DataKind = DataKind.MOTION
    root: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    num_classes: int = 4
    clip_len: int = 8
    frame_interval: int = 1
    num_clips: int = 1
    resolution: int = 32
    short_side: int | None = None
    num_workers: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    flip: bool = True
    flip_label_map: tuple[tuple[int, int], ...] = ()
    num_train_clips: int = 512
    num_val_clips: int = 256
    noise: float = 0.1
    fresh_clips: bool = False
    noise_start: float | None = None
    noise_ramp_epochs: int = 0
    transition: float = 0.0
    seed: int = 0
    temporal_jitter: bool = False
    keep_tail_frames: bool = False
    twice_sample: bool = False
    target_fps: float | None = None
    out_of_bound: OutOfBound = "loop"
    test_crop: str = "center"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field (normalises kind/mean/std)."""
        try:
            object.__setattr__(self, "kind", DataKind(self.kind))
        except ValueError:
            allowed = ", ".join(repr(k.value) for k in DataKind)
            raise ConfigError(f"kind must be one of {allowed}; got {self.kind!r}") from None
        for name in ("root", "train_list", "val_list"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} must be a non-empty path string or None; got {value!r}")
        self.check_ints(num_classes=2, clip_len=1, frame_interval=1, num_clips=1, resolution=1,
                        short_side=1)  # fmt: skip
        if self.short_side is not None and self.short_side < self.resolution:
            raise ConfigError(
                f"short_side must be >= resolution ({self.resolution}) to crop from; "
                f"got {self.short_side}"
            )
        self.check_ints(num_workers=0)
        object.__setattr__(self, "mean", _check_triple("mean", self.mean, positive=False))
        object.__setattr__(self, "std", _check_triple("std", self.std, positive=True))
        if not isinstance(self.flip, bool):
            raise ConfigError(f"flip must be true or false; got {self.flip!r}")
        label_map = _check_flip_label_map(self.flip_label_map, self.num_classes)
        object.__setattr__(self, "flip_label_map", label_map)
        if label_map and not self.flip:
            raise ConfigError(
                f"flip_label_map is only used with flip = true; got {dict(label_map)} "
                "with flip = false"
            )
        self.check_ints(num_train_clips=1, num_val_clips=1)
        if (
            isinstance(self.noise, bool)
            or not isinstance(self.noise, int | float)
            or not math.isfinite(self.noise)
            or self.noise < 0
        ):
            raise ConfigError(f"noise must be a finite number >= 0; got {self.noise!r}")
        if (
            isinstance(self.transition, bool)
            or not isinstance(self.transition, int | float)
            or not math.isfinite(self.transition)
            or not 0 <= self.transition <= self.clip_len
        ):
            raise ConfigError(
                f"transition must be a number of frames in [0, clip_len={self.clip_len}]; "
                f"got {self.transition!r}"
            )
        check_int("seed", self.seed, minimum=0)
        self._validate_sampling()
        self._validate_kind()

    def _validate_sampling(self) -> None:
        for name in ("temporal_jitter", "keep_tail_frames", "twice_sample", "fresh_clips"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false; got {getattr(self, name)!r}")
        fps = self.target_fps
        if fps is not None and (
            isinstance(fps, bool)
            or not isinstance(fps, int | float)
            or not math.isfinite(fps)
            or fps <= 0
        ):
            raise ConfigError(f"target_fps must be a number > 0 or None; got {fps!r}")
        for name, allowed in (("out_of_bound", OUT_OF_BOUND_CHOICES), ("test_crop", TEST_CROPS)):
            if getattr(self, name) not in allowed:
                choices = ", ".join(map(repr, allowed))
                raise ConfigError(f"{name} must be one of {choices}; got {getattr(self, name)!r}")
        if self.temporal_jitter and fps is not None:
            raise ConfigError(
                "temporal_jitter cannot be combined with target_fps (mmaction2's SampleFrames "
                "fails on it); got temporal_jitter=true and target_fps="
                f"{fps!r}"
            )
        if self.twice_sample and self.num_clips == 1 and self.clip_len > 1:
            raise ConfigError(
                "twice_sample needs num_clips >= 2 for clips of more than one frame "
                "(mmaction2 divides by zero there); got num_clips=1"
            )

    def _validate_curriculum(self) -> None:
        start, ramp = self.noise_start, self.noise_ramp_epochs
        if not self.fresh_clips:
            raise ConfigError(
                "noise_start and noise_ramp_epochs need fresh_clips = true (a curriculum over "
                f"epochs of new clips); got noise_start={start!r}, fresh_clips=false"
            )
        if (
            isinstance(start, bool)
            or not isinstance(start, int | float)
            or not math.isfinite(start)
            or start < 0
        ):
            raise ConfigError(f"noise_start must be a finite number >= 0; got {start!r}")
        check_int("noise_ramp_epochs", ramp, minimum=1)

    def _validate_kind(self) -> None:
        # NOTE: options that a kind would ignore are errors, so nothing is dropped silently.
        kind = self.kind.value
        if self.transition and self.kind != DataKind.MOTION_EVENTS:
            raise ConfigError(
                f"transition is only used with kind 'motion_events'; got "
                f"transition={self.transition!r} for kind {kind!r}"
            )
        if self.noise_start is not None or self.noise_ramp_epochs:
            self._validate_curriculum()
        if self.fresh_clips and not self.kind.is_generated:
            raise ConfigError(
                f"fresh_clips is only used with kinds 'motion' and 'motion_events'; got "
                f"fresh_clips=true for kind {kind!r}"
            )
        if self.kind == DataKind.VIDEO_LIST:
            for name in ("train_list", "val_list"):
                if getattr(self, name) is None:
                    raise ConfigError(f"{name} is required for kind 'video_list'; got None")
            return
        for name in ("train_list", "val_list"):
            if getattr(self, name) is not None:
                raise ConfigError(
                    f"{name} is only used with kind 'video_list'; got {getattr(self, name)!r} "
                    f"for kind {kind!r}"
                )
        if self.kind == DataKind.CLASS_FOLDERS:
            if self.root is None:
                raise ConfigError(
                    "root is required for kind 'class_folders' (it holds train/ and val/); "
                    "got None"
                )
            return
        # Generated kinds: clips have no files, frame rate or multi-view test.
        for name, default in (
            ("root", None),
            ("short_side", None),
            ("frame_interval", 1),
            ("num_clips", 1),
            ("temporal_jitter", False),
            ("keep_tail_frames", False),
            ("twice_sample", False),
            ("target_fps", None),
            ("out_of_bound", "loop"),
            ("test_crop", "center"),
            ("flip_label_map", ()),
        ):
            if getattr(self, name) != default:
                raise ConfigError(
                    f"{name} must be {default!r} for kind {kind!r} (it applies to real videos); "
                    f"got {getattr(self, name)!r}"
                )

    @property
    def effective_short_side(self) -> int:
        """``short_side``, or ``round(resolution * 256 / 224)`` when it is None (224 -> 256)."""
        if self.short_side is not None:
            return self.short_side
        return max(round(self.resolution * 256 / 224), self.resolution)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; ``from_dict(to_dict())`` is equal to the original."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["kind"] = self.kind.value
        out["mean"] = list(self.mean)
        out["std"] = list(self.std)
        # NOTE: string keys, as TOML and JSON tables have them; from_dict reads them back.
        out["flip_label_map"] = {str(k): v for k, v in self.flip_label_map}
        return out


def _clip_pipeline(cfg: DataConfig, *, test_mode: bool) -> ClipPipeline:
    """The training (one clip) or validation (``cfg.num_clips`` clips) pipeline of ``cfg``."""
    return ClipPipeline(
        test_mode=test_mode,
        clip_len=cfg.clip_len,
        frame_interval=cfg.frame_interval,
        num_clips=cfg.num_clips if test_mode else 1,
        crop_size=cfg.resolution,
        short_side=cfg.effective_short_side,
        flip=cfg.flip,
        flip_label_map=cfg.flip_label_map,
        mean=cfg.mean,
        std=cfg.std,
        # NOTE: jitter and tail frames shape training only, so validation stays deterministic.
        temporal_jitter=cfg.temporal_jitter and not test_mode,
        keep_tail_frames=cfg.keep_tail_frames,
        twice_sample=cfg.twice_sample,
        target_fps=cfg.target_fps,
        out_of_bound=cfg.out_of_bound,
        test_crop=cfg.test_crop,
    )


def build_datasets(cfg: DataConfig) -> tuple[Dataset, Dataset]:
    """``(train, val)`` datasets for ``cfg``; every file-level check runs here, before training.

    Training items are one clip ``(C, T, H, W)``; validation items are ``(C, T, H, W)`` or, with
    several views per video, ``(views, C, T, H, W)``.
    """
    if cfg.kind.is_generated:
        from runners.data.motion import MotionDataset
        from runners.data.motion_events import MotionEventsDataset

        generator = MotionDataset if cfg.kind == DataKind.MOTION else MotionEventsDataset

        # NOTE: only a non-default transition is passed, so the motion task never sees it
        extra = {"transition": cfg.transition} if cfg.transition else {}

        def generated(split: str, num_clips: int) -> MotionDataset | MotionEventsDataset:
            return generator(
                num_classes=cfg.num_classes,
                num_clips=num_clips,
                clip_len=cfg.clip_len,
                resolution=cfg.resolution,
                noise=cfg.noise,
                seed=cfg.seed,
                split=split,
                **extra,
            )

        train = generated("train", cfg.num_train_clips)
        if cfg.fresh_clips:
            fresh = FreshClips(train, noise_start=cfg.noise_start,
                               ramp_epochs=cfg.noise_ramp_epochs)  # fmt: skip
            return fresh, generated("val", cfg.num_val_clips)
        return train, generated("val", cfg.num_val_clips)
    train_pipe = _clip_pipeline(cfg, test_mode=False)
    val_pipe = _clip_pipeline(cfg, test_mode=True)
    if cfg.kind == DataKind.VIDEO_LIST:
        assert cfg.train_list is not None and cfg.val_list is not None  # validate() ensures
        for name in ("train_list", "val_list"):
            if not Path(getattr(cfg, name)).is_file():
                raise ConfigError(f"{name}: list file {getattr(cfg, name)} does not exist")
        train_set: VideoClipDataset = VideoListDataset(
            cfg.root,
            cfg.train_list,
            num_classes=cfg.num_classes,
            pipeline=train_pipe,
            seed=cfg.seed,
        )
        val_set: VideoClipDataset = VideoListDataset(
            cfg.root, cfg.val_list, num_classes=cfg.num_classes, pipeline=val_pipe, seed=cfg.seed
        )
        return train_set, val_set
    assert cfg.root is not None  # validate() ensures it for class_folders
    for split in ("train", "val"):
        if not (Path(cfg.root) / split).is_dir():
            raise ConfigError(
                f"root: {Path(cfg.root) / split} is not a directory "
                "(kind 'class_folders' expects root/train/CLASS/*.mp4 and root/val/CLASS/*.mp4)"
            )
    train_folders = ClassFolderDataset(
        Path(cfg.root) / "train", pipeline=train_pipe, num_classes=cfg.num_classes, seed=cfg.seed
    )
    val_folders = ClassFolderDataset(
        Path(cfg.root) / "val", pipeline=val_pipe, classes=train_folders.classes, seed=cfg.seed
    )
    return train_folders, val_folders


class SeededSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, item_seed)``: the order and every item's random choices in one stream.

    Both come from ``generator`` in the main process, so they do not depend on the number of
    DataLoader workers, and a new epoch (a new iteration) draws new ones.
    """

    def __init__(self, size: int, *, shuffle: bool, generator: torch.Generator) -> None:
        self.size = size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=self.generator).tolist()
        else:
            order = list(range(self.size))
        seeds = torch.randint(0, 2**62, (self.size,), generator=self.generator).tolist()
        return iter(list(zip(order, seeds, strict=True)))


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id, base_seed drawn from the loader's
    # generator; seed NumPy's and Python's global generators from it for any code that uses them.
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# NOTE: a keyword-only signature alike in shape to sampling.uniform_clip_offsets; unrelated.
def build_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int,
    drop_last: bool = False,
    pin_memory: bool = False,
    persistent_workers: bool = False,
) -> DataLoader:
    """A DataLoader whose batches depend only on ``seed`` (and the dataset).

    For a :class:`VideoClipDataset` the sampler also hands every item its seed, so augmentations
    are reproducible and independent of ``num_workers`` and ``persistent_workers``; other
    datasets (the motion dataset) get a seeded order and seeded workers.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("num_workers", num_workers, minimum=0)
    # NOTE: the sampler owns a generator apart from the one DataLoader draws worker seeds from,
    # so its stream does not depend on how often workers are (re)started.
    sampler_generator = torch.Generator().manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    sampler: Sampler[Any]
    if isinstance(dataset, VideoClipDataset):
        sampler = SeededSampler(len(dataset), shuffle=shuffle, generator=sampler_generator)
    elif shuffle and isinstance(dataset, FreshClips):
        sampler = FreshEpochSampler(len(dataset), generator=sampler_generator)
    elif shuffle:
        sampler = RandomSampler(dataset, generator=sampler_generator)  # type: ignore[arg-type]
    else:
        sampler = SequentialSampler(dataset)  # type: ignore[arg-type]
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=_seed_worker,
        generator=generator,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
    )
