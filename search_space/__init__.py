"""search_space: the ResNet3d generator, its typed config and the arithmetic around it.

Configs, shapes, costs, spaces and presets are pure Python and imported here directly. The
modules that need torch and mmcv (the network itself) load on first use of one of their names,
so tools that only reason about configurations (the CLI's ``--help``, a 100,000-config cost
sweep) never pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from search_space.canonical import canonicalize
from search_space.config import ARCH_SETTINGS, InflateStyle, ResNet3dConfig, Style
from search_space.cost import CostResult, cost
from search_space.dimensions import PATTERN_FAMILIES, Choice, Fixed, expand_pattern
from search_space.errors import (
    ConfigError,
    ConfigTypeError,
    DataError,
    InputTooSmallError,
    MissingDependencyError,
    R3dnasError,
    TrialFailure,
)
from search_space.plan import NetworkPlan, plan_network
from search_space.presets import PRESETS, preset, preset_names
from search_space.shapes import ShapeTable, output_shapes, parse_input_shape
from search_space.space import InfeasibleConfig, SearchSpace, load_space, shipped_spaces

if TYPE_CHECKING:
    from search_space.blocks import BasicBlock3d, Bottleneck3d, make_res_layer
    from search_space.pretrained2d import LoadReport, load_checkpoint_3d, load_inflated_2d
    from search_space.resnet3d import ResNet3d, build_resnet3d

# NOTE: names that need torch, and the module that defines each (loaded on first access).
_TORCH_NAMES = {
    "BasicBlock3d": "search_space.blocks",
    "Bottleneck3d": "search_space.blocks",
    "make_res_layer": "search_space.blocks",
    "LoadReport": "search_space.pretrained2d",
    "load_checkpoint_3d": "search_space.pretrained2d",
    "load_inflated_2d": "search_space.pretrained2d",
    "ResNet3d": "search_space.resnet3d",
    "build_resnet3d": "search_space.resnet3d",
}


def __getattr__(name: str) -> Any:
    module = _TORCH_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'search_space' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ARCH_SETTINGS",
    "PATTERN_FAMILIES",
    "PRESETS",
    "BasicBlock3d",
    "Bottleneck3d",
    "Choice",
    "ConfigError",
    "ConfigTypeError",
    "CostResult",
    "DataError",
    "Fixed",
    "InfeasibleConfig",
    "InflateStyle",
    "InputTooSmallError",
    "LoadReport",
    "MissingDependencyError",
    "NetworkPlan",
    "R3dnasError",
    "ResNet3d",
    "ResNet3dConfig",
    "SearchSpace",
    "ShapeTable",
    "Style",
    "TrialFailure",
    "build_resnet3d",
    "canonicalize",
    "cost",
    "expand_pattern",
    "load_checkpoint_3d",
    "load_inflated_2d",
    "load_space",
    "make_res_layer",
    "output_shapes",
    "parse_input_shape",
    "plan_network",
    "preset",
    "preset_names",
    "shipped_spaces",
]
