"""Device names (``auto``, ``cpu``, ``cuda``, ``cuda:N``), resolved alike by every runner."""

from __future__ import annotations

import re

import torch

from search_space.errors import ConfigError

__all__ = ["DEVICE_PATTERN", "resolve_device"]

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> ``cuda`` when available else ``cpu``; a CUDA device must exist."""
    if not DEVICE_PATTERN.match(device):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} needs CUDA, which this torch build or machine lacks; "
                "use 'auto' or 'cpu'"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ConfigError(
                f"device {device!r} does not exist; this machine has {count} CUDA device(s) "
                f"(cuda:0..cuda:{count - 1})"
            )
    return resolved
