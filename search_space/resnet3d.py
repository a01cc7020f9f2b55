"""``ResNet3d``: mmaction2's I3D-style inflated 3D ResNet, built from a validated config.

Same constructor arguments (positional order included), defaults, ``state_dict`` keys and
outputs as ``mmaction.models.backbones.ResNet3d`` (mmaction2 1.2), with three deliberate
differences:

* every argument is validated up front (:class:`~search_space.config.ResNet3dConfig`), so a bad
  one is a one-line :class:`ConfigError` (a ``ValueError``) where mmaction2 asserts or crashes
  mid-forward, and a wrong type a :class:`ConfigTypeError` (also a ``TypeError``, which
  mmaction2 raises for a non-string ``pretrained``);
* ``train()`` returns ``self`` (mmaction2's returns ``None``, which breaks chaining);
* ``init_weights()`` reports every 2D-checkpoint mismatch by name instead of logging some.

As in mmaction2, the constructor does not initialise weights (mmcv's ``ConvModule`` already
applies Kaiming/constant init); :func:`build_resnet3d` calls :meth:`ResNet3d.init_weights`,
which adds zero-init of the last BN of each residual branch and loads ``pretrained``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
from mmcv.cnn import ConvModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from search_space.blocks import (
    BLOCK_CLASSES,
    BasicBlock3d,
    Bottleneck3d,
    build_conv_module,
)
from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError
from search_space.plan import POOL2, NetworkPlan, PoolSpec, plan_network, plan_pool1

if TYPE_CHECKING:
    from search_space.pretrained2d import LoadReport

__all__ = ["ResNet3d", "build_resnet3d"]

# mmaction2's dict defaults, read-only so that no call can change the next call's default;
# ResNet3dConfig copies them into plain dicts.
_CONV_CFG: Mapping[str, Any] = MappingProxyType({"type": "Conv3d"})
_NORM_CFG: Mapping[str, Any] = MappingProxyType({"type": "BN3d", "requires_grad": True})
_ACT_CFG: Mapping[str, Any] = MappingProxyType({"type": "ReLU", "inplace": True})
_NON_LOCAL_CFG: Mapping[str, Any] = MappingProxyType({})


class ResNet3d(nn.Module):
    """The I3D-style ResNet3d backbone; see ``ResNet3dConfig`` for every argument's meaning.

    ``forward(x)`` maps ``(N, C, T, H, W)`` to the feature map of each stage in
    ``out_indices`` (a single tensor when there is one index, else a tuple).
    """

    def __init__(
        self,
        depth: int = 50,
        pretrained: str | None = None,
        stage_blocks: Sequence[int] | None = None,
        pretrained2d: bool = True,
        in_channels: int = 3,
        num_stages: int = 4,
        base_channels: int = 64,
        out_indices: Sequence[int] = (3,),
        spatial_strides: Sequence[int] = (1, 2, 2, 2),
        temporal_strides: Sequence[int] = (1, 1, 1, 1),
        dilations: Sequence[int] = (1, 1, 1, 1),
        conv1_kernel: int | Sequence[int] = (3, 7, 7),
        conv1_stride_s: int = 2,
        conv1_stride_t: int = 1,
        pool1_stride_s: int = 2,
        pool1_stride_t: int = 1,
        with_pool1: bool = True,
        with_pool2: bool = True,
        style: str = "pytorch",
        frozen_stages: int = -1,
        inflate: int | Sequence[int | Sequence[int]] = (1, 1, 1, 1),
        inflate_style: str = "3x1x1",
        conv_cfg: Mapping[str, Any] = _CONV_CFG,
        norm_cfg: Mapping[str, Any] = _NORM_CFG,
        act_cfg: Mapping[str, Any] = _ACT_CFG,
        norm_eval: bool = False,
        with_cp: bool = False,
        non_local: int | Sequence[int | Sequence[int]] = (0, 0, 0, 0),
        non_local_cfg: Mapping[str, Any] = _NON_LOCAL_CFG,
        zero_init_residual: bool = True,
        init_cfg: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Take mmaction2's ``ResNet3d.__init__`` arguments, in its order and with its defaults.

        Why a full signature here when configs are keyword-only: the config is our typed record
        (``ResNet3dConfig``, keyword-only so a field can never be bound by position by mistake),
        while this constructor is the drop-in for mmaction2's class, and code written for
        mmaction2 calls it positionally (``ResNet3d(50, None, pretrained2d=False)``, as its own
        tests do). So it binds exactly mmaction2's positional order and hands every value to
        ``ResNet3dConfig``, which validates it; a test keeps this signature equal to the
        config's fields and to mmaction2's. Two differences: an unknown keyword is a
        ``TypeError`` (mmaction2 swallows it in ``**kwargs``), and ``init_cfg`` (an mmengine
        hook) must be ``None``.

        Raises:
            ConfigError: An invalid value (a ``ValueError``; mmaction2 asserts).
            ConfigTypeError: A value of the wrong type, e.g. ``pretrained`` neither a string nor
                ``None`` (a ``ConfigError`` and a ``TypeError``, as mmaction2 raises).
        """
        super().__init__()
        if init_cfg is not None:
            raise ConfigError(
                f"init_cfg is not supported; got {init_cfg!r}; use pretrained (or load weights "
                "after init_weights())"
            )
        config = ResNet3dConfig.from_dict(
            {
                "depth": depth,
                "pretrained": pretrained,
                "stage_blocks": stage_blocks,
                "pretrained2d": pretrained2d,
                "in_channels": in_channels,
                "num_stages": num_stages,
                "base_channels": base_channels,
                "out_indices": out_indices,
                "spatial_strides": spatial_strides,
                "temporal_strides": temporal_strides,
                "dilations": dilations,
                "conv1_kernel": conv1_kernel,
                "conv1_stride_s": conv1_stride_s,
                "conv1_stride_t": conv1_stride_t,
                "pool1_stride_s": pool1_stride_s,
                "pool1_stride_t": pool1_stride_t,
                "with_pool1": with_pool1,
                "with_pool2": with_pool2,
                "style": style,
                "frozen_stages": frozen_stages,
                "inflate": inflate,
                "inflate_style": inflate_style,
                "conv_cfg": conv_cfg,
                "norm_cfg": norm_cfg,
                "act_cfg": act_cfg,
                "norm_eval": norm_eval,
                "with_cp": with_cp,
                "non_local": non_local,
                "non_local_cfg": non_local_cfg,
                "zero_init_residual": zero_init_residual,
            }
        )
        self._build(config)

    @classmethod
    def from_config(cls, config: ResNet3dConfig) -> ResNet3d:
        """Build from an already validated config (no weight init; see ``build_resnet3d``)."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model._build(config)
        return model

    def _build(self, config: ResNet3dConfig) -> None:
        self.config = config
        plan: NetworkPlan = plan_network(config)
        self.plan = plan
        # NOTE: attributes mmaction2 exposes, set one by one as its ResNet3d does (no loop over
        # names: STYLE §3); kept for code written against it.
        self.depth = config.depth
        self.num_stages = config.num_stages
        self.stage_blocks = config.blocks_per_stage
        self.out_indices = config.out_indices
        self.with_pool1 = config.with_pool1
        self.with_pool2 = config.with_pool2
        self.frozen_stages = config.frozen_stages
        self.norm_eval = config.norm_eval
        self.pretrained = config.pretrained
        self.pretrained2d = config.pretrained2d
        self.zero_init_residual = config.zero_init_residual
        self.feat_dim = config.feat_dim
        cfgs = {
            "conv_cfg": config.conv_cfg,
            "norm_cfg": config.norm_cfg,
            "act_cfg": config.act_cfg,
        }
        self.conv1 = build_conv_module(plan.stem, **cfgs)
        # NOTE: maxpool and pool2 always exist (no parameters), as in mmaction2; the flags decide
        # whether forward uses them.
        self.maxpool = _max_pool(plan_pool1(config))
        self.pool2 = _max_pool(POOL2)
        self.res_layers: list[str] = []
        for stage in plan.stages:
            blocks = [
                BLOCK_CLASSES[block.block_type](
                    block,
                    **cfgs,
                    non_local_cfg=config.non_local_cfg,
                    with_cp=config.with_cp,
                )
                for block in stage.blocks
            ]
            self.add_module(stage.name, nn.Sequential(*blocks))
            self.res_layers.append(stage.name)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        # (N, C, T, H, W) -> (N, base, T/conv1_stride_t/pool1_stride_t, H/4, W/4)
        x = self.conv1(x)
        if self.with_pool1:
            x = self.maxpool(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            # stage i: (N, C_i, T, H, W) -> (N, C_{i+1}, T/ts_i, H/ss_i, W/ss_i)
            x = getattr(self, name)(x)
            if i == 0 and self.with_pool2:
                x = self.pool2(x)  # halves T: (N, C, T, H, W) -> (N, C, T/2, H, W)
            if i in self.out_indices:
                outs.append(x)
        if len(outs) == 1:
            return outs[0]
        return tuple(outs)

    # ------------------------------------------------------------------ train / freeze
    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            self.conv1.eval()
            for param in self.conv1.parameters():
                param.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            layer = getattr(self, f"layer{i}")
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> ResNet3d:
        """Set train mode, then re-apply ``frozen_stages`` and ``norm_eval``; returns ``self``."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # ------------------------------------------------------------------ weights
    def init_weights(self, pretrained: str | None = None) -> LoadReport | None:
        """Initialise like mmaction2's ``ResNet3d.init_weights``.

        Without a checkpoint: Kaiming (fan-out) convs, BN weight 1 / bias 0, and with
        ``zero_init_residual`` the last BN of every residual branch zeroed, so each block starts
        as the identity. With ``pretrained`` (or the config's): ``pretrained2d`` inflates a 2D
        torchvision-style ResNet checkpoint, otherwise a 3D checkpoint is loaded by key.

        Returns:
            The :class:`~search_space.pretrained2d.LoadReport` when a checkpoint was loaded,
            else ``None``.
        """
        from search_space.pretrained2d import load_checkpoint_3d, load_inflated_2d

        path = pretrained or self.pretrained
        if path is not None:
            if self.pretrained2d:
                return load_inflated_2d(self, path)
            return load_checkpoint_3d(self, path)
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, _BatchNorm):
                if module.weight is not None:
                    nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if self.zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck3d | BasicBlock3d):
                    last: ConvModule = getattr(module, module.conv_names[-1])
                    if last.norm is not None and last.norm.weight is not None:
                        nn.init.zeros_(last.norm.weight)
                        nn.init.zeros_(last.norm.bias)
        return None


def _max_pool(spec: PoolSpec) -> nn.MaxPool3d:
    return nn.MaxPool3d(kernel_size=spec.kernel, stride=spec.stride, padding=spec.padding)


def build_resnet3d(config: ResNet3dConfig) -> ResNet3d:
    """Build a ResNet3d from ``config`` and initialise it (including ``pretrained``)."""
    model = ResNet3d.from_config(config)
    model.init_weights()
    return model
