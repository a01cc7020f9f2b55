"""The FLOPs runner: fvcore's count of the built network, checked against the analytic model.

:func:`search_space.cost.cost` predicts FLOPs and parameters from the configuration alone; this
runner builds the module, counts it with fvcore (``FlopCountAnalysis`` in eval mode, the
convention of mmaction2's model zoo) and insists that both agree to the last multiply-add. A
disagreement is a bug in one of them, so it raises :class:`FlopsMismatchError` instead of
returning either number.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from search_space._imports import require
from search_space.config import ResNet3dConfig
from search_space.cost import CostResult, cost
from search_space.errors import R3dnasError
from search_space.resnet3d import ResNet3d
from search_space.shapes import parse_input_shape

__all__ = ["FlopsMismatchError", "FlopsResult", "measure_flops"]


class FlopsMismatchError(R3dnasError):
    """fvcore's count of the built network differs from the analytic cost model's."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FlopsResult:
    """fvcore's measurement beside the analytic prediction it was checked against.

    Attributes:
        flops: fvcore's ``FlopCountAnalysis(model.eval(), x).total()`` (multiply-adds).
        gflops: ``flops / 1e9``.
        params: ``sum(p.numel() for p in model.parameters())``.
        analytic_flops: :func:`search_space.cost.cost`'s ``flops`` (equal to ``flops``).
        analytic_params: its ``params`` (equal to ``params``).
        seconds: wall time to build the network and trace it with fvcore.
    """

    flops: int
    gflops: float
    params: int
    analytic_flops: int
    analytic_params: int
    seconds: float


def _build(config: ResNet3dConfig, *, include_head: bool, num_classes: int) -> nn.Module:
    """The network fvcore traces: the backbone, or the same Recognizer3D a trial trains."""
    if not include_head:
        return ResNet3d.from_config(config).eval()
    from runners.model import build_recognizer

    return build_recognizer(config, num_classes=num_classes).eval()


def measure_flops(
    config: ResNet3dConfig,
    input_shape: Sequence[int] | str,
    *,
    include_head: bool = False,
    num_classes: int = 400,
    analytic: CostResult | None = None,
) -> FlopsResult:
    """Count ``config``'s FLOPs and parameters with fvcore and check the analytic model.

    Args:
        config: the backbone to build (untrained weights; counts do not depend on them).
        input_shape: ``(N, C, T, H, W)`` or ``"1,3,32,256,256"``.
        include_head: count mmaction2's ``I3DHead`` (pool, dropout, linear) too.
        num_classes: the head's output size.
        analytic: the prediction to check against; by default
            ``cost(config, input_shape, include_head=..., num_classes=...)``. Passing one is
            for tests that prove a wrong prediction is caught.

    Raises:
        FlopsMismatchError: fvcore and the analytic model disagree on FLOPs or parameters;
            the message names both numbers and the config digest.
        ConfigError: the input shape does not fit the network.
        MissingDependencyError: fvcore is not installed.
    """
    fvcore_nn = require("fvcore.nn")
    if analytic is None:
        analytic = cost(config, input_shape, include_head=include_head, num_classes=num_classes)
    start = time.perf_counter()
    model = _build(config, include_head=include_head, num_classes=num_classes)
    x = torch.zeros(parse_input_shape(input_shape))
    with torch.no_grad():
        analysis = fvcore_nn.FlopCountAnalysis(model, x)
        # NOTE: ReLU, pooling, add, softmax are "unsupported" (= 0 FLOPs) by design: quiet.
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        flops = int(analysis.total())
    params = sum(p.numel() for p in model.parameters())
    seconds = time.perf_counter() - start
    if flops != analytic.flops or params != analytic.params:
        shape = "x".join(map(str, x.shape))
        scope = f"with I3D head ({num_classes} classes)" if include_head else "backbone only"
        raise FlopsMismatchError(
            f"fvcore counts {flops:,} FLOPs and {params:,} params but the analytic cost model "
            f"gives {analytic.flops:,} FLOPs and {analytic.params:,} params for config "
            f"{config.digest()} at input {shape} ({scope}); this is a bug: report it with "
            "config.to_json()"
        )
    return FlopsResult(
        flops=flops,
        gflops=flops / 1e9,
        params=params,
        analytic_flops=analytic.flops,
        analytic_params=analytic.params,
        seconds=seconds,
    )
