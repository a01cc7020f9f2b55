"""The training loop of one trial: epochs, steps, evaluation, schedule and seeding.

:class:`TrainingRun` holds the mutable state of one call of
:func:`runners.training.accuracy.train_and_evaluate` (settings, where the loop is, what it
measured) and runs it; a failure names the epoch and step it happened in
(:meth:`TrainingRun.position`). The recipe follows mmaction2's I3D schedule in miniature: SGD (or
AdamW) with weight decay on every parameter, linear warm-up then cosine decay to zero evaluated per
step (:class:`Schedule`), optional label smoothing, AMP (float16 autocast + ``GradScaler``) and
``channels_last_3d`` on CUDA.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from runners.data.datasets import build_loader
from runners.model import Recognizer3D, build_recognizer
from runners.training.config import TrainConfig
from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError, TrialFailure

__all__ = [
    "EpochCallback",
    "NonFiniteLoss",
    "Schedule",
    "TrainingRun",
    "build_optimizer",
    "format_epoch",
    "resolve_flag",
    "seeded",
    "torch_threads",
]

EpochCallback = Callable[[int, dict[str, Any]], None]


class NonFiniteLoss(TrialFailure):
    """Raised inside the loop; the caller re-raises a plain TrialFailure once memory is freed."""


@dataclass(kw_only=True, slots=True)
class TrainingRun:
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
        optimizer = build_optimizer(model, cfg)
        train_loader = self.loader(train_set, train=True)
        val_loader = self.loader(val_set, train=False)
        self.steps_per_epoch = len(train_loader)
        total_steps = cfg.epochs * self.steps_per_epoch
        warmup_steps = round(cfg.warmup_epochs * self.steps_per_epoch)
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        schedule = Schedule(cfg.lr, warmup_steps, total_steps)
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
                val_top1, val_top5 = self.evaluate(model, val_loader)
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
                print(format_epoch(metrics, cfg.epochs), file=sys.stderr, flush=True)
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
        schedule: Schedule,
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
                raise NonFiniteLoss(
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

    def loader(self, dataset: Dataset, *, train: bool) -> DataLoader:
        """The seeded loader of a split (shuffled, last batch dropped, when ``train``)."""
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

    def evaluate(self, model: nn.Module, loader: DataLoader) -> tuple[float, float]:
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


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass(frozen=True, slots=True)
class Schedule:
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


def format_epoch(metrics: dict[str, Any], epochs: int) -> str:
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


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed python, numpy and torch inside the block; on CPU also demand deterministic algorithms.

    Library manners: the global generators (python, numpy, torch CPU and the CUDA device) and
    the deterministic-algorithms setting are restored afterwards, so a call leaves the caller's
    random streams where they were.

    NOTE: deterministic algorithms are switched on only for CPU, where every op the loop uses
    has a deterministic kernel; on CUDA several (e.g. adaptive pooling backward) do not, and
    exact GPU reproducibility is not promised.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    cuda_devices = []
    if device.type == "cuda":
        cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=cuda_devices):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous, warn_only=previous_warn)
            random.setstate(python_state)
            np.random.set_state(numpy_state)


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Use ``num_threads`` intra-op threads inside the block, then restore the old count."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_flag(name: str, value: bool | str, device: torch.device) -> bool:
    if value == "auto":
        return device.type == "cuda"
    if name == "amp" and value and device.type != "cuda":
        raise ConfigError(f"amp=True needs a CUDA device; got device {str(device)!r}")
    return bool(value)
