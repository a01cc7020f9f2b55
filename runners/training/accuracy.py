"""Accuracy runner: train a configuration on a clip dataset and report top-1/top-5.

Why it is built this way: a study compares hundreds of trials, so one trial's accuracy must be
reproducible (same configuration and seed -> identical numbers on CPU), its failures must be
recorded instead of killing the study (non-finite loss and out-of-memory become
:class:`TrialFailure` with the reason), and its cost must be visible (wall time, peak memory).

The recipe follows mmaction2's I3D schedule in miniature: SGD (or AdamW) with weight decay on
every parameter, linear warm-up then cosine decay to zero evaluated per step, optional label
smoothing, AMP (``torch.autocast`` float16 + ``GradScaler``) and ``channels_last_3d`` on CUDA.
Accuracies are percentages on the validation set after the last epoch (never the best epoch,
which would be tuned on the validation set).

This module holds the two entry points and their results; the loop is
:mod:`runners.training.loop`, the settings :mod:`runners.training.config`, memory accounting
:mod:`runners.training.memory` and the weights on disk :mod:`runners.training.weights`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from runners._device import resolve_device
from runners.model import Recognizer3D, build_recognizer
from runners.training.config import OPTIMIZERS, TrainConfig
from runners.training.loop import (
    EpochCallback,
    NonFiniteLoss,
    TrainingRun,
    resolve_flag,
    seeded,
    torch_threads,
)
from runners.training.memory import (
    first_line,
    memory_snapshot,
    out_of_memory_failure,
    peak_memory_mb,
    release_memory,
    reset_peak_memory,
)
from runners.training.weights import load_weights, save_weights
from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError, TrialFailure
from search_space.strict import check_int

# NOTE: TrainConfig, OPTIMIZERS, out_of_memory_failure and resolve_device are re-exported: code
# has always imported them from here.
__all__ = [
    "OPTIMIZERS",
    "AccuracyResult",
    "EvaluationResult",
    "TrainConfig",
    "evaluate_checkpoint",
    "out_of_memory_failure",
    "resolve_device",
    "train_and_evaluate",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class AccuracyResult:
    """What one training run measured.

    Attributes:
        top1: Validation top-1 accuracy after the last epoch, in percent.
        top5: Validation top-k accuracy in percent, k = ``topk`` = min(5, num_classes).
        topk: The k of ``top5``.
        epochs_run: Epochs completed.
        history: One dict per epoch: ``epoch`` (1-based), ``train_loss``, ``train_top1`` (%,
            running, dropout on), ``val_top1`` / ``val_top5`` (%, ``None`` on epochs that were
            not evaluated), ``lr`` (at the epoch's last step), ``seconds`` (train + eval).
        wall_s: Whole call, including data loader and model set-up.
        train_s: Time in training steps. eval_s: time in evaluation.
        peak_memory_mb: Peak memory in MiB, of the kind ``peak_memory_source`` names:
            ``"cuda_max_allocated"`` (tensors on the GPU, reset at the start),
            ``"process_peak_rss"`` (the process's resident-set high-water mark, reset at the
            start through ``/proc/self/clear_refs``) or ``"process_peak_rss_lifetime"`` (the
            same, not resettable here, so it covers the whole process lifetime).
        device: The device trained on, e.g. ``"cpu"`` or ``"cuda:0"``.
        amp: Whether it trained in mixed precision (float16 autocast + GradScaler): the
            resolved ``TrainConfig.amp`` (``"auto"`` is on for CUDA only).
        seed: ``TrainConfig.seed``.
        num_params: Trainable and frozen parameters of backbone + head.
    """

    top1: float
    top5: float
    topk: int
    epochs_run: int
    history: tuple[dict[str, Any], ...]
    wall_s: float
    train_s: float
    eval_s: float
    peak_memory_mb: float
    peak_memory_source: str
    device: str
    amp: bool
    seed: int
    num_params: int

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["history"] = [dict(h) for h in self.history]
        return data


@dataclass(frozen=True, kw_only=True, slots=True)
class EvaluationResult:
    """What evaluating saved weights measured (see :func:`evaluate_checkpoint`).

    Attributes:
        top1: Validation top-1 accuracy in percent.
        top5: Validation top-k accuracy in percent, k = ``topk`` = min(5, num_classes).
        topk: The k of ``top5``.
        device: The device evaluated on.
        eval_s: Time in evaluation.
    """

    top1: float
    top5: float
    topk: int
    device: str
    eval_s: float


# ---------------------------------------------------------------------- public entry point
def train_and_evaluate(
    config: ResNet3dConfig,
    train_set: Dataset,
    val_set: Dataset,
    train_cfg: TrainConfig,
    *,
    num_classes: int,
    num_workers: int = 0,
    on_epoch: EpochCallback | None = None,
    progress: bool = False,
    checkpoint_path: str | Path | None = None,
) -> AccuracyResult:
    """Train ``build_recognizer(config)`` on ``train_set``; evaluate on ``val_set``.

    Datasets yield ``(clip, label)``: ``clip`` float32 ``(C, T, H, W)``, ``label`` an int in
    ``[0, num_classes)``.

    Args:
        config: The backbone to train.
        train_set: Training clips.
        val_set: Validation clips.
        train_cfg: Optimiser, schedule, device and seed.
        num_classes: Classifier outputs.
        num_workers: DataLoader worker processes (0 loads in the training process); a study
            passes its ``DataConfig.num_workers``.
        on_epoch: Called after every epoch with ``(epoch, metrics)`` (the history entry). It may
            raise (e.g. ``optuna.TrialPruned``) to stop training; the exception propagates.
        progress: Print one line per epoch to stderr.
        checkpoint_path: Where to save ``{"state_dict", "meta"}`` after training, in the format
            mmaction2's ``load_checkpoint`` reads (keys ``backbone.*``, ``cls_head.fc_cls.*``).

    Returns:
        The final validation accuracies, per-epoch history, timings and peak memory.

    Raises:
        TrialFailure: On a non-finite training loss or when memory runs out; the message names
            where (epoch, step) and, for memory, how much was allocated, reserved and available.
            Memory has been released by then, so the process can go on with the next trial.
        ConfigError: When the device, AMP setting or a dataset cannot be used.
    """
    start = time.perf_counter()
    run = _training_run(config, train_cfg, num_classes, num_workers, on_epoch, progress)
    for name, dataset in (("train_set", train_set), ("val_set", val_set)):
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ConfigError(f"{name} is empty; a trial needs at least one clip in each split")
    device = run.device
    source = reset_peak_memory(device)
    model = _fit(run, train_set, val_set)
    if checkpoint_path is not None:
        save_weights(model, checkpoint_path, config, train_cfg, num_classes)
    last = run.history[-1]
    peak_mb = peak_memory_mb(device, source)
    return AccuracyResult(
        top1=last["val_top1"],
        top5=last["val_top5"],
        topk=run.topk,
        epochs_run=len(run.history),
        history=tuple(run.history),
        wall_s=time.perf_counter() - start,
        train_s=run.train_s,
        eval_s=run.eval_s,
        peak_memory_mb=peak_mb,
        peak_memory_source=source,
        device=str(device),
        amp=run.amp,
        seed=train_cfg.seed,
        num_params=sum(p.numel() for p in model.parameters()),
    )


def _fit(run: TrainingRun, train_set: Dataset, val_set: Dataset) -> Recognizer3D:
    """``run.fit`` under the run's seed and threads; a non-finite loss or running out of memory
    becomes a :class:`TrialFailure` once the memory is released."""
    oom_message: str | None = None
    at_failure: dict[str, float] = {}
    failure_reason = ""
    with seeded(run.train_cfg.seed, run.device), torch_threads(run.train_cfg.num_threads):
        try:
            return run.fit(train_set, val_set)
        except NonFiniteLoss as exc:  # only ours: a callback's TrialFailure propagates as is
            failure_reason = str(exc)
        except torch.OutOfMemoryError as exc:
            oom_message, at_failure = first_line(exc), memory_snapshot(run.device)
        except RuntimeError as exc:
            if "can't allocate memory" not in str(exc):  # CPU allocator failure
                raise
            oom_message, at_failure = first_line(exc), memory_snapshot(run.device)
    # NOTE: failures are raised here, outside the except blocks, so the traceback (and the
    # tensors its frames hold) is already dropped when memory is released for the next trial.
    if oom_message is not None:
        raise out_of_memory_failure(
            oom_message, device=run.device, where=run.position(), at_failure=at_failure
        )
    release_memory(run.device)
    raise TrialFailure(failure_reason)


def _training_run(
    config: ResNet3dConfig,
    train_cfg: TrainConfig,
    num_classes: int,
    num_workers: int,
    on_epoch: EpochCallback | None,
    progress: bool,
) -> TrainingRun:
    """The run's settings, resolved alike for training and for evaluating saved weights: the
    device, AMP and ``channels_last_3d`` (so an evaluation repeats the training run's numbers)."""
    check_int("num_workers", num_workers, minimum=0)
    device = resolve_device(train_cfg.device)
    return TrainingRun(
        config=config,
        train_cfg=train_cfg,
        num_classes=num_classes,
        num_workers=num_workers,
        device=device,
        amp=resolve_flag("amp", train_cfg.amp, device),
        channels_last=resolve_flag("channels_last", train_cfg.channels_last, device),
        on_epoch=on_epoch,
        progress=progress,
    )


def evaluate_checkpoint(
    config: ResNet3dConfig,
    val_set: Dataset,
    train_cfg: TrainConfig,
    *,
    num_classes: int,
    checkpoint_path: str | Path,
    num_workers: int = 0,
) -> EvaluationResult:
    """Top-1/top-k of the weights ``train_and_evaluate`` saved, without training.

    The evaluation is the one ``train_and_evaluate`` runs after its last epoch (same loader,
    batch size, device, AMP, threads and deterministic algorithms), so on CPU the weights of a
    run give exactly that run's ``top1``. ``num_workers`` is the loader's, as in
    :func:`train_and_evaluate`.

    Raises:
        ConfigError: When the file is missing or unreadable, holds the weights of another
            configuration or number of classes, or its keys do not fit the network.
    """
    run = _training_run(config, train_cfg, num_classes, num_workers, None, False)
    device = run.device
    if len(val_set) == 0:  # type: ignore[arg-type]
        raise ConfigError("val_set is empty; evaluation needs at least one clip")
    state = load_weights(checkpoint_path, config, num_classes)
    start = time.perf_counter()
    with seeded(train_cfg.seed, device), torch_threads(train_cfg.num_threads):
        model = build_recognizer(config, num_classes=num_classes, dropout=train_cfg.dropout)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ConfigError(
                f"checkpoint {str(checkpoint_path)!r} does not fit the network: {first_line(exc)}"
            ) from exc
        model.to(device)
        if run.channels_last:
            model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        top1, top5 = run.evaluate(model, run.loader(val_set, train=False))
    return EvaluationResult(
        top1=top1,
        top5=top5,
        topk=run.topk,
        device=str(device),
        eval_s=time.perf_counter() - start,
    )
