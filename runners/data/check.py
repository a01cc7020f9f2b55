"""Look at a study's data before spending GPU hours on it (``r3dnas data``).

Why: a study trains one network per trial on the same data, so a corrupt file, a split with a
missing class or clips longer than most videos costs every trial. This probes every video once
(container and packets, no decoding), then decodes one item of each split through the real
pipeline, and reports what it found: counts, labels, frame counts, frame rates, sizes, videos
too short for a clip, and every unreadable file with its reason. It also says when training
mirrors clips (``flip``), which turns a left/right motion into its opposite: a study on
direction-sensitive classes needs ``flip_label_map`` or ``flip = false``.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Callable, Iterable, Sequence, Sized
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from runners.data.datasets import DataConfig, build_datasets
from runners.data.sampling import clip_span

__all__ = ["DataReport", "SplitReport", "inspect_data"]


@dataclass(frozen=True, slots=True)
class SplitReport:
    """What one split holds.

    Attributes:
        name: ``"train"`` or ``"val"``.
        videos: Videos (or generated clips) listed.
        labels: Items per label.
        item_shape: Shape of one decoded item (``(C, T, H, W)`` or ``(views, C, T, H, W)``).
        frames: ``(min, median, max)`` frames per readable video; None for generated data.
        fps: ``(min, median, max)`` frame rate of the videos that record one.
        sizes: ``"WxH"`` -> number of videos.
        too_short: Readable videos with fewer frames than one clip spans (their frames repeat:
            ``out_of_bound``).
        unreadable: ``(path, reason)`` of every video that failed to open.
    """

    name: str
    videos: int
    labels: dict[int, int]
    item_shape: tuple[int, ...] | None
    frames: tuple[int, float, int] | None = None
    fps: tuple[float, float, float] | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    too_short: int = 0
    unreadable: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DataReport:
    """The report of :func:`inspect_data`; ``ok`` is False when any video is unreadable.

    ``notes`` are settings worth a second look that are not errors (the training flip).
    """

    kind: str
    num_classes: int
    clip: str
    splits: tuple[SplitReport, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(split.unreadable for split in self.splits)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def format(self) -> str:
        lines = [f"data: {self.kind}, {self.num_classes} classes, {self.clip}"]
        header = f"{'split':<6} {'videos':>7} {'unreadable':>10}  {'frames min/med/max':<19}"
        lines.append(header + f" {'fps':<12} {'size':<16} {'too short':>9}  item")
        for s in self.splits:
            frames = "-" if s.frames is None else f"{s.frames[0]}/{s.frames[1]:g}/{s.frames[2]}"
            fps = "-" if s.fps is None else _range(s.fps)
            sizes = ", ".join(f"{k}" for k, _ in collections.Counter(s.sizes).most_common(2))
            if len(s.sizes) > 2:
                sizes += f" +{len(s.sizes) - 2}"
            shape = "-" if s.item_shape is None else "x".join(map(str, s.item_shape))
            lines.append(
                f"{s.name:<6} {s.videos:>7} {len(s.unreadable):>10}  {frames:<19} {fps:<12} "
                f"{sizes or '-':<16} {s.too_short:>9}  {shape}"
            )
        for s in self.splits:
            counts = " ".join(f"{label}:{n}" for label, n in sorted(s.labels.items()))
            missing = self.num_classes - len(s.labels)
            note = f" ({missing} of {self.num_classes} classes without a video)" if missing else ""
            lines.append(f"labels {s.name}: {counts}{note}")
        for s in self.splits:
            for path, reason in s.unreadable:
                lines.append(f"unreadable ({s.name}): {path}: {reason}")
        lines += [f"note: {note}" for note in self.notes]
        lines.append(
            (
                "ok: generated in memory, nothing to open"
                if self.kind in ("motion", "motion_events")
                else "ok: every video opens"
            )
            if self.ok
            else f"NOT ok: {sum(len(s.unreadable) for s in self.splits)} unreadable videos "
            "(training skips them with a warning; fix or remove them)"
        )
        return "\n".join(lines)


def _range(values: tuple[float, float, float]) -> str:
    low, mid, high = values
    return f"{mid:g}" if low == high else f"{low:g}-{high:g}"


def _probe(path: str) -> tuple[int, float | None, str] | str:
    """``(frames, fps, "WxH")`` of a video, or the reason it cannot be opened."""
    from runners.data.video_reader import VideoDecodeError, probe_video

    try:
        info = probe_video(path)
    except VideoDecodeError as exc:
        return exc.reason
    except Exception as exc:  # a probe must report every file, whatever breaks
        return f"{type(exc).__name__}: {exc}"
    return info.num_frames, info.fps, f"{info.width}x{info.height}"


def _probe_all(
    paths: Sequence[str], workers: int, advance: Callable[[int], None]
) -> list[tuple[int, float | None, str] | str]:
    def collect(results: Iterable[tuple[int, float | None, str] | str]) -> list[Any]:
        out = []
        for result in results:
            out.append(result)
            advance(1)
        return out

    if workers <= 1:
        return collect(map(_probe, paths))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return collect(pool.map(_probe, paths, chunksize=8))


def _split_report(
    name: str, dataset: Any, cfg: DataConfig, workers: int, advance: Callable[[int], None]
) -> SplitReport:
    item_shape = None
    if cfg.kind.is_generated:
        labels = dict(collections.Counter(dataset.label(i) for i in range(len(dataset))))
        item_shape = tuple(dataset[0][0].shape)
        advance(len(dataset))
        return SplitReport(name=name, videos=len(dataset), labels=labels, item_shape=item_shape)
    labels = dict(collections.Counter(int(label) for label in dataset.labels))
    paths = [path for path, _ in dataset.videos]
    probes = _probe_all(paths, workers, advance)
    readable = [p for p in probes if not isinstance(p, str)]
    unreadable = tuple(
        (path, p) for path, p in zip(paths, probes, strict=True) if isinstance(p, str)
    )
    span = clip_span(cfg.clip_len, cfg.frame_interval, test_mode=name != "train")
    frames = sorted(n for n, _, _ in readable)
    rates = sorted(f for _, f, _ in readable if f)
    first_good = next((i for i, p in enumerate(probes) if not isinstance(p, str)), None)
    if first_good is not None:
        item_shape = tuple(dataset[first_good][0].shape)  # one real decode through the pipeline
    return SplitReport(
        name=name,
        videos=len(paths),
        labels=labels,
        item_shape=item_shape,
        frames=(frames[0], statistics.median(frames), frames[-1]) if frames else None,
        fps=(rates[0], statistics.median(rates), rates[-1]) if rates else None,
        sizes=dict(collections.Counter(size for _, _, size in readable)),
        too_short=sum(n < span for n in frames),
        unreadable=unreadable,
    )


def inspect_data(cfg: DataConfig, *, workers: int = 1, progress: bool = False) -> DataReport:
    """Probe every video of ``cfg``'s splits and decode one item of each.

    Raises:
        ConfigError: What :func:`runners.data.datasets.build_datasets` raises before any
            training: a missing list, file or folder, a bad label.
    """
    train, val = build_datasets(cfg)
    bar = None
    if progress:
        from tqdm import tqdm

        total = sum(len(cast(Sized, split)) for split in (train, val))
        bar = tqdm(total=total, desc="probing videos", unit="video")

    def advance(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        splits = (
            _split_report("train", train, cfg, workers, advance),
            _split_report("val", val, cfg, workers, advance),
        )
    finally:
        if bar is not None:
            bar.close()
    views = "" if cfg.kind.is_generated else f" from short side {cfg.effective_short_side}"
    clip = (
        f"clips of {cfg.clip_len} frames every {cfg.frame_interval}, crop {cfg.resolution}{views}"
    )
    return DataReport(
        kind=cfg.kind.value,
        num_classes=cfg.num_classes,
        clip=clip,
        splits=splits,
        notes=_flip_notes(cfg),
    )


def _flip_notes(cfg: DataConfig) -> tuple[str, ...]:
    """What the training flip does to the labels (real videos; motion clips are never flipped)."""
    if cfg.kind.is_generated or not cfg.flip:
        return ()
    if cfg.flip_label_map:
        swaps = ", ".join(f"{a}<->{b}" for a, b in cfg.flip_label_map if a < b)
        return (
            "flip = true mirrors half the training clips; flip_label_map swaps the labels of "
            f"mirrored clips: {swaps}",
        )
    return (
        "flip = true mirrors half the training clips, which turns left/right motion into its "
        "opposite: for direction-sensitive classes set flip_label_map (e.g. { 3 = 4, 4 = 3 }) "
        "or flip = false",
    )
