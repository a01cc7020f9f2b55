"""Residual blocks of ResNet3d, built from mmcv's ``ConvModule`` and ``NonLocal3d``.

Blocks are plain holders of what :mod:`search_space.plan` computed: every kernel, stride and
padding comes from a :class:`~search_space.plan.BlockPlan`. Attribute names (``conv1``,
``conv2``, ``conv3``, ``downsample``, ``relu``, ``non_local_block``) exist because they are
mmaction2's ``state_dict`` keys.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.utils.checkpoint as checkpoint
from mmcv.cnn import ConvModule, NonLocal3d, build_activation_layer
from torch import nn

from search_space._mmcv import layer_cfg
from search_space.arch import BlockType, InflateStyle, Style
from search_space.errors import ConfigError
from search_space.plan import BlockPlan, ConvSpec, StageArgs, plan_res_layer

__all__ = ["BasicBlock3d", "Bottleneck3d", "build_conv_module", "make_res_layer"]


def build_conv_module(
    spec: ConvSpec,
    *,
    conv_cfg: dict[str, Any],
    norm_cfg: dict[str, Any],
    act_cfg: dict[str, Any],
) -> ConvModule:
    """conv (no bias) -> norm -> activation (when ``spec.with_act``), as mmaction2 builds it."""
    return ConvModule(
        spec.in_channels,
        spec.out_channels,
        spec.kernel,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        bias=False,
        conv_cfg=layer_cfg(conv_cfg),
        norm_cfg=layer_cfg(norm_cfg),
        act_cfg=layer_cfg(act_cfg) if spec.with_act else None,
    )


class _ResidualBlock(nn.Module):
    """Shared forward of both block types.

    ::

        x ──> conv1 ─> conv2 [─> conv3] ──(+)──> relu ──> [non_local_block] ──> out
        └──────────── [downsample] ────────┘
    """

    expansion = 1

    def __init__(
        self,
        plan: BlockPlan,
        *,
        conv_cfg: dict[str, Any],
        norm_cfg: dict[str, Any],
        act_cfg: dict[str, Any],
        non_local_cfg: dict[str, Any],
        with_cp: bool,
    ) -> None:
        super().__init__()
        self.plan = plan
        self.with_cp = with_cp
        cfgs = {"conv_cfg": conv_cfg, "norm_cfg": norm_cfg, "act_cfg": act_cfg}
        # NOTE: named conv1, conv2[, conv3] for mmaction2's state_dict keys.
        self.conv_names = tuple(f"conv{j + 1}" for j in range(len(plan.convs)))
        for name, spec in zip(self.conv_names, plan.convs, strict=True):
            self.add_module(name, build_conv_module(spec, **cfgs))
        self.downsample = (
            None if plan.downsample is None else build_conv_module(plan.downsample, **cfgs)
        )
        self.relu = build_activation_layer(layer_cfg(act_cfg))
        self.non_local = plan.non_local
        if plan.non_local:
            # NOTE: mmcv's NonLocal3d, keys layerX.Y.non_local_block.{g,theta,phi,conv_out}.
            self.non_local_block = NonLocal3d(plan.out_channels, **layer_cfg(non_local_cfg))

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for name in self.conv_names:
            out = getattr(self, name)(out)
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C_in, T, H, W) -> (N, C_out, T/st, H/ss, W/ss)
        if self.with_cp and x.requires_grad:
            out = checkpoint.checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        out = self.relu(out)
        if self.non_local:
            out = self.non_local_block(out)
        return out


class BasicBlock3d(_ResidualBlock):
    """Two 3x3(x3) convs, for ResNet3d-18/34. Stride and dilation sit on conv1."""

    expansion = 1


class Bottleneck3d(_ResidualBlock):
    """1x1 -> 3x3 -> 1x1 (x4 channels), for ResNet3d-50/101/152. Inflation per the plan."""

    expansion = 4


BLOCK_CLASSES: dict[BlockType, type[_ResidualBlock]] = {
    BlockType.BASIC: BasicBlock3d,
    BlockType.BOTTLENECK: Bottleneck3d,
}


def make_res_layer(
    block: type[_ResidualBlock],
    inplanes: int,
    planes: int,
    blocks: int,
    *,
    spatial_stride: int = 1,
    temporal_stride: int = 1,
    dilation: int = 1,
    style: Style | str = Style.PYTORCH,
    inflate: int | tuple[int, ...] = 1,
    inflate_style: InflateStyle | str = InflateStyle.T3X1X1,
    non_local: int | tuple[int, ...] = 0,
    non_local_cfg: dict[str, Any] | None = None,
    conv_cfg: dict[str, Any] | None = None,
    norm_cfg: dict[str, Any] | None = None,
    act_cfg: dict[str, Any] | None = None,
    with_cp: bool = False,
) -> nn.Sequential:
    """One stage, with mmaction2's ``make_res_layer`` arguments.

    The blocks are those :func:`search_space.plan.plan_res_layer` plans: the first takes the
    strides and, when ``spatial_stride != 1`` or the channel count changes, a 1x1x1
    downsample; the other ``blocks - 1`` keep the size.
    """
    block_type = BlockType.BASIC if block is BasicBlock3d else BlockType.BOTTLENECK
    per_block_inflate = (inflate,) * blocks if isinstance(inflate, int) else tuple(inflate)
    per_block_non_local = (non_local,) * blocks if isinstance(non_local, int) else tuple(non_local)
    if len(per_block_inflate) != blocks or len(per_block_non_local) != blocks:
        raise ConfigError(
            f"inflate and non_local must have one entry per block ({blocks}); "
            f"got {list(per_block_inflate)} and {list(per_block_non_local)}"
        )
    stage = StageArgs(
        block_type=block_type,
        inplanes=inplanes,
        planes=planes,
        spatial_stride=spatial_stride,
        temporal_stride=temporal_stride,
        dilation=dilation,
        style=style,
        inflate=per_block_inflate,
        inflate_style=inflate_style,
        non_local=per_block_non_local,
    )
    plans = plan_res_layer(stage)
    layers = [
        block(
            plan,
            conv_cfg=conv_cfg or {"type": "Conv3d"},
            norm_cfg=norm_cfg or {"type": "BN3d", "requires_grad": True},
            act_cfg=act_cfg or {"type": "ReLU", "inplace": True},
            non_local_cfg=non_local_cfg or {},
            with_cp=with_cp,
        )
        for plan in plans
    ]
    return nn.Sequential(*layers)
