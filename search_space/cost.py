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

from search_space.config import BlockType, ResNet3dConfig
from search_space.errors import ConfigError
from search_space.plan import plan_block
from search_space.shapes import ShapeTable, output_shapes, parse_input_shape

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

Shape5 = tuple[int, int, int, int, int]
# (flops, params, activation elements) of one sample; batch scales flops and activations only.
Count = tuple[int, int, int]

_BATCH_NORMS = ("BN3d", "SyncBN")
_STATS_NORMS = {"GN": True, "IN3d": False}  # type -> affine default
_ACTIVATIONS = (
    "ReLU", "LeakyReLU", "PReLU", "RReLU", "ReLU6", "ELU", "Sigmoid", "Tanh", "Clamp", "Clip",
    "GELU", "HSigmoid", "HSwish", "SiLU", "Swish",
)  # fmt: skip


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
        ConfigError: a norm type that does not run on 5D input (``BN``, ``IN``, ``LN``, ...).
    """
    kind = norm_cfg.get("type")
    if kind in _BATCH_NORMS:
        affine = bool(norm_cfg.get("affine", True))
        running = bool(norm_cfg.get("track_running_stats", True))
        per_element = (2 if affine else 1) if running else (5 if affine else 4)
    elif kind in _STATS_NORMS:
        affine = bool(norm_cfg.get("affine", _STATS_NORMS[kind]))
        per_element = 5 if affine else 4
    else:
        allowed = ", ".join(repr(k) for k in (*_BATCH_NORMS, *_STATS_NORMS))
        raise ConfigError(f"{field}.type must be one of {allowed} to be costed; got {kind!r}")
    return NormRule(2 if affine else 0, per_element)


def activation_params(act_cfg: Mapping[str, Any]) -> int:
    """Parameters of one mmcv activation layer: ``num_parameters`` for PReLU, else 0.

    Raises:
        ConfigError: a type that is not an mmcv activation.
    """
    kind = act_cfg.get("type")
    if kind not in _ACTIVATIONS:
        raise ConfigError(
            f"act_cfg.type must be an activation ({', '.join(_ACTIVATIONS)}) to be costed; "
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


@functools.lru_cache(maxsize=1 << 16)
def _block_cost(
    block_type: BlockType,
    inplanes: int,
    planes: int,
    spatial_stride: int,
    temporal_stride: int,
    dilation: int,
    style: str,
    inflate: bool,
    inflate_style: str,
    with_downsample: bool,
    thw: tuple[int, int, int],
    rules: _Rules,
    non_local: _NonLocalRules | None,
) -> tuple[int, int, int, tuple[int, int, int]] | None:
    """(flops, params, activations, output T/H/W) of one sample through one block.

    ``None`` when some size collapses below 1; the caller then lets ``output_shapes`` raise
    the error that names the layer.
    """
    plan = plan_block(
        block_type=block_type,
        inplanes=inplanes,
        planes=planes,
        spatial_stride=spatial_stride,
        temporal_stride=temporal_stride,
        dilation=dilation,
        style=style,
        inflate=inflate,
        inflate_style=inflate_style,
        non_local=non_local is not None,
        with_downsample=with_downsample,
    )
    norm_params, norm_flops = rules.norm
    convs = plan.convs if plan.downsample is None else (*plan.convs, plan.downsample)
    flops = params = activations = 0
    out = thw
    for j, spec in enumerate(convs):
        src = thw if j == len(plan.convs) else out  # the downsample reads the block input
        k, s, p, d = spec.kernel, spec.stride, spec.padding, spec.dilation
        t = _size(src[0], k[0], s[0], p[0], d[0])
        h = _size(src[1], k[1], s[1], p[1], d[1])
        w = _size(src[2], k[2], s[2], p[2], d[2])
        if t < 1 or h < 1 or w < 1:
            return None
        if j < len(plan.convs):
            out = (t, h, w)
        weights = spec.in_channels * spec.out_channels * k[0] * k[1] * k[2]
        elements = spec.out_channels * t * h * w
        flops += weights * t * h * w + norm_flops * elements
        params += weights + norm_params * spec.out_channels
        if spec.with_act:
            params += rules.act_params
        activations += elements
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
    block_type: BlockType,
    inplanes: int,
    planes: int,
    spatial_stride: int,
    temporal_stride: int,
    dilation: int,
    style: str,
    inflate: tuple[int, ...],
    inflate_style: str,
    non_local: tuple[int, ...],
    thw: tuple[int, int, int],
    rules: _Rules,
    non_local_rules: _NonLocalRules | None,
) -> tuple[int, int, int, tuple[int, int, int]] | None:
    """One stage, with ``search_space.plan.plan_stage``'s rules: stride and downsample on the
    first block only, ``planes * expansion`` channels in and out of the others."""
    out_channels = planes * (1 if block_type == BlockType.BASIC else 4)
    with_downsample = spatial_stride != 1 or inplanes != out_channels
    flops = params = activations = 0
    for b, bit in enumerate(inflate):
        first = b == 0
        block = _block_cost(
            block_type,
            inplanes if first else out_channels,
            planes,
            spatial_stride if first else 1,
            temporal_stride if first else 1,
            dilation,
            style,
            bit == 1,
            inflate_style,
            with_downsample and first,
            thw,
            rules,
            non_local_rules if non_local[b] == 1 else None,
        )
        if block is None:
            return None
        flops, params, activations = flops + block[0], params + block[1], activations + block[2]
        thw = block[3]
    return flops, params, activations, thw


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
    n = shape[0]
    if shape[1] != config.in_channels:
        _raise_shape_error(config, shape)
    if include_head and (
        not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1
    ):
        raise ConfigError(f"num_classes must be a positive int; got {num_classes!r}")
    rules, non_local_rules = _rules(config)

    # stem: conv1 (+ BN + act), then maxpool (1, 3, 3), padding (0, 1, 1)
    kt, kh, kw = config.conv1_kernel
    base = config.base_channels
    t = _size(shape[2], kt, config.conv1_stride_t, (kt - 1) // 2, 1)
    h = _size(shape[3], kh, config.conv1_stride_s, (kh - 1) // 2, 1)
    w = _size(shape[4], kw, config.conv1_stride_s, (kw - 1) // 2, 1)
    if t < 1 or h < 1 or w < 1:
        _raise_shape_error(config, shape)
    flops = conv_flops(config.in_channels, base, (kt, kh, kw), t * h * w)
    flops += rules.norm.flops_per_element * base * t * h * w
    params = config.in_channels * base * kt * kh * kw
    params += rules.norm.params_per_channel * base + rules.act_params
    activations = base * t * h * w
    if config.with_pool1:
        t = _size(t, 1, config.pool1_stride_t, 0, 1)
        h = _size(h, 3, config.pool1_stride_s, 1, 1)
        w = _size(w, 3, config.pool1_stride_s, 1, 1)
    rows: list[tuple[str, Shape5]] = [("stem", (n, base, t, h, w))]

    # NOTE: forward runs every stage, but fvcore counts a traced graph, and tracing drops the
    # stages after the last one in out_indices (nothing they compute is returned).
    last_counted = max(config.out_indices)
    head_channels = 0
    block_type = config.block_type
    inplanes = base
    thw = (t, h, w)
    for i, blocks_inflate in enumerate(config.inflate):
        planes = base * 2**i
        stage = _stage_cost(
            block_type,
            inplanes,
            planes,
            config.spatial_strides[i],
            config.temporal_strides[i],
            config.dilations[i],
            config.style,
            blocks_inflate,
            config.inflate_style,
            config.non_local[i],
            thw,
            rules,
            non_local_rules,
        )
        if stage is None:
            _raise_shape_error(config, shape)
        params += stage[1]
        if i <= last_counted:
            flops, activations = flops + stage[0], activations + stage[2]
        thw = stage[3]
        inplanes = planes * (1 if block_type == BlockType.BASIC else 4)
        if i == last_counted:
            head_channels = inplanes
        rows.append((f"layer{i + 1}", (n, inplanes, *thw)))
        if i == 0 and config.with_pool2:
            if thw[0] < 2:
                _raise_shape_error(config, shape)
            thw = (thw[0] // 2, thw[1], thw[2])
            rows.append(("pool2", (n, inplanes, *thw)))

    if include_head:
        head = head_cost(head_channels, num_classes)
        flops, params, activations = flops + head[0], params + head[1], activations + head[2]
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
