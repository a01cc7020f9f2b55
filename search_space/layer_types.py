"""The layer types a ResNet3d config may name, as one static table (no mmcv import).

mmcv builds layers from ``dict(type=..., **options)``. A config is validated against this table,
not against mmcv's registry, so validating one stays pure Python and a type the project cannot
cost (``"LN"``, a 2D norm, a transposed conv) is refused when the config is made, not later by
:func:`search_space.cost.cost`. The table holds exactly the types the analytic cost model has a
rule for; a test checks that mmcv registers each of them. mmcv's registry itself is consulted
only when a module is built (:mod:`search_space._mmcv`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from search_space.errors import ConfigError

__all__ = [
    "ACTIVATION_TYPES",
    "BATCH_NORM_TYPES",
    "CONV_TYPES",
    "LAYER_TYPES",
    "NORM_TYPES",
    "STATS_NORM_AFFINE",
    "LayerKind",
    "check_layer_cfg",
]

LayerKind = Literal["conv", "norm", "act"]

CONV_TYPES = ("Conv3d",)
# Batch norms: an affine map in eval mode (with running statistics).
BATCH_NORM_TYPES = ("BN3d", "SyncBN")
# Norms over statistics of the input -> whether mmcv makes them affine by default.
STATS_NORM_AFFINE: Mapping[str, bool] = {"GN": True, "IN3d": False}
NORM_TYPES = (*BATCH_NORM_TYPES, *STATS_NORM_AFFINE)
ACTIVATION_TYPES = (
    "ReLU", "LeakyReLU", "PReLU", "RReLU", "ReLU6", "ELU", "Sigmoid", "Tanh", "Clamp", "Clip",
    "GELU", "HSigmoid", "HSwish", "SiLU", "Swish",
)  # fmt: skip
LAYER_TYPES: Mapping[LayerKind, tuple[str, ...]] = {
    "conv": CONV_TYPES,
    "norm": NORM_TYPES,
    "act": ACTIVATION_TYPES,
}


def check_layer_cfg(field: str, cfg: object, *, kind: LayerKind) -> None:
    """Raise :class:`ConfigError` unless ``cfg`` is ``dict(type=<a type of LAYER_TYPES>, ...)``."""
    allowed = LAYER_TYPES[kind]
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ConfigError(
            f"{field} must be a dict with a 'type' key, e.g. {{'type': '{allowed[0]}'}}; "
            f"got {cfg!r}"
        )
    name = cfg["type"]
    if name not in allowed:
        raise ConfigError(
            f"{field}.type must be one of {', '.join(map(repr, allowed))}; got {name!r}"
        )
