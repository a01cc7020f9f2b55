"""``TrainConfig``: how one trial is trained (optimiser, schedule, device, seed), validated."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from runners._device import DEVICE_PATTERN
from search_space.errors import ConfigError
from search_space.strict import StrictConfig, check_keys, check_threads

__all__ = ["OPTIMIZERS", "TrainConfig"]

OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainConfig(StrictConfig):
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
        seed: Seeds model init, data order, dropout and the global python/numpy/torch RNGs
            for the call (their previous states are restored afterwards).
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

    config_name = "train config"

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
        self.check_ints(epochs=1, batch_size=1, eval_every=1, seed=0)
        if self.num_threads is not None:
            check_threads("num_threads", self.num_threads, extra=" or null (all cores)")
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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from ``to_dict()`` output; unknown keys are rejected by name."""
        if isinstance(data, Mapping) and "num_workers" in data:
            # NOTE: one setting, one home: the loader workers belong to the data (DataConfig),
            # which both training and the mmaction2 export read.
            raise ConfigError(
                "num_workers is no longer a train setting; move it to [data] num_workers "
                "(DataConfig.num_workers), which training and the mmaction2 export both use"
            )
        # NOTE: no super(): a slots dataclass is a new class, so zero-argument super() fails.
        return cls(**check_keys(cls, data, what=cls.config_name))


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
