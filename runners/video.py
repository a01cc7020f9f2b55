"""Decode chosen frames of a video file with PyAV, exactly and without decoding the whole file.

Frame ``i`` is the ``i``-th frame in presentation order, the meaning mmaction2's decoders give it.
On opening, :class:`VideoReader` demuxes the video stream once without decoding (cheap: packets
are only read) and sorts the packet timestamps. That gives

* the exact frame count, also for containers whose header has none (Matroska, WebM) or a wrong
  one, and
* a map from timestamp to frame index and the list of keyframes.

:meth:`VideoReader.read` then seeks to the last keyframe at or before each run of wanted frames
and decodes forward, identifying every decoded frame by its timestamp, so B-frame reordering,
timestamp offsets and imprecise seeks cannot shift the result by a frame. When the timestamps
cannot be trusted (missing or duplicated) or a seek lands after the wanted frame, it falls back to
decoding from the start and counting frames, which is always right and only slower.

Any failure to open, demux or decode raises :class:`VideoDecodeError` naming the file.

The datasets (:class:`VideoListDataset` for mmaction2 annotation lists, :class:`ClassFolderDataset`
for ``root/CLASS/*.mp4``) check every file and label at construction, raising a one-line
:class:`ConfigError` naming the file and line, so data mistakes stop a run before training.

Skip policy: a video that fails to decode at load time (corrupt, truncated) is skipped with a
:class:`CorruptVideoWarning` naming the file, recorded in ``dataset.skipped`` (shared by all
DataLoader workers through a small append-only file), and the next video in index order is
returned instead, so one bad file never ends a run; only ``max_retries`` failures in a row raise
:class:`VideoDecodeError`. The replacement is deterministic, so a seed still fixes every batch. In
a validation set the replacement is counted as that item: report ``skipped`` with the accuracy.

Randomness: an item's frame offsets, crop and flip come from a generator seeded by
``(seed, item_seed, index)``; ``runners.data.build_loader`` supplies ``item_seed``. A flipped
item's label goes through the pipeline's ``flip_label_map``.
"""

from __future__ import annotations

import bisect
import itertools
import os
import tempfile
import warnings
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from runners.transforms import ClipPipeline
from search_space._imports import require
from search_space.errors import ConfigError, R3dnasError

__all__ = [
    "VIDEO_EXTENSIONS",
    "ClassFolderDataset",
    "CorruptVideoWarning",
    "VideoClipDataset",
    "VideoDecodeError",
    "VideoInfo",
    "VideoListDataset",
    "VideoReader",
    "probe_video",
    "read_frames",
]

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


# Measured on H.264 (GOP 32, B-frames, 340x256, one thread): seeking at every keyframe made a
# dense 32x2 clip 14% slower and a 32x4 clip 9-13% slower than decoding through gaps of up to
# 2-4 frames; gaps of 8 were no better (benchmarks/bench_video_loading.py measures the whole).
SEEK_GAP_FRAMES = 4


class VideoDecodeError(R3dnasError):
    """A video file cannot be opened or decoded (corrupt, truncated, no video stream, ...)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot decode video {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoInfo:
    """What a dataset needs to know about a video before choosing frames.

    Attributes:
        path: The file.
        num_frames: Frames in presentation order, counted from the demuxed packets.
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: Average frame rate from the container, or None when it has none.
        codec: FFmpeg decoder name, e.g. ``"h264"``.
    """

    path: str
    num_frames: int
    width: int
    height: int
    fps: float | None
    codec: str


class VideoReader:
    """One open video file; use as a context manager.

    Args:
        path: Video file.
        threads: FFmpeg decoder threads; 0 lets FFmpeg choose. DataLoader workers already run in
            parallel, so 1 avoids oversubscribing the cores there.
        seek: Seek to keyframes; False always decodes from the first frame (the slow reference).

    Attributes:
        fallbacks: Reads that had to fall back from seeking to decoding from the start; stays 0
            on well-formed files.

    Raises:
        VideoDecodeError: The file cannot be opened, has no video stream or no frames.
    """

    def __init__(self, path: str, *, threads: int = 0, seek: bool = True) -> None:
        av = require("av")
        self.path = str(path)
        self.seek = seek
        self.fallbacks = 0
        self._av = av
        self._container: Any = None
        try:
            self._container = av.open(self.path)
            if not self._container.streams.video:
                raise VideoDecodeError(self.path, "the file has no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.thread_count = threads
            pts, dts, keyframe = self._index_packets()
        except VideoDecodeError:
            self.close()
            raise
        except (av.FFmpegError, OSError, EOFError) as exc:
            self.close()
            raise VideoDecodeError(self.path, f"{type(exc).__name__}: {exc}") from exc
        if not pts:
            self.close()
            raise VideoDecodeError(self.path, "the video stream has no frames")
        self._pts_to_index: dict[int, int] | None = None
        if all(p is not None for p in pts) and len(set(pts)) == len(pts):
            order = sorted(range(len(pts)), key=lambda i: pts[i])
            self._pts_sorted: list[int] = [pts[i] for i in order]
            self._pts_to_index = {p: i for i, p in enumerate(self._pts_sorted)}
            # Keyframes in presentation order, with their dts. Frame 0 always counts as one,
            # reached by seeking to the start: decoding from the start of the stream is valid
            # even when it does not begin with a keyframe.
            self._key_index = [0] + [k for k, i in enumerate(order) if keyframe[i] and k > 0]
            self._key_dts = [None] + [dts[order[k]] for k in self._key_index[1:]]
            self._start_ts = min(min(pts), min((d for d in dts if d is not None), default=0))
        rate = self._stream.average_rate
        codec_context = self._stream.codec_context
        self.info = VideoInfo(
            path=self.path,
            num_frames=len(pts),
            width=int(codec_context.width),
            height=int(codec_context.height),
            fps=float(rate) if rate else None,
            codec=str(codec_context.name),
        )

    @property
    def num_frames(self) -> int:
        return self.info.num_frames

    @property
    def fps(self) -> float | None:
        """Average frame rate from the container (None when it has none)."""
        return self.info.fps

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def read(self, indices: Iterable[int]) -> np.ndarray:
        """Decode the frames at ``indices`` (any order, repeats allowed).

        Returns:
            uint8 array ``(len(indices), height, width, 3)``, RGB, in the order of ``indices``.

        Raises:
            IndexError: An index is outside ``[0, num_frames)``.
            VideoDecodeError: The file fails to decode, or yields fewer frames than it has packets.
        """
        wanted_list = [int(i) for i in indices]
        if self._container is None:
            raise ValueError(f"VideoReader for {self.path} is closed")
        bad = [i for i in wanted_list if not 0 <= i < self.num_frames]
        if bad:
            raise IndexError(f"frame index {bad[0]} outside [0, {self.num_frames}) in {self.path}")
        if not wanted_list:
            return np.empty((0, self.info.height, self.info.width, 3), dtype=np.uint8)
        wanted = sorted(set(wanted_list))
        av = self._av
        try:
            frames = None
            if self.seek and self._pts_to_index is not None:
                frames = self._read_seeking(wanted)
                self.fallbacks += frames is None
            if frames is None:
                frames = self._read_sequential(wanted)
        except (av.FFmpegError, OSError, EOFError) as exc:
            raise VideoDecodeError(self.path, f"{type(exc).__name__}: {exc}") from exc
        missing = [i for i in wanted if i not in frames]
        if missing:
            raise VideoDecodeError(
                self.path,
                f"frame {missing[0]} of {self.num_frames} could not be decoded "
                f"({len(missing)} of {len(wanted)} requested frames missing)",
            )
        return np.stack([frames[i] for i in wanted_list])

    # -- internals ---------------------------------------------------------------------------

    def _index_packets(self) -> tuple[list[Any], list[Any], list[bool]]:
        """Demux (no decoding) the video stream: per packet its pts, dts and keyframe flag."""
        pts: list[Any] = []
        dts: list[Any] = []
        keyframe: list[bool] = []
        for packet in self._container.demux(self._stream):
            # The final packet of a demux is an empty flush packet; discarded packets (edit
            # lists) decode to no frame.
            if packet.size == 0 or packet.is_discard:
                continue
            pts.append(packet.pts)
            dts.append(packet.dts)
            keyframe.append(bool(packet.is_keyframe))
        return pts, dts, keyframe

    def _packets_from(self, key: int) -> Iterator[Any]:
        """Demux iterator positioned at keyframe ``key`` (a frame index), or at the start.

        Containers seek by different timestamps (mp4 and Matroska by pts, AVI by dts), so both
        are tried and the first packet checked; when neither lands exactly, decoding starts from
        the beginning, which is slower but still exact.
        """
        pos = bisect.bisect_left(self._key_index, key)
        if pos > 0:
            key_pts = self._pts_sorted[key]
            for ts in dict.fromkeys((key_pts, self._key_dts[pos])):
                if ts is None:
                    continue
                self._container.seek(ts, stream=self._stream, backward=True, any_frame=False)
                packets = self._container.demux(self._stream)
                first = next(packets, None)
                if first is not None and first.pts == key_pts:
                    return itertools.chain([first], packets)
        self._container.seek(self._start_ts, stream=self._stream, backward=True, any_frame=False)
        return self._container.demux(self._stream)

    def _runs(self, wanted: Sequence[int]) -> list[tuple[int, list[int]]]:
        """Group sorted wanted frames into runs decoded from one keyframe each.

        A new run (one more seek) starts when the next wanted frame's keyframe lies more than
        ``SEEK_GAP_FRAMES`` frames after the previous wanted frame: a seek (and the decoder
        flush that goes with it) costs about as much as decoding a few frames, so dense clips
        decode straight through keyframes and sparse ones jump.
        """
        runs: list[tuple[int, list[int]]] = []
        for i in wanted:
            k = self._key_index[bisect.bisect_right(self._key_index, i) - 1]
            if runs and k - runs[-1][1][-1] <= SEEK_GAP_FRAMES:
                runs[-1][1].append(i)
            else:
                runs.append((k, [i]))
        return runs

    def _read_seeking(self, wanted: Sequence[int]) -> dict[int, np.ndarray] | None:
        """Seek-and-decode path; None when the timestamps prove unreliable."""
        assert self._pts_to_index is not None
        frames: dict[int, np.ndarray] = {}
        for key, run in self._runs(wanted):
            packets = self._packets_from(key)
            run_set = set(run)
            done = False
            for packet in packets:
                for frame in packet.decode():
                    idx = self._pts_to_index.get(frame.pts)
                    if idx is None:
                        return None
                    if idx in run_set:
                        frames[idx] = frame.to_ndarray(format="rgb24")
                    if idx >= run[-1]:
                        done = True
                        break
                if done:
                    break
            if any(i not in frames for i in run):
                return None  # the seek landed too late, or the stream ended early
        return frames

    def _read_sequential(self, wanted: Sequence[int]) -> dict[int, np.ndarray]:
        """Decode from the first frame, numbering frames in output order: slow, always right."""
        self._container.seek(0, backward=True, any_frame=False)
        wanted_set = set(wanted)
        last = wanted[-1]
        frames: dict[int, np.ndarray] = {}
        for idx, frame in enumerate(self._container.decode(self._stream)):
            if idx in wanted_set:
                frames[idx] = frame.to_ndarray(format="rgb24")
            if idx >= last:
                break
        return frames


def probe_video(path: str) -> VideoInfo:
    """Frame count, size, rate and codec of a video (demuxes the file, decodes nothing)."""
    with VideoReader(path) as reader:
        return reader.info


def read_frames(path: str, indices: Iterable[int], *, threads: int = 0) -> np.ndarray:
    """Open ``path``, decode the frames at ``indices`` (see :meth:`VideoReader.read`), close."""
    with VideoReader(path, threads=threads) as reader:
        return reader.read(indices)


# -- datasets of video files ---------------------------------------------------------------


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
    ``runners.data.build_loader`` asks for) varies the random choices with ``item_seed``.

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
    if not list_file.is_file():
        raise ConfigError(f"list file {list_file} does not exist")
    videos: list[tuple[str, int]] = []
    missing: list[str] = []
    with open(list_file, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
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
        pipeline: Sampling and transforms.
        seed: Base seed of the random choices.
        decode_threads: FFmpeg threads per decode.
        max_retries: Consecutive undecodable videos tolerated for one item.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None,
        list_file: str | os.PathLike[str],
        *,
        num_classes: int,
        pipeline: ClipPipeline,
        seed: int = 0,
        decode_threads: int = 1,
        max_retries: int = 10,
    ) -> None:
        list_path = Path(list_file)
        base = list_path.parent if root is None else Path(root)
        if root is not None and not base.is_dir():
            raise ConfigError(f"root {base} is not a directory")
        videos = _read_list(list_path, base, num_classes)
        self.root = str(base)
        self.list_file = str(list_path)
        self.num_classes = num_classes
        super().__init__(
            videos,
            pipeline=pipeline,
            seed=seed,
            decode_threads=decode_threads,
            max_retries=max_retries,
        )


class ClassFolderDataset(VideoClipDataset):
    """Videos laid out as ``root/CLASS/*.mp4``; label = position of CLASS among sorted classes.

    Args:
        root: Folder of class folders.
        classes: Class names in label order; None: the sorted subfolders of ``root``. Pass the
            training set's ``classes`` to a validation set, which may then lack some classes.
        num_classes: When given, the number of classes must equal it.
        pipeline: Sampling and transforms.
        extensions: File suffixes counted as videos (case-insensitive).
        seed: Base seed of the random choices.
        decode_threads: FFmpeg threads per decode.
        max_retries: Consecutive undecodable videos tolerated for one item.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        pipeline: ClipPipeline,
        classes: Sequence[str] | None = None,
        num_classes: int | None = None,
        extensions: Sequence[str] = VIDEO_EXTENSIONS,
        seed: int = 0,
        decode_threads: int = 1,
        max_retries: int = 10,
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
        super().__init__(
            videos,
            pipeline=pipeline,
            seed=seed,
            decode_threads=decode_threads,
            max_retries=max_retries,
        )
