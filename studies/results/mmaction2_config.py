"""A trial as an mmaction2 training config: the network, and the study's data and training recipe.

Why a whole config and not only the model: the point of exporting is to train the chosen
network at full scale in mmaction2. With the data pipeline and the schedule exported too, that
run starts from what the study measured instead of from a hand-copied approximation.

What maps to what (r3dnas -> mmaction2):

* ``ResNet3dConfig`` -> ``backbone=dict(type='ResNet3d', ...)`` (the same keyword arguments);
  the head is an ``I3DHead`` with the study's dropout and label smoothing;
* ``DataConfig`` (real videos) -> ``PyAVInit``, ``SampleFrames`` (every sampling option),
  ``PyAVDecode``, ``Resize(scale=(-1, short_side))``, ``RandomCrop`` + ``Flip`` (with its
  ``flip_label_map``) in training, ``CenterCrop`` or ``ThreeCrop`` in validation,
  ``FormatShape('NCTHW')``, ``PackActionInputs``; mean and std go to the
  ``ActionDataPreprocessor``. PyAV is r3dnas's own decoder, so the frames are the same;
  ``DecordInit``/``DecordDecode`` replace it when ``target_fps`` is set, because mmaction2's
  ``PyAVInit`` does not record the frame rate and ``SampleFrames`` would silently not resample.
  Lists become ``VideoDataset`` annotation files; class folders are written out as such lists
  (mmaction2 reads no folder layout). Videos the study skipped as unreadable (recorded on the
  trial, :class:`TrainedWith`) are left out, since mmaction2's epoch would stop at them: those
  lists are written beside the config, with a comment naming the files;
* ``TrainConfig`` -> ``SGD``/``AdamW`` in an ``OptimWrapper``, or an ``AmpOptimWrapper`` when
  the trial trained in mixed precision (the precision ``amp = "auto"`` resolved to, as the trial
  recorded it; a comment says how to switch), gradient clipping, ``LinearLR`` warm-up then
  ``CosineAnnealingLR`` to 0 per iteration, ``EpochBasedTrainLoop``, ``AccMetric``.

Known differences: r3dnas rounds a fractional warm-up to whole steps where mmengine truncates;
on several GPUs mmaction2's steps per epoch (and so the first warm-up factor, computed here for
one process) differ; the built-in motion dataset has no mmaction2 counterpart, so its export
holds the model only. Only videos the study tried to read can be known unreadable: one that was
never drawn (the dropped last batch of a one-epoch study) stays listed; ``r3dnas data`` probes
every file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_space.errors import ConfigError

if TYPE_CHECKING:
    from runners.data.datasets import DataConfig
    from runners.training.accuracy import TrainConfig
    from search_space.config import ResNet3dConfig

__all__ = [
    "DECODERS",
    "TrainedWith",
    "mmaction2_config_text",
    "train_pipeline_steps",
    "val_pipeline_steps",
]

DECODERS = ("auto", "pyav", "decord")

# mmaction2's ImageNet normalisation on 0-255 pixels (configs/_base_/models/i3d_r50.py).
_MEAN = [123.675, 116.28, 103.53]
_STD = [58.395, 57.12, 57.375]


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainedWith:
    """What a trial recorded while it trained, so the export states what was measured.

    Attributes:
        amp: Trained in float16 mixed precision (``amp = "auto"`` resolved); None: not
            recorded (a trial from before r3dnas recorded it).
        device: The device it trained on, e.g. ``"cpu"`` or ``"cuda:0"``; None: not recorded.
        skipped: Per split (``"train"``, ``"val"``), the videos skipped as unreadable, as the
            dataset named them; None: not recorded.
    """

    amp: bool | None = None
    device: str | None = None
    skipped: Mapping[str, tuple[str, ...]] | None = None

    @classmethod
    def from_user_attrs(cls, attrs: Mapping[str, Any]) -> TrainedWith:
        """From a trial's user attributes ``amp``, ``train_device`` and ``skipped_videos``."""
        amp = attrs.get("amp")
        device = attrs.get("train_device")
        skipped = attrs.get("skipped_videos")
        return cls(
            amp=amp if isinstance(amp, bool) else None,
            device=device if isinstance(device, str) else None,
            skipped=(
                {split: tuple(map(str, paths)) for split, paths in skipped.items()}
                if isinstance(skipped, Mapping)
                else None
            ),
        )


def _py(value: Any) -> str:
    """A Python literal mmengine's config parser reads back to the same value."""
    if isinstance(value, dict):
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            return "dict(" + ", ".join(f"{k}={_py(v)}" for k, v in value.items()) + ")"
        return "{" + ", ".join(f"{_py(k)}: {_py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        inner = ", ".join(_py(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _py_list(items: list[dict[str, Any]]) -> str:
    return "[\n" + "".join(f"    {_py(item)},\n" for item in items) + "]"


def _sample_frames(data: DataConfig, *, test_mode: bool) -> dict[str, Any]:
    """SampleFrames with the options that differ from mmaction2's defaults."""
    step: dict[str, Any] = {
        "type": "SampleFrames",
        "clip_len": data.clip_len,
        "frame_interval": data.frame_interval,
        "num_clips": data.num_clips if test_mode else 1,
    }
    if test_mode:
        step["test_mode"] = True
        if data.twice_sample:
            step["twice_sample"] = True
    else:
        if data.temporal_jitter:
            step["temporal_jitter"] = True
        if data.keep_tail_frames:
            step["keep_tail_frames"] = True
    if data.target_fps is not None:
        step["target_fps"] = data.target_fps
    if data.out_of_bound != "loop":
        step["out_of_bound_opt"] = data.out_of_bound
    return step


def resolve_decoder(decoder: str, data: DataConfig) -> str:
    """``"pyav"`` or ``"decord"``: ``auto`` is PyAV unless ``target_fps`` needs Decord."""
    if decoder not in DECODERS:
        raise ConfigError(f"--decoder must be one of {', '.join(DECODERS)}; got {decoder!r}")
    if decoder == "auto":
        return "decord" if data.target_fps is not None else "pyav"
    if decoder == "pyav" and data.target_fps is not None:
        raise ConfigError(
            "--decoder pyav cannot export target_fps: mmaction2's PyAVInit does not record the "
            "frame rate, so SampleFrames would not resample; use --decoder decord or auto"
        )
    return decoder


def _decode(decoder: str) -> tuple[dict[str, Any], dict[str, Any]]:
    prefix = "PyAV" if decoder == "pyav" else "Decord"
    return {"type": f"{prefix}Init"}, {"type": f"{prefix}Decode"}


def train_pipeline_steps(data: DataConfig, decoder: str = "pyav") -> list[dict[str, Any]]:
    """mmaction2's training transforms for ``data`` (a real-video ``DataConfig``)."""
    init, decode = _decode(decoder)
    steps = [
        init,
        _sample_frames(data, test_mode=False),
        decode,
        {"type": "Resize", "scale": (-1, data.effective_short_side)},
        {"type": "RandomCrop", "size": data.resolution},
    ]
    if data.flip:
        flip: dict[str, Any] = {"type": "Flip", "flip_ratio": 0.5}
        if data.flip_label_map:
            flip["flip_label_map"] = dict(data.flip_label_map)
        steps.append(flip)
    return steps + [{"type": "FormatShape", "input_format": "NCTHW"}, {"type": "PackActionInputs"}]


def val_pipeline_steps(data: DataConfig, decoder: str = "pyav") -> list[dict[str, Any]]:
    """mmaction2's validation/test transforms for ``data`` (deterministic)."""
    init, decode = _decode(decoder)
    crop: list[dict[str, Any]]
    if data.test_crop == "three":
        crop = [
            {"type": "Resize", "scale": (-1, data.resolution)},
            {"type": "ThreeCrop", "crop_size": data.resolution},
        ]
    else:
        crop = [
            {"type": "Resize", "scale": (-1, data.effective_short_side)},
            {"type": "CenterCrop", "crop_size": data.resolution},
        ]
    return [
        init,
        _sample_frames(data, test_mode=True),
        decode,
        *crop,
        {"type": "FormatShape", "input_format": "NCTHW"},
        {"type": "PackActionInputs"},
    ]


def _model(
    config: ResNet3dConfig, data: DataConfig | None, train: TrainConfig | None, num_classes: int
) -> dict[str, Any]:
    head: dict[str, Any] = {
        "type": "I3DHead",
        "num_classes": num_classes,
        "in_channels": config.feat_dim,
        "spatial_type": "avg",
        "dropout_ratio": train.dropout if train is not None else 0.5,
        "init_std": 0.01,
        "average_clips": "prob",
    }
    if train is not None and train.label_smoothing > 0:
        head["label_smooth_eps"] = train.label_smoothing
    mean, std = (list(data.mean), list(data.std)) if data is not None else (_MEAN, _STD)
    return {
        "type": "Recognizer3D",
        "backbone": {"type": "ResNet3d", **config.to_dict()},
        "cls_head": head,
        "data_preprocessor": {
            "type": "ActionDataPreprocessor",
            "mean": mean,
            "std": std,
            "format_shape": "NCTHW",
        },
    }


def _list_lines(list_file: str) -> list[str] | None:
    """The non-empty lines of an annotation list, or None when it cannot be read here."""
    try:
        text = Path(list_file).read_text(encoding="utf-8")
    except OSError:
        return None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _lists(
    data: DataConfig, list_dir: Path | None, skipped: Mapping[str, tuple[str, ...]] | None
) -> tuple[dict[str, str], dict[str, str], int | None, list[str]]:
    """Annotation files and video root of each split, the training video count if known, and
    comments on what was left out.

    Class folders are written out as mmaction2 lists into ``list_dir`` (their labels are the
    ones r3dnas used: sorted class folder names), and so are lists that lose the videos the
    study skipped as unreadable.
    """
    from runners.data.datasets import DataKind

    files: dict[str, str] = {}
    lines: dict[str, list[str] | None] = {}
    if data.kind == DataKind.VIDEO_LIST:
        # NOTE: DataConfig.validate: a video-list dataset names both lists.
        assert data.train_list is not None and data.val_list is not None
        files = {"train": data.train_list, "val": data.val_list}
        roots = {split: data.root or str(Path(files[split]).parent) for split in files}
        lines = {split: _list_lines(files[split]) for split in files}
        train_lines = lines["train"]
        count = len(train_lines) if train_lines is not None else None
    else:
        from runners.data.datasets import build_datasets
        from runners.data.video import ClassFolderDataset

        train_set, val_set = build_datasets(data)  # ConfigError names a missing folder
        assert isinstance(train_set, ClassFolderDataset)
        assert isinstance(val_set, ClassFolderDataset)
        roots = {"train": train_set.root, "val": val_set.root}
        for split, dataset in (("train", train_set), ("val", val_set)):
            base = Path(dataset.root)
            lines[split] = [
                f"{Path(path).relative_to(base)} {label}" for path, label in dataset.videos
            ]
        count = len(train_set)
    comments: list[str] = []
    if skipped is None:
        comments.append(
            "the trial did not record which videos it skipped as unreadable; `r3dnas data SPEC` "
            "lists them (mmaction2's epoch stops at one)"
        )
    # NOTE: a file unreadable in one split is unreadable in the other: the union is left out.
    unreadable = sorted(set().union(*(skipped or {}).values()))
    for split in ("train", "val"):
        split_lines = lines[split]
        if split_lines is None:  # the user's list, not readable here (exported elsewhere)
            if unreadable:
                comments.append(
                    f"r3dnas skipped unreadable videos in the study; remove any of them from "
                    f"{files[split]} (not readable at export) before training:"
                )
                comments += [f"  {path}" for path in unreadable]
            continue
        root = Path(roots[split])
        bad = [line for line in split_lines if str(root / line.split()[0]) in unreadable]
        if not bad and split in files:
            continue  # the user's own list, as it is
        if list_dir is None:
            why = f"{unreadable[0]} was unreadable" if bad else "class folders become lists"
            raise ConfigError(
                f"the export writes annotation lists beside the config ({why}): pass --out FILE"
            )
        if bad:
            comments.append(
                f"left out of the {split} list (r3dnas skipped them as unreadable in the study):"
            )
            comments += [f"  {root / line.split()[0]}" for line in dict.fromkeys(bad)]
            left_out = set(bad)
            split_lines = [line for line in split_lines if line not in left_out]
        list_dir.mkdir(parents=True, exist_ok=True)
        path = list_dir / f"{split}_list.txt"
        path.write_text("".join(f"{line}\n" for line in split_lines))
        files[split] = str(path)
    return files, roots, count, comments


def _dataloader(
    pipeline: str, ann_file: str, root: str, *, batch_size: int, workers: int, train: bool
) -> str:
    fields = [
        f"batch_size={batch_size}",
        f"num_workers={workers}",
        f"persistent_workers={workers > 0}",
        f"sampler=dict(type='DefaultSampler', shuffle={train})",
    ]
    if train:
        fields.append("drop_last=True")  # r3dnas drops the last incomplete training batch
    fields.append(
        f"dataset=dict(type='VideoDataset', ann_file={ann_file!r}, "
        f"data_prefix=dict(video={root!r}), pipeline={pipeline}"
        + (", test_mode=True)" if not train else ")")
    )
    return "dict(\n    " + ",\n    ".join(fields) + ")"


def _schedule(
    train: TrainConfig, train_videos: int | None
) -> tuple[list[str], list[dict[str, Any]]]:
    """Comments and ``param_scheduler`` entries: linear warm-up, then cosine decay to 0."""
    comments = []
    schedulers: list[dict[str, Any]] = []
    warmup: float = train.warmup_epochs
    if float(warmup).is_integer():
        warmup = int(warmup)  # reads as whole epochs in the config
    if warmup > 0:
        steps_per_epoch = train_videos // train.batch_size if train_videos else 0
        warmup_steps = round(warmup * steps_per_epoch)
        if warmup_steps > 0:
            start = 1.0 / warmup_steps
            comments.append(
                f"warm-up starts at lr/{warmup_steps}: {train_videos} training videos, batch "
                f"{train.batch_size}, one process"
            )
        else:
            start = 0.1
            comments.append(
                "warm-up starts at 0.1 x lr: the training list was not readable at export, so "
                "r3dnas's lr/warmup_steps is unknown"
            )
        schedulers.append(
            {
                "type": "LinearLR",
                "start_factor": start,
                "by_epoch": True,
                "begin": 0,
                "end": warmup,
                "convert_to_iter_based": True,
            }
        )
    if warmup < train.epochs:
        schedulers.append(
            {
                "type": "CosineAnnealingLR",
                "T_max": train.epochs - warmup,
                "eta_min": 0.0,
                "by_epoch": True,
                "begin": warmup,
                "end": train.epochs,
                "convert_to_iter_based": True,
            }
        )
    return comments, schedulers


def _precision(train: TrainConfig, trained: TrainedWith) -> tuple[bool, list[str]]:
    """Whether to export an ``AmpOptimWrapper``, and the comments that say why and how to switch.

    The precision the trial actually trained with wins; a trial that did not record it falls back
    on ``train.amp``, and ``"auto"`` then exports float32, which trains on every device.
    """
    where = f" on {trained.device}" if trained.device else ""
    if trained.amp is not None:
        amp, source = trained.amp, f"the study trained{where}"
    elif train.amp == "auto":
        amp = False
        source = (
            "the trial did not record its precision (amp = 'auto': float16 on CUDA, float32 on "
            "CPU); float32 trains anywhere"
        )
    else:
        amp, source = bool(train.amp), f"the study set amp = {str(bool(train.amp)).lower()}"
    if amp:
        return True, [
            f"{source} in float16 mixed precision (AMP);",
            "AmpOptimWrapper needs a GPU: type='OptimWrapper' trains on CPU, in float32",
        ]
    precision = "" if trained.amp is None and train.amp == "auto" else " in float32 (no AMP)"
    return False, [
        f"{source}{precision};",
        "on a GPU, type='AmpOptimWrapper' trains in float16 mixed precision (r3dnas's amp = true)",
    ]


def _optim_wrapper(train: TrainConfig, amp: bool) -> dict[str, Any]:
    if train.optimizer == "sgd":
        optimizer = {
            "type": "SGD",
            "lr": train.lr,
            "momentum": train.momentum,
            "weight_decay": train.weight_decay,
        }
    else:
        optimizer = {"type": "AdamW", "lr": train.lr, "weight_decay": train.weight_decay}
    wrapper: dict[str, Any] = {
        "type": "AmpOptimWrapper" if amp else "OptimWrapper",
        "optimizer": optimizer,
    }
    if train.grad_clip is not None:
        wrapper["clip_grad"] = {"max_norm": train.grad_clip, "norm_type": 2}
    return wrapper


def mmaction2_config_text(
    config_dict: dict[str, Any],
    *,
    num_classes: int,
    header: str = "",
    data: DataConfig | None = None,
    train: TrainConfig | None = None,
    list_dir: str | Path | None = None,
    decoder: str = "auto",
    trained: TrainedWith | None = None,
    load_from: str | None = None,
) -> str:
    """An mmaction2 config: the Recognizer3D, plus pipelines, loaders and schedule when the
    study trained on real videos (``data``: a ``DataConfig``, ``train``: a ``TrainConfig``).

    Args:
        list_dir: Where annotation lists are written: class folders, and lists that lose the
            videos the study skipped as unreadable.
        decoder: ``"auto"`` (PyAV, or Decord for ``target_fps``), ``"pyav"`` or ``"decord"``.
        trained: What the trial recorded while training (its precision, device and skipped
            videos); None: nothing recorded (the config then says what it assumed).
        load_from: The trained weights (an mmengine checkpoint) the Runner starts from.
    """
    from search_space.config import ResNet3dConfig

    if decoder not in DECODERS:
        raise ConfigError(f"--decoder must be one of {', '.join(DECODERS)}; got {decoder!r}")
    config = ResNet3dConfig.from_dict(config_dict)
    lines = [f"# {line}" for line in header.splitlines()]
    model = _model(config, data, train, num_classes)
    lines += [
        "default_scope = 'mmaction'",
        "",
        "model = dict(",
        *[f"    {key}={_py(value)}," for key, value in model.items()],
        ")",
    ]
    if load_from is not None:
        lines += [
            "",
            "# The weights the study trained (an mmengine checkpoint).",
            f"load_from = {load_from!r}",
        ]
    if data is None or train is None or data.kind.is_generated:
        lines += [
            "",
            "# The study trained on r3dnas's built-in motion dataset, which mmaction2 does not",
            "# have: add your dataset, pipelines and schedule (see mmaction2's i3d configs).",
            "",
        ]
        return "\n".join(lines)
    lines += _training_lines(
        data,
        train,
        decoder=resolve_decoder(decoder, data),
        trained=trained or TrainedWith(),
        list_dir=Path(list_dir) if list_dir is not None else None,
    )
    return "\n".join(lines)


def _training_lines(
    data: DataConfig,
    train: TrainConfig,
    *,
    decoder: str,
    trained: TrainedWith,
    list_dir: Path | None,
) -> list[str]:
    """Pipelines, loaders, loops, optimizer and schedule of a study that trained on videos."""
    files, roots, train_videos, list_comments = _lists(data, list_dir, trained.skipped)
    comments, schedulers = _schedule(train, train_videos)
    amp, precision_comments = _precision(train, trained)
    workers = data.num_workers
    return [
        "",
        f"train_pipeline = {_py_list(train_pipeline_steps(data, decoder))}",
        f"val_pipeline = {_py_list(val_pipeline_steps(data, decoder))}",
        "test_pipeline = val_pipeline",
        "",
        *[f"# {c}" for c in list_comments],
        *[
            f"{split}_dataloader = "
            + _dataloader(
                f"{split}_pipeline",
                files["train" if split == "train" else "val"],
                roots["train" if split == "train" else "val"],
                batch_size=1 if split == "test" else train.batch_size,
                workers=workers,
                train=split == "train",
            )
            for split in ("train", "val", "test")
        ],
        "val_evaluator = dict(type='AccMetric')",
        "test_evaluator = val_evaluator",
        "",
        f"train_cfg = dict(type='EpochBasedTrainLoop', max_epochs={train.epochs}, "
        f"val_begin=1, val_interval={train.eval_every})",
        "val_cfg = dict(type='ValLoop')",
        "test_cfg = dict(type='TestLoop')",
        "",
        *[f"# {c}" for c in precision_comments],
        f"optim_wrapper = {_py(_optim_wrapper(train, amp))}",
        *[f"# {c}" for c in comments],
        f"param_scheduler = {_py_list(schedulers)}",
        f"randomness = dict(seed={train.seed})",
        "",
    ]
