"""A per-device latency model: a network's latency from a table of its layers, nothing built.

A :class:`LatencyTable` holds the median time of every distinct layer of a search space,
measured once and in isolation on one device, thread count and latency mode (``runners.
latency_table`` builds it; ``r3dnas latency-table`` is the command). A network's predicted
latency is the sum over its layers plus a per-network term fitted on a few whole networks
measured on the same device (:class:`NetworkTerm`), chosen by leave-one-out cross-validation::

    predicted_ms = a * sum(table[layer] for layer in layers(config)) + b * len(layers) + c

Layers come from :func:`search_space.plan.plan_network` (the plan the module builder and the
analytic cost read), walked with the clip's shapes. A layer's key names what decides its time:

* ``conv3d``: a ``ConvModule`` (Conv3d, norm, optional activation) by input shape, output
  channels, kernel, stride, padding, dilation and groups;
* ``maxpool3d``: ``maxpool`` (after conv1) and ``pool2``;
* ``add_act``: a block's residual add and its activation;
* ``non_local3d``: mmcv's ``NonLocal3d`` with the config's ``non_local_cfg``;
* ``head``: mmaction2's ``I3DHead`` (only with ``include_head``).

All layers run at batch 1 (latency is per clip). Every stage runs in ``forward``, including those
after the last of ``out_indices``, so all of them count (FLOPs count them out; time does not).

Pure Python: predicting imports no torch, and blocks of stages are memoised on their exact
arguments (as :mod:`search_space.cost` does), so a sweep predicts well over 10^4
configurations per second (``benchmarks/bench_latency_model.py --speed``).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_space._files import read_text
from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError
from search_space.network_term import NetworkTerm
from search_space.plan import BlockPlan, ConvSpec, PoolSpec, Triple, plan_network, plan_stage
from search_space.shapes import conv_output_size, output_shapes, parse_input_shape

__all__ = [
    "TABLE_FORMAT",
    "Layer",
    "LatencyPrediction",
    "LatencyTable",
    "layer_keys",
    "network_layers",
    "predict_latency",
]

TABLE_FORMAT = "r3dnas-latency-table/1"
Shape4 = tuple[int, int, int, int]  # (C, T, H, W) of one clip

# cfg keys that do not change a layer's eval-mode run time (left out of keys).
_TIMING_IRRELEVANT = frozenset({"requires_grad", "momentum", "eps", "inplace"})


# ---------------------------------------------------------------------- layers
def _cfg_text(cfg: Mapping[str, Any] | None) -> str:
    """``BN3d`` for a plain ``{"type": "BN3d", ...}``, else compact JSON of what matters."""
    if not cfg:
        return "none"
    kept = {k: v for k, v in cfg.items() if k not in _TIMING_IRRELEVANT}
    if set(kept) == {"type"}:
        return str(kept["type"])
    return json.dumps(kept, sort_keys=True, separators=(",", ":"))


def _x(values: Iterable[int]) -> str:
    return "x".join(map(str, values))


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer as the table stores it: its ``kind``, input shape and what builds it.

    ``args`` are plain JSON values (so a table carries what its runner needs to build every
    layer again): for ``conv3d`` ``out_channels, kernel, stride, padding, dilation, groups,
    with_act``; for ``maxpool3d`` ``kernel, stride, padding``; for ``head`` ``num_classes``.
    ``cfgs`` are the network's ``conv_cfg``/``norm_cfg``/``act_cfg``/``non_local_cfg`` as
    canonical JSON text.
    """

    kind: str
    in_shape: Shape4
    args: tuple[tuple[str, Any], ...]
    cfgs: str
    key: str = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "in_shape": list(self.in_shape),
            "args": {k: list(v) if isinstance(v, tuple) else v for k, v in self.args},
            "cfgs": json.loads(self.cfgs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layer:
        args = tuple(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in dict(data["args"]).items()
        )
        cfgs = _Cfgs.from_mapping(data["cfgs"])
        return _make_layer(str(data["kind"]), tuple(data["in_shape"]), args, cfgs)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _Cfgs:
    """The cfg dicts of a network, hashable, with their short forms for keys."""

    conv: str
    norm: str
    act: str
    non_local: str
    json_text: str

    @classmethod
    def from_mapping(cls, cfgs: Mapping[str, Any]) -> _Cfgs:
        conv, norm = cfgs.get("conv_cfg") or {}, cfgs.get("norm_cfg") or {}
        act, non_local = cfgs.get("act_cfg") or {}, cfgs.get("non_local_cfg") or {}
        text = json.dumps(
            {"conv_cfg": conv, "norm_cfg": norm, "act_cfg": act, "non_local_cfg": non_local},
            sort_keys=True,
            separators=(",", ":"),
        )
        nl = {k: v for k, v in non_local.items() if k not in _TIMING_IRRELEVANT}
        return cls(
            _cfg_text(conv),
            _cfg_text(norm),
            _cfg_text(act),
            json.dumps(nl, sort_keys=True, separators=(",", ":")),
            text,
        )

    @classmethod
    def of(cls, config: ResNet3dConfig) -> _Cfgs:
        return cls.from_mapping(
            {
                "conv_cfg": config.conv_cfg,
                "norm_cfg": config.norm_cfg,
                "act_cfg": config.act_cfg,
                "non_local_cfg": config.non_local_cfg,
            }
        )


def _make_layer(
    kind: str, in_shape: Shape4, args: tuple[tuple[str, Any], ...], cfgs: _Cfgs
) -> Layer:
    a = dict(args)
    shape = _x(in_shape)
    if kind == "conv3d":
        key = (
            f"conv3d in={shape} out={a['out_channels']} k={_x(a['kernel'])} "
            f"s={_x(a['stride'])} p={_x(a['padding'])} d={_x(a['dilation'])} g={a['groups']} "
            f"conv={cfgs.conv} norm={cfgs.norm} act={cfgs.act if a['with_act'] else 'none'}"
        )
    elif kind == "maxpool3d":
        key = f"maxpool3d in={shape} k={_x(a['kernel'])} s={_x(a['stride'])} p={_x(a['padding'])}"
    elif kind == "add_act":
        key = f"add_act in={shape} act={cfgs.act}"
    elif kind == "non_local3d":
        key = f"non_local3d in={shape} cfg={cfgs.non_local}"
    elif kind == "head":
        key = f"head in={shape} classes={a['num_classes']}"
    else:
        raise ConfigError(
            f"layer kind must be conv3d, maxpool3d, add_act, non_local3d or head; got {kind!r}"
        )
    return Layer(kind, in_shape, args, cfgs.json_text, key)


class _Collapse(Exception):
    """A size fell below 1; the caller lets ``output_shapes`` raise the error naming it."""


def _conv_layer(spec: ConvSpec, channels: int, thw: Triple, cfgs: _Cfgs) -> tuple[Layer, Triple]:
    k, s, p, d = spec.kernel, spec.stride, spec.padding, spec.dilation
    out = (
        conv_output_size(thw[0], k[0], s[0], p[0], d[0]),
        conv_output_size(thw[1], k[1], s[1], p[1], d[1]),
        conv_output_size(thw[2], k[2], s[2], p[2], d[2]),
    )
    if min(out) < 1:
        raise _Collapse
    args = (
        ("out_channels", spec.out_channels),
        ("kernel", k),
        ("stride", s),
        ("padding", p),
        ("dilation", d),
        # NOTE: ResNet3d's convs are dense; the key carries groups for other generators.
        ("groups", 1),
        ("with_act", spec.with_act),
    )
    return _make_layer("conv3d", (channels, *thw), args, cfgs), out


def _pool_layer(spec: PoolSpec, channels: int, thw: Triple, cfgs: _Cfgs) -> tuple[Layer, Triple]:
    k, s, p = spec.kernel, spec.stride, spec.padding
    out = (
        conv_output_size(thw[0], k[0], s[0], p[0], 1),
        conv_output_size(thw[1], k[1], s[1], p[1], 1),
        conv_output_size(thw[2], k[2], s[2], p[2], 1),
    )
    if min(out) < 1:
        raise _Collapse
    args = (("kernel", k), ("stride", s), ("padding", p))
    return _make_layer("maxpool3d", (channels, *thw), args, cfgs), out


def _block_layers(
    block: BlockPlan, channels: int, thw: Triple, cfgs: _Cfgs
) -> tuple[list[Layer], Triple]:
    """A block's layers in forward order: convs, downsample, add + act, non-local."""
    layers = []
    out, c = thw, channels
    for spec in block.convs:
        layer, out = _conv_layer(spec, c, out, cfgs)
        layers.append(layer)
        c = spec.out_channels
    if block.downsample is not None:
        layers.append(_conv_layer(block.downsample, channels, thw, cfgs)[0])
    layers.append(_make_layer("add_act", (block.out_channels, *out), (), cfgs))
    if block.non_local:
        layers.append(_make_layer("non_local3d", (block.out_channels, *out), (), cfgs))
    return layers, out


def _head_layer(channels: int, thw: Triple, num_classes: int, cfgs: _Cfgs) -> Layer:
    return _make_layer("head", (channels, *thw), (("num_classes", num_classes),), cfgs)


def network_layers(
    config: ResNet3dConfig,
    input_shape: Sequence[int] | str,
    *,
    include_head: bool = False,
    num_classes: int = 400,
) -> tuple[Layer, ...]:
    """Every layer ``ResNet3d.forward`` runs on one clip of ``input_shape``, in order.

    The exact walk of :func:`~search_space.plan.plan_network` (what the table builder measures
    and the tests check the fast path against). ``input_shape``'s batch is ignored: layers are
    timed per clip. With ``include_head``, mmaction2's ``I3DHead`` on the last stage in
    ``out_indices`` comes last.

    Raises:
        ConfigError: a shape that collapses (the message of
            :func:`~search_space.shapes.output_shapes`).
    """
    shape = parse_input_shape(input_shape)
    output_shapes(config, shape)  # raises naming the layer that collapses
    cfgs = _Cfgs.of(config)
    plan = plan_network(config)
    thw: Triple = (shape[2], shape[3], shape[4])
    layer, thw = _conv_layer(plan.stem, shape[1], thw, cfgs)
    layers = [layer]
    channels = plan.stem.out_channels
    if plan.pool1 is not None:
        layer, thw = _pool_layer(plan.pool1, channels, thw, cfgs)
        layers.append(layer)
    after: list[tuple[int, Triple]] = []
    for i, stage in enumerate(plan.stages):
        for block in stage.blocks:
            block_layers, thw = _block_layers(block, channels, thw, cfgs)
            layers.extend(block_layers)
            channels = block.out_channels
        if i == 0 and plan.pool2 is not None:
            layer, thw = _pool_layer(plan.pool2, channels, thw, cfgs)
            layers.append(layer)
        after.append((channels, thw))
    if include_head:
        layers.append(_head_layer(*after[max(config.out_indices)], num_classes, cfgs))
    return tuple(layers)


# ---------------------------------------------------------------------- the fast path
# NOTE: plain dicts, not lru_cache: the config is read on a miss but must not be hashed (its
# hash is its digest, far slower than the walk). Keys hold every field the plan reads.
_PREFIX_MEMO: dict[tuple[Any, ...], tuple[tuple[str, ...], Triple, int, PoolSpec | None]] = {}
_STAGE_MEMO: dict[tuple[Any, ...], tuple[tuple[str, ...], Triple, int]] = {}
_POOL2_MEMO: dict[tuple[Any, ...], tuple[str, Triple]] = {}
_CFGS_MEMO: dict[str, _Cfgs] = {}
_MEMO_LIMIT = 1 << 16


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = value
    return value


def _clear_caches() -> None:
    """Forget memoised stems and stages (benchmarks time the cold path with it)."""
    for memo in (_PREFIX_MEMO, _STAGE_MEMO, _POOL2_MEMO, _CFGS_MEMO):
        memo.clear()


def _config_cfgs(config: ResNet3dConfig) -> _Cfgs:
    text = json.dumps(
        (config.conv_cfg, config.norm_cfg, config.act_cfg, config.non_local_cfg),
        sort_keys=True,
        default=str,
    )
    hit = _CFGS_MEMO.get(text)
    return hit if hit is not None else _remember(_CFGS_MEMO, text, _Cfgs.of(config))


def _fast_keys(
    config: ResNet3dConfig, shape: Sequence[int], cfgs: _Cfgs
) -> tuple[list[str], list[tuple[int, Triple]]]:
    thw: Triple = (shape[2], shape[3], shape[4])
    prefix_key = (
        config.in_channels, config.base_channels, config.conv1_kernel, config.conv1_stride_s,
        config.conv1_stride_t, config.with_pool1, config.pool1_stride_s, config.pool1_stride_t,
        config.with_pool2, thw, cfgs,
    )  # fmt: skip
    prefix = _PREFIX_MEMO.get(prefix_key)
    if prefix is None:
        plan = plan_network(config)
        layer, out = _conv_layer(plan.stem, config.in_channels, thw, cfgs)
        keys = [layer.key]
        if plan.pool1 is not None:
            layer, out = _pool_layer(plan.pool1, plan.stem.out_channels, out, cfgs)
            keys.append(layer.key)
        prefix = _remember(
            _PREFIX_MEMO, prefix_key, (tuple(keys), out, plan.stem.out_channels, plan.pool2)
        )
    stem_keys, thw, channels, pool2 = prefix
    out_keys = list(stem_keys)
    after: list[tuple[int, Triple]] = []
    for i, inflate in enumerate(config.inflate):
        stage_key = (
            config.depth, config.stage_blocks, config.base_channels, config.spatial_strides[i],
            config.temporal_strides[i], config.dilations[i], config.style, inflate,
            config.inflate_style, config.non_local[i], channels, thw, cfgs, i,
        )  # fmt: skip
        stage = _STAGE_MEMO.get(stage_key)
        if stage is None:
            keys = []
            c, t = channels, thw
            for block in plan_stage(config, i, channels).blocks:
                layers, t = _block_layers(block, c, t, cfgs)
                keys.extend(layer.key for layer in layers)
                c = block.out_channels
            stage = _remember(_STAGE_MEMO, stage_key, (tuple(keys), t, c))
        keys_i, thw, channels = stage
        out_keys.extend(keys_i)
        if i == 0 and pool2 is not None:
            pool_key = (pool2, channels, thw)
            hit = _POOL2_MEMO.get(pool_key)
            if hit is None:
                layer, out = _pool_layer(pool2, channels, thw, cfgs)
                hit = _remember(_POOL2_MEMO, pool_key, (layer.key, out))
            out_keys.append(hit[0])
            thw = hit[1]
        after.append((channels, thw))
    return out_keys, after


# NOTE: network_layers' signature again: layer_keys is its memoised fast path, and a test holds the
# two to the same answer for the same arguments.
def layer_keys(
    config: ResNet3dConfig,
    input_shape: Sequence[int] | str,
    *,
    include_head: bool = False,
    num_classes: int = 400,
) -> tuple[str, ...]:
    """The keys of :func:`network_layers`, fast: stems and stages are memoised.

    Raises:
        ConfigError: a shape that collapses (the message of
            :func:`~search_space.shapes.output_shapes`).
    """
    shape = parse_input_shape(input_shape)
    cfgs = _config_cfgs(config)
    if shape[1] != config.in_channels or (
        config.non_local_cfg.get("sub_sample") and 1 in itertools.chain(*config.non_local)
    ):
        # NOTE: the channel check and non-local sub-sampling's H, W >= 2 rule live there.
        output_shapes(config, shape)
    try:
        keys, after = _fast_keys(config, shape, cfgs)
    except _Collapse:
        output_shapes(config, shape)  # raises the error naming the layer
        raise AssertionError("latency_model and shapes disagree on a collapse") from None
    if include_head:
        keys.append(_head_layer(*after[max(config.out_indices)], num_classes, cfgs).key)
    return tuple(keys)


# ---------------------------------------------------------------------- the table
@dataclass(frozen=True, kw_only=True, slots=True)
class LatencyTable:
    """Median milliseconds of every distinct layer, and the conditions they were measured in.

    Attributes:
        layers_ms: layer key -> median ms of one call at batch 1.
        device: the device's name as the runner reports it (``cpu: <model>``,
            ``cuda:0: <name>``).
        threads: CPU threads while timing.
        mode: latency mode (``eager``, ``channels_last``, ``compile``).
        input_shape: the clip the space's layers were enumerated for.
        versions: library versions (python, torch, CUDA, mmcv, mmengine).
        network_term: the fitted per-network term.
        layers: layer key -> the :class:`Layer` (to rebuild and re-measure it).
        details: layer key -> the measurement's spread (``iqr_ms``, ``cv_of_median``, ...).
        protocol: warm-up, repeats, blocks and isolation of the measurements.
        space: the name of the space the table was built for.
        created: ISO time of the build.
    """

    layers_ms: dict[str, float]
    device: str
    threads: int
    mode: str
    input_shape: tuple[int, int, int, int, int]
    versions: dict[str, str] = field(default_factory=dict)
    network_term: NetworkTerm = field(default_factory=NetworkTerm)
    layers: dict[str, Layer] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    space: str = ""
    created: str = ""

    def describe(self) -> str:
        """One line: where and how the table was measured."""
        return (
            f"{len(self.layers_ms)} layers on {self.device}, {self.threads} thread(s), "
            f"{self.mode}, clip {_x(self.input_shape)}, torch {self.versions.get('torch', '?')}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TABLE_FORMAT,
            "device": self.device,
            "threads": self.threads,
            "mode": self.mode,
            "input_shape": list(self.input_shape),
            "space": self.space,
            "created": self.created,
            "versions": dict(self.versions),
            "protocol": dict(self.protocol),
            "network_term": self.network_term.to_dict(),
            "layers": {
                key: {
                    "median_ms": ms,
                    **self.details.get(key, {}),
                    **({"layer": self.layers[key].to_dict()} if key in self.layers else {}),
                }
                for key, ms in sorted(self.layers_ms.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "latency table") -> LatencyTable:
        if not isinstance(data, Mapping) or data.get("format") != TABLE_FORMAT:
            got = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ConfigError(
                f"{source}: format must be {TABLE_FORMAT!r} (a table written by "
                f"`r3dnas latency-table`); got {got!r}"
            )
        try:
            layers_ms: dict[str, float] = {}
            layers: dict[str, Layer] = {}
            details: dict[str, dict[str, Any]] = {}
            for key, entry in dict(data["layers"]).items():
                layers_ms[key] = float(entry["median_ms"])
                details[key] = {k: v for k, v in entry.items() if k not in ("median_ms", "layer")}
                if "layer" in entry:
                    layers[key] = Layer.from_dict(entry["layer"])
            return cls(
                layers_ms=layers_ms,
                device=str(data["device"]),
                threads=int(data["threads"]),
                mode=str(data["mode"]),
                input_shape=parse_input_shape(data["input_shape"]),
                versions={str(k): str(v) for k, v in dict(data.get("versions", {})).items()},
                network_term=NetworkTerm.from_dict(data.get("network_term", {})),
                layers=layers,
                details=details,
                protocol=dict(data.get("protocol", {})),
                space=str(data.get("space", "")),
                created=str(data.get("created", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{source}: not a valid latency table ({exc!r})") from None

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (atomically: a reader never sees half a table)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read a table written by :meth:`save`; any problem is one :class:`ConfigError`."""
        path = Path(path)
        text = read_text(
            path,
            failure="latency table {path} cannot be read: {reason}; build it with "
            "`r3dnas latency-table --space SPACE --out FILE`",
        )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"latency table {str(path)!r} is not JSON: {exc}") from None
        return cls.from_dict(data, source=f"latency table {str(path)!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class LatencyPrediction:
    """A predicted latency (ms, batch 1) and how it was made.

    ``missing`` lists the layer keys the table has no entry for; the prediction is then
    ``nan`` (a partial sum would understate the latency).
    """

    latency_ms: float
    layers_ms: float
    n_layers: int
    missing: tuple[str, ...] = ()


def predict_latency(
    config: ResNet3dConfig,
    table: LatencyTable,
    input_shape: Sequence[int] | str | None = None,
    *,
    include_head: bool = False,
    num_classes: int = 400,
) -> LatencyPrediction:
    """``config``'s latency on ``table``'s device, from its layers (see the module docs).

    Args:
        input_shape: the clip (default: the table's).

    Raises:
        ConfigError: a shape that collapses.
    """
    shape = table.input_shape if input_shape is None else input_shape
    keys = layer_keys(config, shape, include_head=include_head, num_classes=num_classes)
    lookup = table.layers_ms
    total = 0.0
    missing: list[str] = []
    for key in keys:
        ms = lookup.get(key)
        if ms is None:
            missing.append(key)
        else:
            total += ms
    if missing:
        return LatencyPrediction(
            latency_ms=math.nan,
            layers_ms=total,
            n_layers=len(keys),
            missing=tuple(dict.fromkeys(missing)),
        )
    return LatencyPrediction(
        latency_ms=table.network_term.apply(total, len(keys)),
        layers_ms=total,
        n_layers=len(keys),
    )
