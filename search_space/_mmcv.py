"""The one place that hands layer cfgs to mmcv's registry, when a module is built.

Configs are validated against the static table of :mod:`search_space.layer_types` (pure
Python); mmcv's registry is consulted only here, when a layer is about to be built, so an mmcv
build without one of the table's types is a one-line :class:`ConfigError` instead of a
``KeyError`` deep inside ``ConvModule``. The helpers hand out private copies, because mmcv pops
keys from the dicts it gets.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from search_space.errors import ConfigError


@functools.cache
def _registered(name: str) -> bool:
    import mmcv.cnn  # noqa: F401  (registers mmcv's layers with mmengine's MODELS)
    from mmengine.registry import MODELS

    return MODELS.get(name) is not None


def layer_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """A private deep copy of a layer cfg, safe to hand to mmcv (which mutates what it gets).

    Raises:
        ConfigError: the installed mmcv has no layer registered under ``cfg["type"]``.
    """
    name = cfg.get("type")
    if isinstance(name, str) and not _registered(name):
        import mmcv

        raise ConfigError(
            f"layer type {name!r} is not registered in the installed mmcv {mmcv.__version__}; "
            "install an mmcv that has it or choose another type"
        )
    return copy.deepcopy(cfg)
