"""Trained weights on disk: ``{"state_dict", "meta"}`` files that mmaction2's loader reads.

:func:`save_weights` writes a trial's weights atomically with the configuration they belong to;
:func:`load_weights` reads them back and refuses the weights of another configuration or class
count by name, so a re-evaluation can never silently score the wrong network.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from runners.training.config import TrainConfig
from runners.training.memory import first_line
from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError

__all__ = ["load_weights", "save_weights"]


def save_weights(
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


def load_weights(
    path: str | Path, config: ResNet3dConfig, num_classes: int
) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a file :func:`save_weights` wrote, checked against ``config``."""
    shown = repr(str(path))
    if not Path(path).is_file():
        raise ConfigError(f"checkpoint {shown} not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # NOTE: torch raises several types for a corrupt or foreign file
        raise ConfigError(f"checkpoint {shown} is not readable: {first_line(exc)}") from exc
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
