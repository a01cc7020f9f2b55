"""A trial as an mmaction2 training config: the network, and the study's data and training recipe.

Why a whole config and not only the model: the point of exporting is to train the chosen
network at full scale in mmaction2. With the data pipeline and the schedule exported too, that
run starts from what the study measured instead of from a hand-copied approximation.

What maps to what (r3dnas -> mmaction2):

* ``ResNet3dConfig`` -> ``backbone=dict(type='ResNet3d', ...)`` (the same keyword arguments);
  the head is an ``I3DHead`` with the study's dropout and label smoothing;
* ``DataConfig`` (real videos) -> ``PyAVInit``, ``SampleFrames`` (every sampling option),
  ``PyAVDecode``, ``Resize(scale=(-1, short_side))``, ``RandomCrop`` + ``Flip`` in training,
  ``CenterCrop`` or ``ThreeCrop`` in validation, ``FormatShape('NCTHW')``, ``PackActionInputs``;
  mean and std go to the ``ActionDataPreprocessor``. PyAV is r3dnas's own decoder, so the
  frames are the same; ``DecordInit``/``DecordDecode`` replace it when ``target_fps`` is set,
  because mmaction2's ``PyAVInit`` does not record the frame rate and ``SampleFrames`` would
  silently not resample. Lists become ``VideoDataset`` annotation files; class folders are
  written out as such lists (mmaction2 reads no folder layout);
* ``TrainConfig`` -> ``SGD``/``AdamW`` in an ``OptimWrapper`` (``AmpOptimWrapper`` when AMP is on
  or automatic, since mmaction2 trains on GPUs), gradient clipping, ``LinearLR`` warm-up then
  ``CosineAnnealingLR`` to 0 per iteration, ``EpochBasedTrainLoop``, ``AccMetric``.

Known differences: r3dnas rounds a fractional warm-up to whole steps where mmengine truncates;
on several GPUs mmaction2's steps per epoch (and so the first warm-up factor, computed here for
one process) differ; the built-in motion dataset has no mmaction2 counterpart, so its export
holds the model only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_space.errors import ConfigError

__all__ = ["DECODERS", "mmaction2_config_text", "train_pipeline_steps", "val_pipeline_steps"]

DECODERS = ("auto", "pyav", "decord")

# mmaction2's ImageNet normalisation on 0-255 pixels (configs/_base_/models/i3d_r50.py).
_MEAN = [123.675, 116.28, 103.53]
_STD = [58.395, 57.12, 57.375]


def _py(value: Any) -> str:
    """A Python literal mmengine's config parser reads back to the same value."""
    if isinstance(value, dict):
        return "dict(" + ", ".join(f"{k}={_py(v)}" for k, v in value.items()) + ")"
    if isinstance(value, list | tuple):
        inner = ", ".join(_py(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _py_list(items: list[dict[str, Any]]) -> str:
    return "[\n" + "".join(f"    {_py(item)},\n" for item in items) + "]"


def _sample_frames(data: Any, *, test_mode: bool) -> dict[str, Any]:
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


def resolve_decoder(decoder: str, data: Any) -> str:
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


def train_pipeline_steps(data: Any, decoder: str = "pyav") -> list[dict[str, Any]]:
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
        steps.append({"type": "Flip", "flip_ratio": 0.5})
    return steps + [{"type": "FormatShape", "input_format": "NCTHW"}, {"type": "PackActionInputs"}]


def val_pipeline_steps(data: Any, decoder: str = "pyav") -> list[dict[str, Any]]:
    """mmaction2's validation/test transforms for ``data`` (deterministic)."""
    init, decode = _decode(decoder)
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


def _model(config: Any, data: Any, train: Any, num_classes: int) -> dict[str, Any]:
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


def _lists(data: Any, list_dir: Path | None) -> tuple[dict[str, str], dict[str, str], int | None]:
    """Annotation files and video root of each split, and the training video count if known.

    Class folders are written out as mmaction2 lists into ``list_dir`` (their labels are the
    ones r3dnas used: sorted class folder names).
    """
    from runners.data import DataKind

    if data.kind == DataKind.VIDEO_LIST:
        root_of = {
            name: data.root or str(Path(getattr(data, name)).parent)
            for name in ("train_list", "val_list")
        }
        train_file = Path(data.train_list)
        count = None
        if train_file.is_file():
            count = sum(1 for line in train_file.read_text().splitlines() if line.strip())
        return (
            {"train": data.train_list, "val": data.val_list},
            {"train": root_of["train_list"], "val": root_of["val_list"]},
            count,
        )
    from runners.data import build_datasets
    from runners.video import ClassFolderDataset

    train_set, val_set = build_datasets(data)  # ConfigError names a missing folder
    assert isinstance(train_set, ClassFolderDataset) and isinstance(val_set, ClassFolderDataset)
    if list_dir is None:
        raise ConfigError(
            "a class-folder study is exported with annotation lists written beside the config: "
            "pass --out FILE"
        )
    list_dir.mkdir(parents=True, exist_ok=True)
    files, roots = {}, {}
    for split, dataset in (("train", train_set), ("val", val_set)):
        base = Path(dataset.root)
        lines = [f"{Path(path).relative_to(base)} {label}\n" for path, label in dataset.videos]
        path = list_dir / f"{split}_list.txt"
        path.write_text("".join(lines))
        files[split], roots[split] = str(path), str(base)
    return files, roots, len(train_set)


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


def _schedule(train: Any, train_videos: int | None) -> tuple[list[str], list[dict[str, Any]]]:
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


def _optim_wrapper(train: Any) -> dict[str, Any]:
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
        "type": "OptimWrapper" if train.amp is False else "AmpOptimWrapper",
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
    data: Any = None,
    train: Any = None,
    list_dir: str | Path | None = None,
    decoder: str = "auto",
    load_from: str | None = None,
) -> str:
    """An mmaction2 config: the Recognizer3D, plus pipelines, loaders and schedule when the
    study trained on real videos (``data``: a ``DataConfig``, ``train``: a ``TrainConfig``).

    Args:
        list_dir: Where class-folder datasets are written as annotation lists.
        decoder: ``"auto"`` (PyAV, or Decord for ``target_fps``), ``"pyav"`` or ``"decord"``.
        load_from: The trained weights (an mmengine checkpoint) the Runner starts from.
    """
    from runners.data import DataKind
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
    if data is None or train is None or data.kind == DataKind.MOTION:
        lines += [
            "",
            "# The study trained on r3dnas's built-in motion dataset, which mmaction2 does not",
            "# have: add your dataset, pipelines and schedule (see mmaction2's i3d configs).",
            "",
        ]
        return "\n".join(lines)
    decoder = resolve_decoder(decoder, data)
    files, roots, train_videos = _lists(data, Path(list_dir) if list_dir is not None else None)
    comments, schedulers = _schedule(train, train_videos)
    workers = data.num_workers
    lines += [
        "",
        f"train_pipeline = {_py_list(train_pipeline_steps(data, decoder))}",
        f"val_pipeline = {_py_list(val_pipeline_steps(data, decoder))}",
        "test_pipeline = val_pipeline",
        "",
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
        f"optim_wrapper = {_py(_optim_wrapper(train))}",
        *[f"# {c}" for c in comments],
        f"param_scheduler = {_py_list(schedulers)}",
        f"randomness = dict(seed={train.seed})",
        "",
    ]
    return "\n".join(lines)
