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
    "StageArgs",
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


@dataclass(frozen=True, slots=True)
class StageArgs:
    """What decides one stage's blocks: mmaction2's ``make_res_layer`` arguments, resolved.

    One value holds them so that the planner and the memoised cost walk take (and cache on) the
    same hashable key. A block is inflated (has a non-local) when its entry ``== 1``.
    """

    block_type: BlockType
    inplanes: int
    planes: int
    spatial_stride: int
    temporal_stride: int
    dilation: int
    style: Style | str
    inflate: tuple[int, ...]
    inflate_style: InflateStyle | str
    non_local: tuple[int, ...]

    @classmethod
    def of(cls, config: ResNet3dConfig, index: int, inplanes: int) -> StageArgs:
        """``layer{index+1}`` of ``config``, whose input has ``inplanes`` channels."""
        return cls(
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

    @property
    def out_channels(self) -> int:
        return self.planes * EXPANSION[self.block_type]


def plan_block(stage: StageArgs, index: int) -> BlockPlan:
    """Block ``index`` of ``stage``, following the seed's kernel/stride/padding rules.

    The first block takes the strides and, when :func:`~search_space.arch.has_downsample` says
    so, a 1x1x1 downsample; the others map ``planes * expansion`` channels to as many and keep
    the size.
    """
    first = index == 0
    planes, out_channels = stage.planes, stage.out_channels
    inplanes = stage.inplanes if first else out_channels
    d = stage.dilation
    stride: Triple = (
        (stage.temporal_stride, stage.spatial_stride, stage.spatial_stride) if first else (1, 1, 1)
    )
    inflate = stage.inflate[index] == 1
    if stage.block_type == BlockType.BASIC:
        if inflate:
            k1, p1, k2, p2 = (3, 3, 3), (1, d, d), (3, 3, 3), (1, 1, 1)
        else:
            k1, p1, k2, p2 = (1, 3, 3), (0, d, d), (1, 3, 3), (0, 1, 1)
        convs: tuple[ConvSpec, ...] = (
            ConvSpec(inplanes, planes, k1, stride, p1, (1, d, d)),
            ConvSpec(planes, planes, k2, (1, 1, 1), p2, with_act=False),
        )
    else:
        if not inflate:
            k1, p1, k2, p2 = (1, 1, 1), (0, 0, 0), (1, 3, 3), (0, d, d)
        elif stage.inflate_style == InflateStyle.T3X1X1:
            k1, p1, k2, p2 = (3, 1, 1), (1, 0, 0), (1, 3, 3), (0, d, d)
        else:
            k1, p1, k2, p2 = (1, 1, 1), (0, 0, 0), (3, 3, 3), (1, d, d)
        if stage.style == Style.PYTORCH:
            s1, s2 = (1, 1, 1), stride
        else:
            s1, s2 = stride, (1, 1, 1)
        convs = (
            ConvSpec(inplanes, planes, k1, s1, p1),
            ConvSpec(planes, planes, k2, s2, p2, (1, d, d)),
            ConvSpec(planes, out_channels, (1, 1, 1), with_act=False),
        )
    downsample = None
    if first and has_downsample(
        inplanes=stage.inplanes, out_channels=out_channels, spatial_stride=stage.spatial_stride
    ):
        downsample = ConvSpec(inplanes, out_channels, (1, 1, 1), stride, with_act=False)
    non_local = stage.non_local[index] == 1
    return BlockPlan(stage.block_type, convs, downsample, non_local, out_channels)


@functools.lru_cache(maxsize=1 << 14)
def plan_res_layer(stage: StageArgs) -> tuple[BlockPlan, ...]:
    """The blocks of one stage, one per entry of ``inflate`` (mmaction2's ``make_res_layer``).

    Memoised: the arguments are hashable and the plans immutable.

    Raises:
        ConfigError: ``inflate`` and ``non_local`` do not have one entry per block.
    """
    if len(stage.inflate) != len(stage.non_local) or not stage.inflate:
        raise ConfigError(
            f"inflate and non_local must have one entry per block (at least one); "
            f"got {list(stage.inflate)} and {list(stage.non_local)}"
        )
    return tuple(plan_block(stage, b) for b in range(len(stage.inflate)))


def plan_stage(config: ResNet3dConfig, index: int, inplanes: int) -> StagePlan:
    """``layer{index+1}`` of ``config``, whose input has ``inplanes`` channels."""
    return StagePlan(f"layer{index + 1}", plan_res_layer(StageArgs.of(config, index, inplanes)))


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
