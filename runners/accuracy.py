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
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from runners._device import DEVICE_PATTERN, resolve_device
from runners.model import Recognizer3D, build_recognizer
from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError, TrialFailure

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

OPTIMIZERS = ("sgd", "adamw")
_MIB = 2**20
EpochCallback = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainConfig:
    """How to train one trial. Every field is validated on construction.

    Attributes:
        epochs: Passes over the training set.
        batch_size: Clips per step (the last incomplete batch is dropped in training).
        optimizer: ``"sgd"`` (momentum, mmaction2's default) or ``"adamw"``.
        lr: Peak learning rate, reached at the end of warm-up.
        momentum: SGD momentum; AdamW's beta1 is left at 0.9.
        weight_decay: Applied to every parameter, as mmaction2's default optimizer does.
        warmup_epochs: Linear warm-up length (may be fractional); cosine decay to 0 follows.
        label_smoothing: Cross-entropy label smoothing in [0, 1).
        dropout: Dropout probability of the I3D head.
        seed: Seeds model init, data order, dropout and the global python/numpy/torch RNGs.
            On CPU the same TrainConfig gives identical results on the same machine and torch
            build; ``num_threads`` is part of that (it changes the order of float sums), the
            DataLoader's ``num_workers`` is not (for datasets whose items do not depend on the
            worker).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: Mixed precision; ``"auto"`` means on for CUDA, off on CPU (where it is an error).
        channels_last: ``channels_last_3d`` memory format; ``"auto"`` means on for CUDA.
        num_threads: CPU threads for torch ops during the call (restored afterwards); ``None``
            keeps the process setting. Set it when several trials share a machine: an
            oversubscribed CPU can be many times slower than one thread per process.
        grad_clip: Max global gradient norm, or ``None`` for no clipping.
        eval_every: Evaluate every this many epochs; the last epoch is always evaluated.
    """

    epochs: int = 10
    batch_size: int = 16
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    dropout: float = 0.5
    seed: int = 0
    device: str = "auto"
    amp: bool | str = "auto"
    channels_last: bool | str = "auto"
    num_threads: int | None = None
    grad_clip: float | None = None
    eval_every: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field and what is allowed."""
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("eval_every", 1)):
            _check_int(name, getattr(self, name), minimum)
        _check_int("seed", self.seed, 0)
        if self.num_threads is not None:
            _check_int("num_threads", self.num_threads, 1)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}; "
                f"got {self.optimizer!r}"
            )
        _check_number("lr", self.lr, low=0, low_open=True)
        _check_number("momentum", self.momentum, low=0, high=1)
        _check_number("weight_decay", self.weight_decay, low=0)
        _check_number("warmup_epochs", self.warmup_epochs, low=0)
        if self.warmup_epochs > self.epochs:
            raise ConfigError(
                f"warmup_epochs must be at most epochs ({self.epochs}); got {self.warmup_epochs}"
            )
        _check_number("label_smoothing", self.label_smoothing, low=0, high=1)
        _check_number("dropout", self.dropout, low=0, high=1)
        if self.grad_clip is not None:
            _check_number("grad_clip", self.grad_clip, low=0, low_open=True)
        if not isinstance(self.device, str) or not DEVICE_PATTERN.match(self.device):
            raise ConfigError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {self.device!r}"
            )
        for name in ("amp", "channels_last"):
            value = getattr(self, name)
            if not isinstance(value, bool) and value != "auto":
                raise ConfigError(f"{name} must be true, false or 'auto'; got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from ``to_dict()`` output; unknown keys are rejected by name."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a train config must be a mapping; got {type(data).__name__}")
        if "num_workers" in data:
            # NOTE: one setting, one home: the loader workers belong to the data (DataConfig),
            # which both training and the mmaction2 export read.
            raise ConfigError(
                "num_workers is no longer a train setting; move it to [data] num_workers "
                "(DataConfig.num_workers), which training and the mmaction2 export both use"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown train config key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


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
    _check_int("num_workers", num_workers, 0)
    device = resolve_device(train_cfg.device)
    amp = _resolve_flag("amp", train_cfg.amp, device)
    channels_last = _resolve_flag("channels_last", train_cfg.channels_last, device)
    for name, dataset in (("train_set", train_set), ("val_set", val_set)):
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ConfigError(f"{name} is empty; a trial needs at least one clip in each split")
    run = _Run(
        config=config,
        train_cfg=train_cfg,
        num_classes=num_classes,
        num_workers=num_workers,
        device=device,
        amp=amp,
        channels_last=channels_last,
        on_epoch=on_epoch,
        progress=progress,
    )
    source = _reset_peak_memory(device)
    oom_message: str | None = None
    at_failure: dict[str, float] = {}
    failure_reason: str | None = None
    with _seeded(train_cfg.seed, device), _threads(train_cfg.num_threads):
        try:
            model = run.fit(train_set, val_set)
        except _NonFiniteLoss as exc:  # only ours: a callback's TrialFailure propagates as is
            failure_reason = str(exc)
        except torch.OutOfMemoryError as exc:
            oom_message, at_failure = _first_line(exc), _memory_snapshot(device)
        except RuntimeError as exc:
            if "can't allocate memory" not in str(exc):  # CPU allocator failure
                raise
            oom_message, at_failure = _first_line(exc), _memory_snapshot(device)
    # NOTE: failures are raised here, outside the except blocks, so the traceback (and the
    # tensors its frames hold) is already dropped when memory is released for the next trial.
    if oom_message is not None:
        raise out_of_memory_failure(
            oom_message, device=device, where=run.position(), at_failure=at_failure
        )
    if failure_reason is not None:
        _release_memory(device)
        raise TrialFailure(failure_reason)
    if checkpoint_path is not None:
        _save_checkpoint(model, checkpoint_path, config, train_cfg, num_classes)
    last = run.history[-1]
    peak_mb = _peak_memory_mb(device, source)
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
        amp=amp,
        seed=train_cfg.seed,
        num_params=sum(p.numel() for p in model.parameters()),
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
    run give exactly that run's ``top1``.

    Raises:
        ConfigError: When the file is missing or unreadable, holds the weights of another
            configuration or number of classes, or its keys do not fit the network.
    """
    device = resolve_device(train_cfg.device)
    amp = _resolve_flag("amp", train_cfg.amp, device)
    channels_last = _resolve_flag("channels_last", train_cfg.channels_last, device)
    if len(val_set) == 0:  # type: ignore[arg-type]
        raise ConfigError("val_set is empty; evaluation needs at least one clip")
    state = _load_weights(checkpoint_path, config, num_classes)
    run = _Run(
        config=config,
        train_cfg=train_cfg,
        num_classes=num_classes,
        num_workers=num_workers,
        device=device,
        amp=amp,
        channels_last=channels_last,
        on_epoch=None,
        progress=False,
    )
    start = time.perf_counter()
    with _seeded(train_cfg.seed, device), _threads(train_cfg.num_threads):
        model = build_recognizer(config, num_classes=num_classes, dropout=train_cfg.dropout)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ConfigError(
                f"checkpoint {str(checkpoint_path)!r} does not fit the network: {_first_line(exc)}"
            ) from exc
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        top1, top5 = run._evaluate(model, run._loader(val_set, train=False))
    return EvaluationResult(
        top1=top1,
        top5=top5,
        topk=run.topk,
        device=str(device),
        eval_s=time.perf_counter() - start,
    )


def _load_weights(
    path: str | Path, config: ResNet3dConfig, num_classes: int
) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a file :func:`_save_checkpoint` wrote, checked against ``config``."""
    shown = repr(str(path))
    if not Path(path).is_file():
        raise ConfigError(f"checkpoint {shown} not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # NOTE: torch raises several types for a corrupt or foreign file
        raise ConfigError(f"checkpoint {shown} is not readable: {_first_line(exc)}") from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ConfigError(f"checkpoint {shown} has no 'state_dict' mapping")
    meta = checkpoint.get("meta") or {}
    stored = meta.get("config")
    if stored is not None and ResNet3dConfig.from_dict(stored) != config:
        raise ConfigError(f"checkpoint {shown} holds the weights of another configuration")
    if meta.get("num_classes", num_classes) != num_classes:
        raise ConfigError(
            f"checkpoint {shown} has {meta['num_classes']} classes; the data has {num_classes}"
        )
    return checkpoint["state_dict"]


def out_of_memory_failure(
    message: str,
    *,
    device: torch.device,
    where: str,
    at_failure: dict[str, float] | None = None,
) -> TrialFailure:
    """Free cached memory, then describe an out-of-memory as a :class:`TrialFailure`.

    Call it after leaving the ``except`` block that caught the error, so that the tensors held
    by the traceback's frames can be collected. The reason names where it happened and the
    memory involved: for CUDA, allocated and reserved at the failure and after freeing, and the
    device total; for CPU, the process's resident set and its peak.
    """
    _release_memory(device)
    after = _memory_snapshot(device)
    if device.type == "cuda":
        before = at_failure or {}
        memory = (
            f"allocated {before.get('allocated_mb', float('nan')):.0f} MiB and reserved "
            f"{before.get('reserved_mb', float('nan')):.0f} MiB at the failure, "
            f"{after['allocated_mb']:.0f} / {after['reserved_mb']:.0f} MiB after freeing, "
            f"of {after['total_mb']:.0f} MiB total"
        )
    else:
        memory = f"process RSS {after['rss_mb']:.0f} MiB, peak {after['peak_rss_mb']:.0f} MiB"
    return TrialFailure(f"out of memory on {device} at {where}: {memory} ({message})")


# ---------------------------------------------------------------------- the training loop
class _NonFiniteLoss(TrialFailure):
    """Raised inside the loop; re-raised as a plain TrialFailure once memory is released."""


@dataclass(kw_only=True, slots=True)
class _Run:
    """Mutable state of one call: settings, where the loop is, and what it measured."""

    config: ResNet3dConfig
    train_cfg: TrainConfig
    num_classes: int
    num_workers: int
    device: torch.device
    amp: bool
    channels_last: bool
    on_epoch: EpochCallback | None
    progress: bool
    epoch: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    phase_steps: int = 0
    phase: str = "set-up"
    train_s: float = 0.0
    eval_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def topk(self) -> int:
        return min(5, self.num_classes)

    def position(self) -> str:
        if self.phase == "set-up":
            return "set-up"
        if self.phase == "callback":
            return f"epoch {self.epoch} (callback)"
        return f"epoch {self.epoch}, step {self.step} of {self.phase_steps} ({self.phase})"

    def fit(self, train_set: Dataset, val_set: Dataset) -> Recognizer3D:
        cfg = self.train_cfg
        # Seeded by the caller: model init is reproducible.
        model = build_recognizer(self.config, num_classes=self.num_classes, dropout=cfg.dropout)
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        optimizer = _build_optimizer(model, cfg)
        train_loader = self._loader(train_set, train=True)
        val_loader = self._loader(val_set, train=False)
        self.steps_per_epoch = len(train_loader)
        total_steps = cfg.epochs * self.steps_per_epoch
        warmup_steps = round(cfg.warmup_epochs * self.steps_per_epoch)
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        schedule = _Schedule(cfg.lr, warmup_steps, total_steps)
        for epoch in range(1, cfg.epochs + 1):
            self.epoch = epoch
            epoch_start = time.perf_counter()
            loss_sum, correct, seen, lr = self._train_epoch(
                model, train_loader, optimizer, scaler, criterion, schedule
            )
            self.train_s += time.perf_counter() - epoch_start
            val_top1: float | None = None
            val_top5: float | None = None
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                eval_start = time.perf_counter()
                val_top1, val_top5 = self._evaluate(model, val_loader)
                self.eval_s += time.perf_counter() - eval_start
            metrics = {
                "epoch": epoch,
                "train_loss": loss_sum / max(seen, 1),
                "train_top1": 100.0 * correct / max(seen, 1),
                "val_top1": val_top1,
                "val_top5": val_top5,
                "lr": lr,
                "seconds": time.perf_counter() - epoch_start,
            }
            self.history.append(metrics)
            self.phase = "callback"
            if self.progress:
                print(_format_epoch(metrics, cfg.epochs), file=sys.stderr, flush=True)
            if self.on_epoch is not None:
                self.on_epoch(epoch, dict(metrics))
        return model

    def _train_epoch(
        self,
        model: nn.Module,
        loader: DataLoader,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        criterion: nn.Module,
        schedule: _Schedule,
    ) -> tuple[float, int, int, float]:
        """One pass over ``loader``; returns (summed loss, correct, seen, last lr)."""
        cfg = self.train_cfg
        self.phase, self.phase_steps = "train", self.steps_per_epoch
        model.train()
        loss_sum, correct, seen, lr = 0.0, 0, 0, 0.0
        # NOTE: self.step counts from 1 and is set before the batch loads, so that a failure
        # while loading names the step it happened in.
        self.step = 1
        for clips, labels in loader:
            lr = schedule.lr((self.epoch - 1) * self.steps_per_epoch + self.step - 1)
            for group in optimizer.param_groups:
                group["lr"] = lr
            clips, labels = self._to_device(clips, labels)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                logits = model(clips)
            loss = criterion(logits.float(), labels)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise _NonFiniteLoss(
                    f"non-finite loss {loss_value} at {self.position()}, lr {lr:.3g}; "
                    "lower lr, set grad_clip or check the data for NaN/inf"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss_value * labels.shape[0]
            correct += int((logits.detach().argmax(1) == labels).sum())
            seen += labels.shape[0]
            self.step += 1
        return loss_sum, correct, seen, lr

    def _loader(self, dataset: Dataset, *, train: bool) -> DataLoader:
        from runners.data import build_loader

        cfg = self.train_cfg
        size = len(dataset)  # type: ignore[arg-type]
        # NOTE: build_loader seeds the order and, for real videos, every item's augmentation,
        # independently of num_workers. A trailing training batch of 1 would break BatchNorm on
        # small final feature maps, hence drop_last.
        return build_loader(
            dataset,
            batch_size=min(cfg.batch_size, size),
            shuffle=train,
            num_workers=self.num_workers,
            seed=cfg.seed,
            drop_last=train,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.num_workers > 0,
        )

    def _to_device(
        self, clips: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        clips = clips.to(self.device, non_blocking=True)
        if self.channels_last:
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        return clips, torch.as_tensor(labels).to(self.device, non_blocking=True).long()

    def _evaluate(self, model: nn.Module, loader: DataLoader) -> tuple[float, float]:
        """Top-1 and top-k accuracy in percent over the whole loader, in eval mode."""
        model.eval()
        correct1 = correctk = seen = 0
        self.phase, self.phase_steps, self.step = "eval", len(loader), 1
        with torch.inference_mode():
            for clips, labels in loader:
                views = 1
                if clips.dim() == 6:  # (N, num_clips, C, T, H, W): several test clips per video
                    views = clips.shape[1]
                    clips = clips.flatten(0, 1)
                clips, labels = self._to_device(clips, labels)
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                    logits = model(clips).float()
                if views > 1:
                    # mmaction2's average_clips='prob': average the clips' class probabilities
                    logits = logits.softmax(dim=1).view(-1, views, logits.shape[1]).mean(dim=1)
                top = logits.topk(self.topk, dim=1).indices  # (N, k)
                hits = top == labels[:, None]
                correct1 += int(hits[:, 0].sum())
                correctk += int(hits.any(dim=1).sum())
                seen += labels.shape[0]
                self.step += 1
        return 100.0 * correct1 / seen, 100.0 * correctk / seen


def _build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass(frozen=True, slots=True)
class _Schedule:
    """Per-step learning rate: linear warm-up to ``base_lr``, then cosine decay to 0."""

    base_lr: float
    warmup_steps: int
    total_steps: int

    def lr(self, step: int) -> float:
        """The learning rate of 0-based ``step``."""
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = (step - self.warmup_steps) / decay_steps
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _format_epoch(metrics: dict[str, Any], epochs: int) -> str:
    val = (
        f"val top1 {metrics['val_top1']:.1f}% top5 {metrics['val_top5']:.1f}%"
        if metrics["val_top1"] is not None
        else "val -"
    )
    return (
        f"epoch {metrics['epoch']}/{epochs}: loss {metrics['train_loss']:.4f}, "
        f"train top1 {metrics['train_top1']:.1f}%, {val}, lr {metrics['lr']:.3g}, "
        f"{metrics['seconds']:.1f}s"
    )


def _save_checkpoint(
    model: nn.Module,
    path: str | Path,
    config: ResNet3dConfig,
    train_cfg: TrainConfig,
    num_classes: int,
) -> None:
    """Write ``{"state_dict", "meta"}`` atomically (a temporary file, then a rename).

    NOTE: atomic because workers on several machines may share the folder: a reader never sees
    half a file, and a crash mid-write leaves only a ``.tmp`` file behind.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "config": config.to_dict(),
        "train_config": train_cfg.to_dict(),
        "num_classes": num_classes,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    torch.save({"state_dict": state, "meta": meta}, partial)
    os.replace(partial, target)


# ---------------------------------------------------------------------- seeding
@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed python, numpy and torch; on CPU also demand deterministic algorithms.

    NOTE: deterministic algorithms are switched on only for CPU, where every op the loop uses
    has a deterministic kernel; on CUDA several (e.g. adaptive pooling backward) do not, and
    exact GPU reproducibility is not promised. The previous setting is restored afterwards.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


@contextmanager
def _threads(num_threads: int | None) -> Iterator[None]:
    """Use ``num_threads`` intra-op threads inside the block, then restore the old count."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _resolve_flag(name: str, value: bool | str, device: torch.device) -> bool:
    if value == "auto":
        return device.type == "cuda"
    if name == "amp" and value and device.type != "cuda":
        raise ConfigError(f"amp=True needs a CUDA device; got device {str(device)!r}")
    return bool(value)


def _release_memory(device: torch.device) -> None:
    """Collect unreachable tensors and hand cached CUDA blocks back to the driver."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _memory_snapshot(device: torch.device) -> dict[str, float]:
    """Memory figures in MiB: CUDA allocator state, or the process's resident set."""
    if device.type == "cuda":
        return {
            "allocated_mb": torch.cuda.memory_allocated(device) / _MIB,
            "reserved_mb": torch.cuda.memory_reserved(device) / _MIB,
            "total_mb": torch.cuda.get_device_properties(device).total_memory / _MIB,
        }
    status = _proc_status()
    peak = status.get("VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return {"rss_mb": status.get("VmRSS", float("nan")) / 1024, "peak_rss_mb": peak / 1024}


def _proc_status() -> dict[str, float]:
    """``/proc/self/status`` memory lines in KiB (empty off Linux)."""
    try:
        with open("/proc/self/status") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return {}
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = float(rest.split()[0])
    return values


def _reset_peak_memory(device: torch.device) -> str:
    """Reset the peak-memory counter when possible; return what the peak will measure."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda_max_allocated"
    try:
        # "5" resets only the resident-set high-water mark (Linux >= 4.0).
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return "process_peak_rss_lifetime"
    return "process_peak_rss"


def _peak_memory_mb(device: torch.device, source: str) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / _MIB
    if source == "process_peak_rss":
        return _proc_status().get("VmHWM", float("nan")) / 1024
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}; got {value!r}")


def _check_number(
    name: str,
    value: Any,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    """A finite real in [low, high) (or (low, ...) when ``low_open``)."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (high is None or value < high)
    )
    if not ok:
        low_text = f"> {low}" if low_open else f">= {low}"
        bound = f"{low_text} and < {high}" if high is not None else low_text
        raise ConfigError(f"{name} must be a finite number {bound}; got {value!r}")
