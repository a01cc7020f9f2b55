"""The closed choices of a ResNet3d: block types, strides' placement, inflation styles, depths.

Plain enums and mmaction2's ``arch_settings`` table, with no dependency of their own, so the
config (:mod:`search_space.config`), its canonical form (:mod:`search_space.canonical`) and the
plan (:mod:`search_space.plan`) all read them without importing each other.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ARCH_SETTINGS", "EXPANSION", "BlockType", "InflateStyle", "Style", "has_downsample"]


class InflateStyle(StrEnum):
    """Where an inflated Bottleneck puts its temporal kernel."""

    T3X1X1 = "3x1x1"  # conv1 becomes (3,1,1): the I3D / SlowOnly choice
    T3X3X3 = "3x3x3"  # conv2 becomes (3,3,3): the C3D-like choice


class Style(StrEnum):
    """Which Bottleneck conv carries the stride."""

    PYTORCH = "pytorch"  # conv2 (the 3x3) strides
    CAFFE = "caffe"  # conv1 (the 1x1) strides


class BlockType(StrEnum):
    BASIC = "basic"  # BasicBlock3d, expansion 1
    BOTTLENECK = "bottleneck"  # Bottleneck3d, expansion 4


# depth -> (block type, blocks per stage), mmaction2's ``ResNet3d.arch_settings``.
ARCH_SETTINGS: dict[int, tuple[BlockType, tuple[int, int, int, int]]] = {
    18: (BlockType.BASIC, (2, 2, 2, 2)),
    34: (BlockType.BASIC, (3, 4, 6, 3)),
    50: (BlockType.BOTTLENECK, (3, 4, 6, 3)),
    101: (BlockType.BOTTLENECK, (3, 4, 23, 3)),
    152: (BlockType.BOTTLENECK, (3, 8, 36, 3)),
}
# Output channels of a block per ``planes``.
EXPANSION = {BlockType.BASIC: 1, BlockType.BOTTLENECK: 4}


def has_downsample(*, inplanes: int, out_channels: int, spatial_stride: int) -> bool:
    """Whether a stage's first block gets a 1x1x1 downsample branch (mmaction2's rule).

    Only a spatial stride or a change of channel count builds one: a temporal stride alone does
    not, so the residual add would fail (the config rejects that case).
    """
    return spatial_stride != 1 or inplanes != out_channels
