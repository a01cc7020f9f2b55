"""The layer-by-layer plan of a ResNet3d, computed from its config alone.

One source of truth for every kernel, stride, padding and channel count: the module builder
(``resnet3d.py``), the shape inference (``shapes.py``) and the analytic cost model all walk the
same :class:`NetworkPlan`, so they cannot disagree about the architecture.

The rules are the seed's (``BasicBlock3d`` / ``Bottleneck3d`` / ``make_res_layer`` of mmaction2):

=====================  ======================  ======================
Bottleneck case        conv1 kernel / padding  conv2 kernel / padding
=====================  ======================  ======================
inflated, '3x1x1'      (3,1,1) / (1,0,0)       (1,3,3) / (0,d,d)
inflated, '3x3x3'      (1,1,1) / (0,0,0)       (3,3,3) / (1,d,d)
not inflated           (1,1,1) / (0,0,0)       (1,3,3) / (0,d,d)
=====================  ======================  ======================

A BasicBlock's conv1 is (3,3,3)/(1,d,d) or (1,3,3)/(0,d,d) with dilation (1,d,d) and carries the
stride whatever the style; its conv2 is (3,3,3)/(1,1,1) or (1,3,3)/(0,1,1), undilated.

Each rule is written once, here: :func:`plan_stem` and :func:`plan_pool1` for the stem,
:func:`plan_block` for one block, :func:`plan_res_layer` for a stage (stride and downsample on
the first block only). ``blocks.make_res_layer`` and ``cost.cost`` call them rather than
restate them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from search_space.arch import EXPANSION, BlockType, InflateStyle, Style, has_downsample
from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError

__all__ = [
    "BlockPlan",
    "ConvSpec",
    "NetworkPlan",
    "POOL2",
    "PoolSpec",
    "StagePlan",
    "plan_block",
    "plan_network",
    "plan_pool1",
    "plan_res_layer",
    "plan_stage",
    "plan_stem",
]

Triple = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class ConvSpec:
    """One ``ConvModule``: bias-free conv, then norm, then (if ``with_act``) the activation."""

    in_channels: int
    out_channels: int
    kernel: Triple
    stride: Triple = (1, 1, 1)
    padding: Triple = (0, 0, 0)
    dilation: Triple = (1, 1, 1)
    with_act: bool = True


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """One ``nn.MaxPool3d`` (floor mode)."""

    kernel: Triple
    stride: Triple
    padding: Triple = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class BlockPlan:
    """One residual block: ``relu(convs(x) + downsample(x))``, then an optional non-local."""

    block_type: BlockType
    convs: tuple[ConvSpec, ...]
    downsample: ConvSpec | None
    non_local: bool
    out_channels: int


@dataclass(frozen=True, slots=True)
class StagePlan:
    name: str  # "layer1".."layer4", the mmaction2 attribute name
    blocks: tuple[BlockPlan, ...]


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    stem: ConvSpec
    pool1: PoolSpec | None
    pool2: PoolSpec | None
    stages: tuple[StagePlan, ...]
    # mmcv's NonLocal3d(sub_sample=True) max-pools g and phi by (1, 2, 2): H and W must be >= 2.
    non_local_sub_sample: bool = False


def plan_stem(config: ResNet3dConfig) -> ConvSpec:
    """conv1: ``conv1_kernel`` with "same" padding, strides ``(conv1_stride_t, s, s)``."""
    kt, kh, kw = config.conv1_kernel
    return ConvSpec(
        in_channels=config.in_channels,
        out_channels=config.base_channels,
        kernel=(kt, kh, kw),
        stride=(config.conv1_stride_t, config.conv1_stride_s, config.conv1_stride_s),
        padding=((kt - 1) // 2, (kh - 1) // 2, (kw - 1) // 2),
    )


def plan_block(
    *,
    block_type: BlockType,
    inplanes: int,
    planes: int,
    spatial_stride: int,
    temporal_stride: int,
    dilation: int,
    style: Style | str,
    inflate: bool,
    inflate_style: InflateStyle | str,
    non_local: bool,
    with_downsample: bool,
) -> BlockPlan:
    """The convs of one block, following the seed's kernel/stride/padding rules."""
    d = dilation
    stride: Triple = (temporal_stride, spatial_stride, spatial_stride)
    downsample = None
    if block_type == BlockType.BASIC:
        out_channels = planes
        if inflate:
            k1, p1, k2, p2 = (3, 3, 3), (1, d, d), (3, 3, 3), (1, 1, 1)
        else:
            k1, p1, k2, p2 = (1, 3, 3), (0, d, d), (1, 3, 3), (0, 1, 1)
        convs: tuple[ConvSpec, ...] = (
            ConvSpec(inplanes, planes, k1, stride, p1, (1, d, d)),
            ConvSpec(planes, planes, k2, (1, 1, 1), p2, with_act=False),
        )
    else:
        out_channels = planes * 4
        if not inflate:
            k1, p1, k2, p2 = (1, 1, 1), (0, 0, 0), (1, 3, 3), (0, d, d)
        elif inflate_style == InflateStyle.T3X1X1:
            k1, p1, k2, p2 = (3, 1, 1), (1, 0, 0), (1, 3, 3), (0, d, d)
        else:
            k1, p1, k2, p2 = (1, 1, 1), (0, 0, 0), (3, 3, 3), (1, d, d)
        if style == Style.PYTORCH:
            s1, s2 = (1, 1, 1), stride
        else:
            s1, s2 = stride, (1, 1, 1)
        convs = (
            ConvSpec(inplanes, planes, k1, s1, p1),
            ConvSpec(planes, planes, k2, s2, p2, (1, d, d)),
            ConvSpec(planes, out_channels, (1, 1, 1), with_act=False),
        )
    if with_downsample:
        downsample = ConvSpec(inplanes, out_channels, (1, 1, 1), stride, with_act=False)
    return BlockPlan(block_type, convs, downsample, non_local, out_channels)


@functools.lru_cache(maxsize=1 << 14)
def plan_res_layer(
    *,
    block_type: BlockType,
    inplanes: int,
    planes: int,
    spatial_stride: int,
    temporal_stride: int,
    dilation: int,
    style: Style | str,
    inflate: tuple[int, ...],
    inflate_style: InflateStyle | str,
    non_local: tuple[int, ...],
) -> tuple[BlockPlan, ...]:
    """The blocks of one stage, one per entry of ``inflate`` (mmaction2's ``make_res_layer``).

    The first block takes the strides and, when :func:`~search_space.arch.has_downsample`
    says so, a 1x1x1 downsample; the others map ``planes * expansion`` channels to as many
    and keep the size. A block is inflated (has a non-local) when its entry ``== 1``.
    Memoised: the arguments are hashable and the plans immutable.

    Raises:
        ConfigError: ``inflate`` and ``non_local`` do not have one entry per block.
    """
    if len(inflate) != len(non_local) or not inflate:
        raise ConfigError(
            f"inflate and non_local must have one entry per block (at least one); "
            f"got {list(inflate)} and {list(non_local)}"
        )
    out_channels = planes * EXPANSION[block_type]
    downsample = has_downsample(
        inplanes=inplanes, out_channels=out_channels, spatial_stride=spatial_stride
    )
    blocks = []
    for b, (inflate_bit, non_local_bit) in enumerate(zip(inflate, non_local, strict=True)):
        first = b == 0
        blocks.append(
            plan_block(
                block_type=block_type,
                inplanes=inplanes if first else out_channels,
                planes=planes,
                spatial_stride=spatial_stride if first else 1,
                temporal_stride=temporal_stride if first else 1,
                dilation=dilation,
                style=style,
                inflate=inflate_bit == 1,
                inflate_style=inflate_style,
                non_local=non_local_bit == 1,
                with_downsample=downsample and first,
            )
        )
    return tuple(blocks)


def plan_stage(config: ResNet3dConfig, index: int, inplanes: int) -> StagePlan:
    """``layer{index+1}`` of ``config``, whose input has ``inplanes`` channels."""
    blocks = plan_res_layer(
        block_type=config.block_type,
        inplanes=inplanes,
        planes=config.base_channels * 2**index,
        spatial_stride=config.spatial_strides[index],
        temporal_stride=config.temporal_strides[index],
        dilation=config.dilations[index],
        style=config.style,
        inflate=config.inflate[index],
        inflate_style=config.inflate_style,
        non_local=config.non_local[index],
    )
    return StagePlan(f"layer{index + 1}", blocks)


def plan_pool1(config: ResNet3dConfig) -> PoolSpec:
    """The stem's max-pool, (1, 3, 3) with strides ``(pool1_stride_t, s, s)``.

    mmaction2 builds it whatever ``with_pool1`` says; ``forward`` skips it when it is false.
    """
    return PoolSpec(
        kernel=(1, 3, 3),
        stride=(config.pool1_stride_t, config.pool1_stride_s, config.pool1_stride_s),
        padding=(0, 1, 1),
    )


# pool2 halves T after layer1 (mmaction2's MaxPool3d((2, 1, 1), (2, 1, 1))).
POOL2 = PoolSpec(kernel=(2, 1, 1), stride=(2, 1, 1))


def plan_network(config: ResNet3dConfig) -> NetworkPlan:
    """The full plan: stem conv, pool1 (if enabled), pool2 (if enabled), then the stages."""
    pool1 = plan_pool1(config) if config.with_pool1 else None
    pool2 = POOL2 if config.with_pool2 else None
    stages = []
    inplanes = config.base_channels
    for i in range(config.num_stages):
        stage = plan_stage(config, i, inplanes)
        stages.append(stage)
        inplanes = stage.blocks[-1].out_channels
    sub_sample = bool(config.non_local_cfg.get("sub_sample", False))
    return NetworkPlan(plan_stem(config), pool1, pool2, tuple(stages), sub_sample)
