"""Datasets of labelled video files: mmaction2 annotation lists and class folders.

The datasets (:class:`VideoListDataset` for mmaction2 annotation lists, :class:`ClassFolderDataset`
for ``root/CLASS/*.mp4``) check every file and label at construction, raising a one-line
:class:`ConfigError` naming the file and line, so data mistakes stop a run before training.

Skip policy: a video that fails to decode at load time (corrupt, truncated) is skipped with a
:class:`CorruptVideoWarning` naming the file, recorded in ``dataset.skipped`` (shared by all
DataLoader workers through a small append-only file), and the next video in index order is
returned instead, so one bad file never ends a run; only ``max_retries`` failures in a row raise
:class:`VideoDecodeError`. The replacement is deterministic, so a seed still fixes every batch. In
a validation set the replacement is counted as that item: report ``skipped`` with the accuracy.

Frames are decoded by :mod:`runners.data.video_reader`.

Randomness: an item's frame offsets, crop and flip come from a generator seeded by
``(seed, item_seed, index)``; ``runners.data.datasets.build_loader`` supplies ``item_seed``. A
flipped item's label goes through the pipeline's ``flip_label_map``.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Required, TypedDict, Unpack

import numpy as np
import torch
from torch.utils.data import Dataset

from runners.data.transforms import ClipPipeline
from runners.data.video_reader import VideoDecodeError, VideoReader
from search_space._files import read_text
from search_space.errors import ConfigError

__all__ = [
    "VIDEO_EXTENSIONS",
    "ClassFolderDataset",
    "CorruptVideoWarning",
    "ReadOptions",
    "VideoClipDataset",
    "VideoListDataset",
]

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


class ReadOptions(TypedDict, total=False):
    """How a video dataset reads its files: the keywords every dataset here hands to
    :class:`VideoClipDataset`, whose signature holds their defaults (one home for them)."""

    pipeline: Required[ClipPipeline]
    seed: int
    decode_threads: int
    max_retries: int


class CorruptVideoWarning(UserWarning):
    """A video failed to decode and was skipped."""


def _remove_if_owner(path: str, owner_pid: int) -> None:
    # Forked DataLoader workers inherit this finalizer; only the creating process deletes.
    if os.getpid() == owner_pid:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class VideoClipDataset(Dataset):
    """Labelled video files read through a :class:`ClipPipeline`, skipping corrupt ones.

    Subclasses only build the ``(path, label)`` list; see the module docstring for the skip
    policy and the seeding. ``dataset[i]`` is deterministic; ``dataset[(i, item_seed)]`` (what
    ``runners.data.datasets.build_loader`` asks for) varies the random choices with ``item_seed``.

    Args:
        videos: ``(path, label)`` pairs, already checked to exist.
        pipeline: Sampling and transforms.
        seed: Base seed of the random choices.
        decode_threads: FFmpeg threads per decode (1: DataLoader workers give the parallelism).
        max_retries: Consecutive undecodable videos tolerated for one item.
    """

    def __init__(
        self,
        videos: Sequence[tuple[str, int]],
        *,
        pipeline: ClipPipeline,
        seed: int = 0,
        decode_threads: int = 1,
        max_retries: int = 10,
    ) -> None:
        self.videos: tuple[tuple[str, int], ...] = tuple(videos)
        self.pipeline = pipeline
        self.seed = seed
        self.decode_threads = decode_threads
        self.max_retries = max_retries
        self._known_bad: set[int] = set()
        fd, self._skip_log = tempfile.mkstemp(prefix="r3dnas-skipped-", suffix=".txt")
        os.close(fd)
        weakref.finalize(self, _remove_if_owner, self._skip_log, os.getpid())

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.videos]

    @property
    def skipped(self) -> tuple[str, ...]:
        """Videos skipped so far by this dataset in any process, first occurrence order."""
        with open(self._skip_log, encoding="utf-8") as f:
            return tuple(dict.fromkeys(line.rstrip("\n") for line in f if line.strip()))

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def _record_skip(self, index: int, error: VideoDecodeError) -> None:
        self._known_bad.add(index)
        warnings.warn(
            f"skipping corrupt video {error.path}: {error.reason}",
            CorruptVideoWarning,
            stacklevel=2,
        )
        # NOTE: one short O_APPEND write per skip is atomic across worker processes.
        with open(self._skip_log, "a", encoding="utf-8") as f:
            f.write(self.videos[index][0].replace("\n", " ") + "\n")

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, item_seed = index if isinstance(index, tuple) else (index, None)
        n = len(self.videos)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} videos")
        index %= n
        entropy = [self.seed, index] if item_seed is None else [self.seed, item_seed, index]
        first_error: VideoDecodeError | None = None
        for attempt in range(min(self.max_retries, n)):
            i = (index + attempt) % n
            if i in self._known_bad:
                continue
            path, label = self.videos[i]
            rng = np.random.default_rng(entropy)
            try:
                with VideoReader(path, threads=self.decode_threads) as reader:
                    return self.pipeline.load_item(reader, rng, label)
            except VideoDecodeError as exc:
                first_error = first_error or exc
                self._record_skip(i, exc)
        raise VideoDecodeError(
            self.videos[index][0],
            f"this and the next {min(self.max_retries, n) - 1} videos all failed to decode "
            f"(first error: {first_error.reason if first_error else 'known corrupt'})",
        )


def _read_list(list_file: Path, root: Path, num_classes: int) -> list[tuple[str, int]]:
    """Parse and check an mmaction2 annotation list; ConfigError names the file and line."""
    if not list_file.exists():
        raise ConfigError(f"list file {list_file} does not exist")
    text = read_text(list_file, failure="cannot read list file {path}: {reason}")
    videos: list[tuple[str, int]] = []
    missing: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"list file {list_file} line {lineno}"
        if len(fields) != 2:
            raise ConfigError(
                f"{where}: expected '<relative/path/video.mp4> <label>' (2 fields); "
                f"got {len(fields)} fields in {line.strip()!r}"
            )
        rel, label_text = fields
        try:
            label = int(label_text)
        except ValueError:
            raise ConfigError(
                f"{where}: label must be an integer in [0, {num_classes}); got {label_text!r}"
            ) from None
        if not 0 <= label < num_classes:
            raise ConfigError(
                f"{where}: label must be in [0, {num_classes}) (num_classes={num_classes}); "
                f"got {label}"
            )
        path = root / rel
        if not path.is_file():
            missing.append(f"{where}: video file {path} does not exist")
        videos.append((str(path), label))
    if missing:
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise ConfigError(missing[0] + more)
    if not videos:
        raise ConfigError(f"list file {list_file} has no entries")
    return videos


class VideoListDataset(VideoClipDataset):
    """Videos from an mmaction2 annotation list (``relative/path/video.mp4 LABEL`` per line).

    Every line is checked at construction (format, label range, file existence), so data
    mistakes stop the run before training, not hours into it.

    Args:
        root: Folder the list's paths are relative to; None: the list file's folder.
        list_file: The annotation list.
        num_classes: Labels must lie in ``[0, num_classes)``.
        options: :class:`ReadOptions` (``pipeline``, required; ``seed``, ``decode_threads``,
            ``max_retries``, as :class:`VideoClipDataset` defines them).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None,
        list_file: str | os.PathLike[str],
        *,
        num_classes: int,
        **options: Unpack[ReadOptions],
    ) -> None:
        list_path = Path(list_file)
        base = list_path.parent if root is None else Path(root)
        if root is not None and not base.is_dir():
            raise ConfigError(f"root {base} is not a directory")
        videos = _read_list(list_path, base, num_classes)
        self.root = str(base)
        self.list_file = str(list_path)
        self.num_classes = num_classes
        super().__init__(videos, **options)


class ClassFolderDataset(VideoClipDataset):
    """Videos laid out as ``root/CLASS/*.mp4``; label = position of CLASS among sorted classes.

    Args:
        root: Folder of class folders.
        classes: Class names in label order; None: the sorted subfolders of ``root``. Pass the
            training set's ``classes`` to a validation set, which may then lack some classes.
        num_classes: When given, the number of classes must equal it.
        extensions: File suffixes counted as videos (case-insensitive).
        options: :class:`ReadOptions` (``pipeline``, required; ``seed``, ``decode_threads``,
            ``max_retries``, as :class:`VideoClipDataset` defines them).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        classes: Sequence[str] | None = None,
        num_classes: int | None = None,
        extensions: Sequence[str] = VIDEO_EXTENSIONS,
        **options: Unpack[ReadOptions],
    ) -> None:
        base = Path(root)
        if not base.is_dir():
            raise ConfigError(f"class folder root {base} is not a directory")
        found = sorted(p.name for p in base.iterdir() if p.is_dir())
        if classes is None:
            classes = found
            if not classes:
                raise ConfigError(f"class folder root {base} has no class subfolders")
        else:
            extra = sorted(set(found) - set(classes))
            if extra:
                raise ConfigError(
                    f"class folder root {base} has folder(s) {', '.join(map(repr, extra))} "
                    f"that are not among the {len(classes)} known classes"
                )
        if num_classes is not None and len(classes) != num_classes:
            raise ConfigError(
                f"num_classes is {num_classes} but {base} has {len(classes)} class folders"
            )
        suffixes = tuple(e.lower() for e in extensions)
        videos: list[tuple[str, int]] = []
        for label, name in enumerate(classes):
            folder = base / name
            if not folder.is_dir():
                continue  # a validation split may lack a class
            files = sorted(
                p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
            )
            if not files:
                raise ConfigError(
                    f"class folder {folder} has no video files ({', '.join(suffixes)})"
                )
            videos.extend((str(p), label) for p in files)
        if not videos:
            raise ConfigError(f"class folder root {base} has no video files")
        self.root = str(base)
        self.classes: tuple[str, ...] = tuple(classes)
        super().__init__(videos, **options)
