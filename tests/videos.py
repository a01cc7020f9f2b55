"""Small real videos for tests, encoded with PyAV.

Every frame ``i`` of an encoded video is a uniform gray of intensity ``i * STEP``, so the frame
index survives lossy coding, resizing and cropping and can be read back from decoded pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runners.data.datasets import DataConfig, DataKind

STEP = 6  # gray levels between consecutive frames; 40 frames reach 234
MAX_FRAMES = 256 // STEP


def encode_video(
    path: Path,
    num_frames: int,
    *,
    width: int = 64,
    height: int = 48,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> Path:
    """Write ``num_frames`` frames, frame ``i`` a uniform gray ``i * STEP``, to ``path``."""
    av = pytest.importorskip("av")
    if num_frames > MAX_FRAMES:
        raise ValueError(f"at most {MAX_FRAMES} frames keep distinct gray levels")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        # NOTE: small GOP with B-frames, so seeking and frame reordering are exercised.
        stream.options = options if options is not None else {"g": "8", "bf": "2"}
        # NOTE: high quality so every gray level survives coding (mpeg4's default rate does not).
        stream.bit_rate = 4_000_000
        for i in range(num_frames):
            rgb = np.full((height, width, 3), i * STEP, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_ids(clips: np.ndarray, channel_axis: int, time_axis: int) -> np.ndarray:
    """Frame indices of decoded gray frames, from the mean over every other axis (0-255 scale)."""
    axes = tuple(a for a in range(clips.ndim) if a not in (time_axis,))
    return np.rint(clips.mean(axis=axes) / STEP).astype(np.int64)


def write_list(path: Path, lines: list[str]) -> Path:
    """An mmaction2 list file: one ``relative/path label`` line per video."""
    path.write_text("".join(line + "\n" for line in lines))
    return path


def video_list_data(root: Path, lists: Path, *, train: list[str], val: list[str]) -> DataConfig:
    """A two-class ``video_list`` config over videos in ``root`` (4-frame 32-pixel clips, two
    test clips a video), its ``train.txt`` and ``val.txt`` written in ``lists``."""
    return DataConfig(
        kind=DataKind.VIDEO_LIST,
        root=str(root),
        train_list=str(write_list(lists / "train.txt", train)),
        val_list=str(write_list(lists / "val.txt", val)),
        num_classes=2,
        clip_len=4,
        resolution=32,
        num_clips=2,
    )
