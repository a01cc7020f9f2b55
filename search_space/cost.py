"""The exact analytic cost of a ResNet3d: FLOPs, parameters and activations, with no module built.

Counting rule (stated once, here; it is fvcore's and mmengine's convention, the one mmaction2's
model zoo reports):

* **1 FLOP = 1 multiply-add.** A convolution costs ``C_in * C_out * kt * kh * kw`` per output
  position; its bias (none in ResNet3d's ``ConvModule``; present in the non-local's 1x1 convs)
  is free. A matrix product ``(a, b) @ (b, c)`` costs ``a * b * c``; a linear layer
  ``in_features * out_features`` per row.
* **Normalisation is counted as in eval mode:** a batch norm with running statistics costs 2 per
  element (1 without affine), one that normalises with batch statistics
  (``track_running_stats=False``), a group norm or an instance norm 5 per element (4 without
  affine).
* **ReLU (any activation), residual add, max/average pooling, softmax, dropout, scalar division
  = 0.**
* **Only what reaches an output counts.** ``forward`` runs every stage, but fvcore counts the
  traced graph, from which tracing drops the stages after the last one in ``out_indices``
  (nothing they compute is returned; the head reads that last one too). Their parameters still
  count. mmaction2's default ``out_indices=(num_stages - 1,)`` drops nothing.

It equals ``fvcore.nn.FlopCountAnalysis(model.eval(), x).total()`` and
``sum(p.numel() for p in model.parameters())`` exactly, for every configuration (tests check
fixed presets and random configurations, including non-local blocks in every mode). mmengine's
``get_model_complexity_info`` gives the same integer; ``torch.utils.flop_counter`` does not (it
counts 2 per multiply-add and no norm).

Why a model and not fvcore: a study rejects a configuration that breaks a FLOPs or parameter
budget before building anything, and a whole space is swept in seconds. The rules of each layer
come from :func:`search_space.plan.plan_block` (the same plan the module builder uses); block and
stage results are memoised on their exact arguments, so a sweep mostly looks numbers up.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple, NoReturn

from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError
from search_space.layer_types import (
    ACTIVATION_TYPES,
    BATCH_NORM_TYPES,
    NORM_TYPES,
    STATS_NORM_AFFINE,
)
from search_space.plan import (
    POOL2,
    BlockPlan,
    ConvSpec,
    PoolSpec,
    StageArgs,
    Triple,
    plan_pool1,
    plan_res_layer,
    plan_stem,
)
from search_space.shapes import Shape5, ShapeTable, output_shapes, parse_input_shape

__all__ = [
    "CostResult",
    "NormRule",
    "activation_params",
    "conv_flops",
    "cost",
    "head_cost",
    "non_local_cost",
    "norm_rule",
]

# (flops, params, activation elements) of one sample; batch scales flops and activations only.
Count = tuple[int, int, int]

# (flops, params, activations, output T/H/W) of one sample through a block or a stage.
Walk = tuple[int, int, int, Triple]


# ---------------------------------------------------------------------- result
@dataclass(frozen=True, kw_only=True, slots=True)
class CostResult:
    """The cost of one forward of a ResNet3d (and optionally its head) on ``input_shape``.

    Attributes:
        flops: multiply-adds of one forward (see the module docstring for the rule).
        gflops: ``flops / 1e9``.
        params: number of parameters (``sum(p.numel() for p in model.parameters())``; buffers
            such as batch-norm running statistics are not parameters).
        params_m: ``params / 1e6``.
        activation_elements: elements in the outputs of every convolution, matrix product and
            linear layer of one forward: fvcore's ``ActivationCountAnalysis`` convention, the
            "activations" of Radosavovic et al. (RegNet, 2020). A proxy for activation memory
            (what training stores for backward) and for memory-bound run time, which FLOPs miss;
            norms, activations, pools and adds are excluded because each is the same size as
            the convolution output it follows.
        activation_mb: ``activation_elements`` at float32, in MB (``4 * elements / 1e6``).
        shapes: the shape after the stem, each stage and pool2 (equal to
            :func:`search_space.shapes.output_shapes`).
        input_shape: ``(N, C, T, H, W)``; FLOPs and activations scale with ``N``.
        include_head: whether mmaction2's ``I3DHead`` (global average pool, dropout,
            ``Linear(channels, num_classes)``) is counted on the last stage in ``out_indices``
            (``feat_dim`` channels by default), as ``Recognizer3D`` applies it.
        num_classes: the head's class count, ``None`` for the backbone alone.
    """

    flops: int
    gflops: float
    params: int
    params_m: float
    activation_elements: int
    activation_mb: float
    shapes: ShapeTable
    input_shape: Shape5
    include_head: bool
    num_classes: int | None

    def format(self) -> str:
        """A plain-text report: GFLOPs, parameters, activations and the shape table."""
        what = (
            f"backbone + I3D head ({self.num_classes} classes)"
            if self.include_head
            else "backbone only"
        )
        lines = [
            f"input   {'x'.join(map(str, self.input_shape))}, {what}",
            f"gflops  {self.gflops:.3f}  ({self.flops:,} multiply-adds, norms in eval mode)",
            f"params  {self.params_m:.3f} M  ({self.params:,})",
            f"activations  {self.activation_elements:,} elements "
            f"({self.activation_mb:.1f} MB at float32)",
            "",
            self.shapes.format(),
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------------- pure arithmetic
class NormRule(NamedTuple):
    """What one normalisation layer costs: parameters per channel, FLOPs per element."""

    params_per_channel: int
    flops_per_element: int


def norm_rule(norm_cfg: Mapping[str, Any], *, field: str = "norm_cfg") -> NormRule:
    """The cost rule of an mmcv norm layer, as fvcore counts it in eval mode.

    Batch norm with running statistics is an affine map in eval mode (2 per element, 1 without
    affine); anything that normalises with statistics of the input (group norm, instance norm,
    batch norm with ``track_running_stats=False``) costs 5 per element (4 without affine).

    Raises:
        ConfigError: a norm type outside :mod:`search_space.layer_types`'s table (the config
            refuses those already; this guards a cfg dict changed after validation).
    """
    kind = norm_cfg.get("type")
    if kind in BATCH_NORM_TYPES:
        affine = bool(norm_cfg.get("affine", True))
        running = bool(norm_cfg.get("track_running_stats", True))
        per_element = (2 if affine else 1) if running else (5 if affine else 4)
    elif isinstance(kind, str) and kind in STATS_NORM_AFFINE:
        affine = bool(norm_cfg.get("affine", STATS_NORM_AFFINE[kind]))
        per_element = 5 if affine else 4
    else:
        allowed = ", ".join(map(repr, NORM_TYPES))
        raise ConfigError(f"{field}.type must be one of {allowed} to be costed; got {kind!r}")
    return NormRule(2 if affine else 0, per_element)


def activation_params(act_cfg: Mapping[str, Any]) -> int:
    """Parameters of one mmcv activation layer: ``num_parameters`` for PReLU, else 0.

    Raises:
        ConfigError: a type outside :mod:`search_space.layer_types`'s table.
    """
    kind = act_cfg.get("type")
    if kind not in ACTIVATION_TYPES:
        raise ConfigError(
            f"act_cfg.type must be an activation ({', '.join(ACTIVATION_TYPES)}) to be costed; "
            f"got {kind!r}"
        )
    return int(act_cfg.get("num_parameters", 1)) if kind == "PReLU" else 0


def conv_flops(
    in_channels: int, out_channels: int, kernel: tuple[int, int, int], out_positions: int
) -> int:
    """Multiply-adds of a dense convolution producing ``out_positions`` (T*H*W) outputs."""
    return in_channels * out_channels * kernel[0] * kernel[1] * kernel[2] * out_positions


def non_local_cost(
    channels: int,
    thw: tuple[int, int, int],
    *,
    mode: str = "embedded_gaussian",
    reduction: int = 2,
    sub_sample: bool = False,
    out_norm: NormRule | None = None,
) -> Count:
    """(flops, params, activations) of one sample through mmcv's ``NonLocal3d(channels, ...)``.

    With ``P = T*H*W`` positions, ``P'`` after the optional (1, 2, 2) max-pool of ``g``/``phi``
    and ``I = max(channels // reduction, 1)``: ``g`` (and ``theta``, ``phi`` unless
    ``gaussian``) are biased 1x1x1 convs ``channels -> I``; the pairwise map is ``P x P'``,
    from a ``P x C' x P'`` matmul (``C' = channels`` in ``gaussian`` mode, which uses ``x``
    itself) or, in ``concatenation`` mode, from a 1x1 Conv2d over ``2I`` channels; then
    ``y = map @ g`` (``P x P' x I``) and ``conv_out`` (``I -> channels``, biased unless it has
    ``out_norm``). ``use_scale`` and softmax only divide or normalise: free.
    """
    t, h, w = thw
    positions = t * h * w
    pooled = t * (h // 2) * (w // 2) if sub_sample else positions
    inter = max(channels // reduction, 1)
    projections = 1 if mode == "gaussian" else 3  # g, or g + theta + phi
    flops = projections * channels * inter * positions
    params = projections * (channels * inter + inter)
    activations = projections * inter * positions
    pairwise = positions * pooled
    if mode == "concatenation":
        flops += 2 * inter * pairwise  # concat_project: Conv2d(2I -> 1, bias=False), then ReLU
        params += 2 * inter
    else:
        flops += (channels if mode == "gaussian" else inter) * pairwise
    activations += pairwise
    flops += pairwise * inter  # y = pairwise @ g_x
    activations += positions * inter
    flops += inter * channels * positions  # conv_out
    params += inter * channels
    activations += channels * positions
    if out_norm is None:
        params += channels  # conv_out bias
    else:
        params += out_norm.params_per_channel * channels
        flops += out_norm.flops_per_element * channels * positions
    return flops, params, activations


def head_cost(feat_dim: int, num_classes: int) -> Count:
    """(flops, params, activations) of one sample through mmaction2's ``I3DHead``.

    The adaptive average pool and dropout are free; ``Linear(feat_dim, num_classes)`` costs
    ``feat_dim * num_classes`` and has a bias.
    """
    return feat_dim * num_classes, feat_dim * num_classes + num_classes, num_classes


# ---------------------------------------------------------------------- memoised walk
class _Rules(NamedTuple):
    """Everything besides the block arguments that changes a block's count (hashable)."""

    norm: NormRule
    act_params: int


class _NonLocalRules(NamedTuple):
    mode: str
    reduction: int
    sub_sample: bool
    out_norm: NormRule | None


def _size(length: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    # NOTE: shapes.conv_output_size inlined for speed; tests check the tables stay equal.
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _out_thw(
    thw: Triple, kernel: Triple, stride: Triple, padding: Triple, dilation: Triple
) -> Triple | None:
    """The output T/H/W of a conv or pool, ``None`` when a size collapses below 1."""
    t = _size(thw[0], kernel[0], stride[0], padding[0], dilation[0])
    h = _size(thw[1], kernel[1], stride[1], padding[1], dilation[1])
    w = _size(thw[2], kernel[2], stride[2], padding[2], dilation[2])
    return None if t < 1 or h < 1 or w < 1 else (t, h, w)


def _pool_thw(thw: Triple, spec: PoolSpec) -> Triple | None:
    return _out_thw(thw, spec.kernel, spec.stride, spec.padding, (1, 1, 1))


def _conv_cost(spec: ConvSpec, thw: Triple, rules: _Rules) -> Walk | None:
    """One ``ConvModule``: bias-free conv, norm, and the activation when ``spec.with_act``."""
    out = _out_thw(thw, spec.kernel, spec.stride, spec.padding, spec.dilation)
    if out is None:
        return None
    k = spec.kernel
    positions = out[0] * out[1] * out[2]
    weights = spec.in_channels * spec.out_channels * k[0] * k[1] * k[2]
    elements = spec.out_channels * positions
    flops = weights * positions + rules.norm.flops_per_element * elements
    params = weights + rules.norm.params_per_channel * spec.out_channels
    if spec.with_act:
        params += rules.act_params
    return flops, params, elements, out


@functools.lru_cache(maxsize=1 << 16)
def _block_cost(
    plan: BlockPlan, thw: Triple, rules: _Rules, non_local: _NonLocalRules | None
) -> Walk | None:
    """(flops, params, activations, output T/H/W) of one sample through one planned block.

    ``None`` when some size collapses below 1; the caller then lets ``output_shapes`` raise
    the error that names the layer.
    """
    flops = params = activations = 0
    out = thw
    for spec in plan.convs:
        conv = _conv_cost(spec, out, rules)
        if conv is None:
            return None
        flops, params, activations = flops + conv[0], params + conv[1], activations + conv[2]
        out = conv[3]
    if plan.downsample is not None:
        down = _conv_cost(plan.downsample, thw, rules)  # reads the block input
        if down is None:
            return None
        flops, params, activations = flops + down[0], params + down[1], activations + down[2]
    params += rules.act_params  # the block's own relu after the residual add
    if non_local is not None:
        if non_local.sub_sample and (out[1] < 2 or out[2] < 2):
            return None
        nl = non_local_cost(
            plan.out_channels,
            out,
            mode=non_local.mode,
            reduction=non_local.reduction,
            sub_sample=non_local.sub_sample,
            out_norm=non_local.out_norm,
        )
        flops, params, activations = flops + nl[0], params + nl[1], activations + nl[2]
    return flops, params, activations, out


@functools.lru_cache(maxsize=1 << 14)
def _stage_cost(
    stage: StageArgs,
    thw: Triple,
    rules: _Rules,
    non_local_rules: _NonLocalRules | None,
) -> tuple[Walk, int] | None:
    """One stage as :func:`search_space.plan.plan_res_layer` plans it, and its out channels.

    Memoised on the plan's own arguments, so a sweep over a space mostly looks stages up.
    """
    blocks = plan_res_layer(stage)
    flops = params = activations = 0
    for block in blocks:
        walk = _block_cost(block, thw, rules, non_local_rules if block.non_local else None)
        if walk is None:
            return None
        flops, params, activations = flops + walk[0], params + walk[1], activations + walk[2]
        thw = walk[3]
    return (flops, params, activations, thw), blocks[-1].out_channels


def _rules(config: ResNet3dConfig) -> tuple[_Rules, _NonLocalRules | None]:
    if config.conv_cfg.get("type") != "Conv3d":
        raise ConfigError(
            f"conv_cfg.type must be 'Conv3d' to be costed; got {config.conv_cfg.get('type')!r}"
        )
    rules = _Rules(norm_rule(config.norm_cfg), activation_params(config.act_cfg))
    # NOTE: a block has a non-local only when its entry == 1 (mmaction2's rule).
    if 1 not in chain.from_iterable(config.non_local):
        return rules, None
    cfg = config.non_local_cfg
    conv_type = (cfg.get("conv_cfg") or {"type": "Conv3d"}).get("type")
    if conv_type != "Conv3d":
        raise ConfigError(
            f"non_local_cfg.conv_cfg.type must be 'Conv3d' to be costed; got {conv_type!r}"
        )
    out_norm_cfg = cfg.get("norm_cfg")
    out_norm = (
        None if out_norm_cfg is None else norm_rule(out_norm_cfg, field="non_local_cfg.norm_cfg")
    )
    non_local = _NonLocalRules(
        cfg.get("mode", "embedded_gaussian"),
        cfg.get("reduction", 2),
        bool(cfg.get("sub_sample", False)),
        out_norm,
    )
    return rules, non_local


def _clear_caches() -> None:
    """Forget memoised blocks and stages (benchmarks time the cold path with it)."""
    _block_cost.cache_clear()
    _stage_cost.cache_clear()
    plan_res_layer.cache_clear()


def _raise_shape_error(config: ResNet3dConfig, shape: Shape5) -> NoReturn:
    """Let ``output_shapes`` raise its error naming the layer that collapses."""
    output_shapes(config, shape)
    raise AssertionError(  # pragma: no cover - cost.py and shapes.py disagree
        f"cost.py found a collapsing layer that shapes.py accepts for {shape}"
    )


def cost(
    config: ResNet3dConfig,
    input_shape: Sequence[int] | str,
    *,
    include_head: bool = False,
    num_classes: int = 400,
) -> CostResult:
    """The exact FLOPs, parameters, activations and shapes of ``config`` on ``input_shape``.

    Args:
        config: the backbone.
        input_shape: ``(N, C, T, H, W)`` or ``"1,3,32,256,256"``.
        include_head: also count mmaction2's ``I3DHead`` on the last stage in ``out_indices``
            (mmaction2's zoo reports backbone FLOPs, but params with the head).
        num_classes: the head's output size; ignored without the head.

    Returns:
        A :class:`CostResult`; its ``flops`` and ``params`` equal fvcore's
        ``FlopCountAnalysis(model.eval(), x).total()`` and the module's parameter count.
        Stages after the last of ``out_indices`` add parameters only.

    Raises:
        ConfigError: a bad input shape or ``num_classes``, a layer whose output would be empty
            (the same message as :func:`~search_space.shapes.output_shapes`), or a conv/norm/
            activation type the model has no rule for.
    """
    shape = parse_input_shape(input_shape)
    if shape[1] != config.in_channels:
        _raise_shape_error(config, shape)
    if include_head and (
        not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1
    ):
        raise ConfigError(f"num_classes must be a positive int; got {num_classes!r}")
    rules, non_local_rules = _rules(config)
    walk = _network_cost(config, shape, rules, non_local_rules)
    if walk is None:
        _raise_shape_error(config, shape)
    flops, params, activations, rows, head_channels = walk
    if include_head:
        head = head_cost(head_channels, num_classes)
        flops, params, activations = flops + head[0], params + head[1], activations + head[2]
    n = shape[0]
    flops *= n
    activations *= n
    return CostResult(
        flops=flops,
        gflops=flops / 1e9,
        params=params,
        params_m=params / 1e6,
        activation_elements=activations,
        activation_mb=4 * activations / 1e6,
        shapes=ShapeTable(input_shape=shape, rows=tuple(rows), out_indices=config.out_indices),
        input_shape=shape,
        include_head=include_head,
        num_classes=num_classes if include_head else None,
    )


def _network_cost(
    config: ResNet3dConfig,
    shape: Shape5,
    rules: _Rules,
    non_local_rules: _NonLocalRules | None,
) -> tuple[int, int, int, list[tuple[str, Shape5]], int] | None:
    """(flops, params, activations) of one sample, the shape rows and the head's channels.

    ``None`` when a layer collapses. Walks the plan's stem, pool1, stages and pool2.
    """
    n = shape[0]
    stem = _conv_cost(plan_stem(config), shape[2:], rules)
    if stem is None:
        return None
    flops, params, activations, thw = stem
    if config.with_pool1:
        pooled = _pool_thw(thw, plan_pool1(config))
        if pooled is None:
            return None
        thw = pooled
    inplanes = config.base_channels
    rows: list[tuple[str, Shape5]] = [("stem", (n, inplanes, *thw))]
    # NOTE: forward runs every stage, but fvcore counts a traced graph, and tracing drops the
    # stages after the last one in out_indices (nothing they compute is returned).
    last_counted = max(config.out_indices)
    head_channels = 0
    for i in range(config.num_stages):
        stage = _stage_cost(StageArgs.of(config, i, inplanes), thw, rules, non_local_rules)
        if stage is None:
            return None
        (stage_flops, stage_params, stage_activations, thw), inplanes = stage
        params += stage_params
        if i <= last_counted:
            flops, activations = flops + stage_flops, activations + stage_activations
        if i == last_counted:
            head_channels = inplanes
        rows.append((f"layer{i + 1}", (n, inplanes, *thw)))
        if i == 0 and config.with_pool2:
            pooled = _pool_thw(thw, POOL2)
            if pooled is None:
                return None
            thw = pooled
            rows.append(("pool2", (n, inplanes, *thw)))
    return flops, params, activations, rows, head_channels
