"""search_space: the ResNet3d generator, its typed config and the arithmetic around it."""

from __future__ import annotations

from search_space.blocks import BasicBlock3d, Bottleneck3d, make_res_layer
from search_space.config import ARCH_SETTINGS, InflateStyle, ResNet3dConfig, Style
from search_space.errors import ConfigError, MissingDependencyError, R3dnasError, TrialFailure
from search_space.plan import NetworkPlan, plan_network
from search_space.presets import PRESETS, preset, preset_names
from search_space.pretrained2d import LoadReport, load_checkpoint_3d, load_inflated_2d
from search_space.resnet3d import ResNet3d, build_resnet3d
from search_space.shapes import ShapeTable, output_shapes, parse_input_shape

__all__ = [
    "ARCH_SETTINGS",
    "BasicBlock3d",
    "Bottleneck3d",
    "ConfigError",
    "InflateStyle",
    "LoadReport",
    "MissingDependencyError",
    "NetworkPlan",
    "PRESETS",
    "R3dnasError",
    "ResNet3d",
    "ResNet3dConfig",
    "ShapeTable",
    "Style",
    "TrialFailure",
    "build_resnet3d",
    "load_checkpoint_3d",
    "load_inflated_2d",
    "make_res_layer",
    "output_shapes",
    "parse_input_shape",
    "plan_network",
    "preset",
    "preset_names",
]
