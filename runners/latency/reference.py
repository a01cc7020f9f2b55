"""A fixed reference network, timed beside every measured one, so latency survives machine drift.

Why: on a shared machine (a cloud VM, a box whose other tenants come and go) the speed of the
whole CPU drifts by tens of percent over seconds to minutes, whatever this process does. Measured
here on the project's 2-core VM, with nothing else of ours running: 40 networks of the ``bench``
space timed twice (forward order, then reverse) agreed within ±10% for only 40% of them by
their median of 200 runs (Spearman 0.36 between the two passes), and the ratio between the
passes followed the clock (0.7 early, 1.5 mid-way), not the network. Timed in alternating
blocks with this module's reference network and divided by the reference's time from the same
blocks, the same networks agreed within ±10% for 100% (10th percentile) and 95% (minimum), with
Spearman 0.95-0.97: drift slows both sides of the ratio alike.

The ratio is turned back into milliseconds by a **baseline**: the reference's own time on this
machine at this thread count, measured once (a long measurement) and kept in a small JSON file
(``$R3DNAS_CACHE_DIR``, else ``~/.cache/r3dnas``), so every process and every study on the
machine uses the same scale. Absolute milliseconds are therefore as good as that one baseline;
ratios between networks are what the reference makes stable. Delete the file (or
:func:`forget_baselines`) to measure the baseline again, e.g. after a hardware change.

The reference is a fixed, seeded stack of the operations ResNet3d spends its time in (3D
convolutions with BN and ReLU, a max pool, a residual add), 1 x 3 x 8 x 32 x 32: about 2-3 ms
on one CPU thread, comparable to the networks it is timed beside. It always runs eager, even
when the measured network is compiled: it measures the machine, not the mode.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from search_space.user_cache import cache_dir

__all__ = [
    "REFERENCE_INPUT",
    "REFERENCE_VERSION",
    "baseline_path",
    "forget_baselines",
    "reference_network",
]

REFERENCE_INPUT = (1, 3, 8, 32, 32)
# NOTE: bump when the network or its input changes: cached baselines of another version are
# never used.
REFERENCE_VERSION = "ref-v1"


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(channels, channels, (3, 3, 3), padding=1, bias=False),
            nn.BatchNorm3d(channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


def reference_network() -> nn.Module:
    """The reference (eval mode, CPU, seeded: the same weights in every process)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv3d(3, 16, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2), bias=False),
            nn.BatchNorm3d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            _Residual(16),
            nn.Conv3d(16, 32, 1, stride=(2, 2, 2), bias=False),
            _Residual(32),
            nn.AdaptiveAvgPool3d(1),
        )
    return net.eval()


def baseline_path() -> Path:
    """Where baselines are kept: ``$R3DNAS_CACHE_DIR/latency-baselines.json`` (default
    ``~/.cache/r3dnas``)."""
    return cache_dir() / "latency-baselines.json"


def baseline_key(device: str, threads: int) -> str:
    """A baseline holds for one reference version, device name and thread count."""
    return f"{REFERENCE_VERSION}|{device}|{threads}"


def load_baseline(key: str) -> float | None:
    """The cached baseline (ms) for ``key``, or ``None``; an unreadable file counts as empty."""
    try:
        value = json.loads(baseline_path().read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) and value > 0 else None


def store_baseline(key: str, ms: float) -> float:
    """Keep ``ms`` for ``key`` unless another process stored one first; return the kept value.

    Written atomically (temporary file, then rename), so a reader never sees half a file.
    """
    path = baseline_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    kept = data.setdefault(key, ms)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".baselines-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return float(kept)


def forget_baselines() -> None:
    """Delete the cached baselines: the next referenced measurement measures its baseline."""
    baseline_path().unlink(missing_ok=True)
