"""How fast training clips come off real video files: ours against mmaction2's PyAV pipeline.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_video_loading.py                  # 8 videos, 32x2 clips
    .venv/bin/python benchmarks/bench_video_loading.py --frames 300 --size 340x256 --repeats 40

It encodes ``--videos`` H.264 files (GOP 32 with B-frames, like downloaded clips) into a
temporary folder, then measures clips per second of one process for:

* ``ours``: :class:`runners.data.transforms.ClipPipeline` in training mode (random
  offsets, keyframe seeking, resize, random crop, flip, normalise), one clip per call;
* ``ours (no seek)``: the same, decoding every video from its first frame (the reference path a
  file with broken timestamps falls back to);
* ``mmaction2``: its ``PyAVInit -> SampleFrames -> PyAVDecode -> Resize -> RandomCrop -> Flip ->
  FormatShape`` on the same files, followed by the normalisation its data preprocessor does
  (needs ``pip install --no-deps mmaction2``);

and then the DataLoader throughput with 0 and ``--workers`` worker processes. Calls are
interleaved (ours, theirs, ours, ...) so drift hits both; ratios are of the medians, measured in
the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from runners.data.datasets import DataConfig, build_datasets, build_loader
from runners.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipPipeline
from runners.data.video_reader import VideoReader

# NOTE: appended after the project imports: tests/ holds folders named like our packages.
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))


def encode(path: Path, frames: int, width: int, height: int, seed: int) -> None:
    """An H.264 video of moving noise blobs (so the encoder does real work), 25 fps."""
    import av

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height * 2, width * 2, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": "32", "bf": "2", "preset": "veryfast"}
        for i in range(frames):
            y, x = (i * 3) % height, (i * 5) % width
            image = np.ascontiguousarray(base[y : y + height, x : x + width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _time(run: Callable[[int], object], i: int) -> float:
    start = time.perf_counter()
    run(i)
    return time.perf_counter() - start


def _ours(pipeline: ClipPipeline, paths: list[Path], *, seek: bool) -> Callable[[int], object]:
    def run(i: int) -> object:
        with VideoReader(str(paths[i % len(paths)]), threads=1, seek=seek) as reader:
            return pipeline.load(reader, np.random.default_rng(i))

    return run


def _theirs(args: argparse.Namespace, paths: list[Path]) -> Callable[[int], object] | None:
    try:
        from mmaction_oracle import run_pipeline
    except ImportError:
        return None
    import importlib.util

    if importlib.util.find_spec("mmaction") is None:
        return None
    steps = [
        {"type": "PyAVInit"},
        {"type": "SampleFrames", "clip_len": args.clip_len, "frame_interval": args.interval},
        {"type": "PyAVDecode"},
        {"type": "Resize", "scale": (-1, args.short_side)},
        {"type": "RandomCrop", "size": args.crop},
        {"type": "Flip", "flip_ratio": 0.5},
        {"type": "FormatShape", "input_format": "NCTHW"},
    ]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)

    def run(i: int) -> object:
        results = {"filename": str(paths[i % len(paths)]), "start_index": 0, "modality": "RGB"}
        clip = torch.from_numpy(run_pipeline(steps, results)["imgs"]).float()
        return (clip - mean) / std  # what ActionDataPreprocessor does on the batch

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--size", default="340x256", help="WxH of the encoded videos")
    parser.add_argument("--clip-len", type=int, default=32)
    parser.add_argument("--interval", type=int, default=2)
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=24, help="timed clips per method")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers to compare")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="r3dnas-bench-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        paths = [root / f"v{i}.mp4" for i in range(args.videos)]
        for i, path in enumerate(paths):
            encode(path, args.frames, width, height, seed=i)
        print(
            f"encoded {args.videos} videos of {args.frames} frames {args.size} "
            f"in {time.perf_counter() - started:.1f} s; clips {args.clip_len}x{args.interval}, "
            f"crop {args.crop} from short side {args.short_side}, 1 thread"
        )
        pipeline = ClipPipeline(
            test_mode=False, clip_len=args.clip_len, frame_interval=args.interval,
            crop_size=args.crop, short_side=args.short_side,
        )  # fmt: skip
        methods: dict[str, Callable[[int], object]] = {
            "ours": _ours(pipeline, paths, seek=True),
            "ours (no seek)": _ours(pipeline, paths, seek=False),
        }
        theirs = _theirs(args, paths)
        if theirs is not None:
            methods["mmaction2"] = theirs
        for run in methods.values():
            run(0)  # warm-up: imports, codec init
        times: dict[str, list[float]] = {name: [] for name in methods}
        for i in range(args.repeats):
            order = list(methods.items())
            for name, run in order if i % 2 == 0 else reversed(order):
                times[name].append(_time(run, i))
        base = statistics.median(times["ours"])
        print(f"{'method':<16} {'median ms':>10} {'clips/s':>8} {'vs ours':>8}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:<16} {median * 1e3:>10.1f} {1 / median:>8.2f} {median / base:>7.2f}x")

        (root / "list.txt").write_text("".join(f"{p.name} {i % 2}\n" for i, p in enumerate(paths)))
        cfg = DataConfig(
            kind="video_list", root=str(root), train_list=str(root / "list.txt"),
            val_list=str(root / "list.txt"), num_classes=2, clip_len=args.clip_len,
            frame_interval=args.interval, resolution=args.crop, short_side=args.short_side,
        )  # fmt: skip
        train, _ = build_datasets(cfg)
        for workers in (0, args.workers):
            loader = build_loader(train, batch_size=2, shuffle=True, seed=0, num_workers=workers)
            started = time.perf_counter()
            clips = 0
            for _ in range(max(1, args.repeats // len(paths))):
                for batch, _labels in loader:
                    clips += len(batch)
            elapsed = time.perf_counter() - started
            print(f"DataLoader, {workers} workers: {clips / elapsed:.2f} clips/s ({clips} clips)")


if __name__ == "__main__":
    main()
