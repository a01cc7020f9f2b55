"""The one place that talks to mmcv's layer registry.

mmcv builds layers from ``dict(type=..., **options)``; these helpers check a dict names a
registered layer before anything is built (so a typo is a one-line :class:`ConfigError`, not
a ``KeyError`` deep inside ``ConvModule``) and hand out private copies, because mmcv pops keys.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Literal

from search_space.errors import ConfigError

LayerKind = Literal["conv", "norm", "act"]

# NOTE: the common choices, listed in error messages; any name registered in mmcv is accepted.
_SUGGESTED = {
    "conv": ("Conv3d",),
    "norm": ("BN3d", "SyncBN", "GN", "IN3d", "LN"),
    "act": ("ReLU", "LeakyReLU", "GELU", "SiLU", "ReLU6", "PReLU", "ELU"),
}


@functools.cache
def _registered(name: str) -> bool:
    import mmcv.cnn  # noqa: F401  (registers mmcv's layers with mmengine's MODELS)
    from mmengine.registry import MODELS

    return MODELS.get(name) is not None


def check_layer_cfg(field: str, cfg: Any, *, kind: LayerKind) -> None:
    """Raise :class:`ConfigError` unless ``cfg`` is ``dict(type=<registered layer>, ...)``."""
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ConfigError(
            f"{field} must be a dict with a 'type' key, e.g. {{'type': '{_SUGGESTED[kind][0]}'}}; "
            f"got {cfg!r}"
        )
    name = cfg["type"]
    if not isinstance(name, str) or not _registered(name):
        raise ConfigError(
            f"{field}.type must name a layer registered in mmcv "
            f"(e.g. {', '.join(_SUGGESTED[kind])}); got {name!r}"
        )
    if kind == "conv" and name in ("Conv1d", "Conv2d", "Conv"):
        raise ConfigError(f"{field}.type must be a 3D convolution such as 'Conv3d'; got {name!r}")


def layer_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """A private deep copy of a layer cfg, safe to hand to mmcv (which mutates what it gets)."""
    return copy.deepcopy(cfg)
