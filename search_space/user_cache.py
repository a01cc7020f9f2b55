"""Where r3dnas keeps what it computed once for every later process: ``$R3DNAS_CACHE_DIR``,
else ``~/.cache/r3dnas`` (the latency baselines, the cost-aware sampler's enumerations).

One home for the rule, in the bottom package so that ``runners`` and ``studies`` share it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The user's r3dnas cache folder (not created here)."""
    return Path(os.environ.get("R3DNAS_CACHE_DIR") or str(Path.home() / ".cache" / "r3dnas"))
