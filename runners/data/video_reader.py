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
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from search_space._imports import require
from search_space.errors import R3dnasError

__all__ = [
    "SEEK_GAP_FRAMES",
    "VideoDecodeError",
    "VideoInfo",
    "VideoReader",
    "probe_video",
    "read_frames",
]


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
