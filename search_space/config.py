"""``ResNet3dConfig``: the typed, validated form of mmaction2's ``ResNet3d`` constructor.

The field names, defaults and meanings are exactly those of
``mmaction.models.backbones.ResNet3d.__init__`` (mmaction2 1.2): that is the contract that lets a
configuration found by a study be trained in mmaction2 unchanged.

Two normalisations happen on construction, both mirroring what mmaction2 does implicitly:

* ``inflate`` and ``non_local`` are expanded to one tuple of per-block 0/1-like ints per stage
  (an int means "every stage", a per-stage int means "every block"). Entries beyond
  ``num_stages`` are dropped, as mmaction2 never reads them.
* Sequences become tuples and ``conv1_kernel`` an int becomes a triple.

Everything else is validated, not coerced: a bad value raises :class:`ConfigError` naming the
field, the value and what is allowed, before any tensor is built; a value of the wrong type
(``pretrained=[...]``, ``spatial_strides=2``) raises its subclass :class:`ConfigTypeError`, which
is also a ``TypeError`` as in mmaction2.

The config is keyword-only on purpose; :class:`search_space.ResNet3d`'s constructor is the one
that also takes mmaction2's positional order.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self, TypeAlias

from search_space.arch import (
    ARCH_SETTINGS,
    EXPANSION,
    BlockType,
    InflateStyle,
    Style,
    has_downsample,
)
from search_space.canonical import canonicalize
from search_space.errors import ConfigError, ConfigTypeError
from search_space.layer_types import check_layer_cfg
from search_space.strict import StrictConfig, check_keys, check_positive_int, is_int

# NOTE: the enums and ARCH_SETTINGS live in search_space.arch (canonical.py reads them without
# importing this module); they are re-exported here, where code has always imported them.
__all__ = [
    "ARCH_SETTINGS",
    "BlockType",
    "InflateStyle",
    "ResNet3dConfig",
    "Style",
    "readable_architecture",
]

PerBlock: TypeAlias = tuple[int, ...]

NON_LOCAL_KEYS = ("sub_sample", "use_scale", "reduction", "mode", "conv_cfg", "norm_cfg")
NON_LOCAL_MODES = ("embedded_gaussian", "gaussian", "dot_product", "concatenation")


def _default_conv_cfg() -> dict[str, Any]:
    return {"type": "Conv3d"}


def _default_norm_cfg() -> dict[str, Any]:
    return {"type": "BN3d", "requires_grad": True}


def _default_act_cfg() -> dict[str, Any]:
    return {"type": "ReLU", "inplace": True}


@dataclass(frozen=True, kw_only=True, slots=True, eq=True)
class ResNet3dConfig(StrictConfig):
    """Every argument of mmaction2's ``ResNet3d``, validated.

    ``ResNet3dConfig(**kwargs)`` accepts what ``ResNet3d(**kwargs)`` accepts (ints broadcast for
    ``inflate``/``non_local``, lists for tuples). ``init_cfg`` is deliberately absent: it is an
    mmengine initialisation hook, not an architecture choice.
    """

    config_name = "ResNet3d config"

    depth: int = 50
    pretrained: str | None = None
    stage_blocks: tuple[int, ...] | None = None
    pretrained2d: bool = True
    in_channels: int = 3
    num_stages: int = 4
    base_channels: int = 64
    out_indices: tuple[int, ...] = (3,)
    spatial_strides: tuple[int, ...] = (1, 2, 2, 2)
    temporal_strides: tuple[int, ...] = (1, 1, 1, 1)
    dilations: tuple[int, ...] = (1, 1, 1, 1)
    conv1_kernel: tuple[int, int, int] = (3, 7, 7)
    conv1_stride_s: int = 2
    conv1_stride_t: int = 1
    pool1_stride_s: int = 2
    pool1_stride_t: int = 1
    with_pool1: bool = True
    with_pool2: bool = True
    style: str = Style.PYTORCH.value
    frozen_stages: int = -1
    inflate: Any = (1, 1, 1, 1)
    inflate_style: str = InflateStyle.T3X1X1.value
    conv_cfg: dict[str, Any] = field(default_factory=_default_conv_cfg)
    norm_cfg: dict[str, Any] = field(default_factory=_default_norm_cfg)
    act_cfg: dict[str, Any] = field(default_factory=_default_act_cfg)
    norm_eval: bool = False
    with_cp: bool = False
    non_local: Any = (0, 0, 0, 0)
    non_local_cfg: dict[str, Any] = field(default_factory=dict)
    zero_init_residual: bool = True

    def __post_init__(self) -> None:
        _normalize(self)
        self.validate()

    # NOTE: the cfg dicts make the generated hash fail; the digest is the identity instead.
    def __hash__(self) -> int:
        return hash(self.digest())

    # ------------------------------------------------------------------ derived values
    @property
    def block_type(self) -> BlockType:
        return ARCH_SETTINGS[self.depth][0]

    @property
    def expansion(self) -> int:
        return EXPANSION[self.block_type]

    @property
    def blocks_per_stage(self) -> tuple[int, ...]:
        """The number of blocks in each stage (``stage_blocks`` or the depth's default)."""
        if self.stage_blocks is not None:
            return self.stage_blocks
        return ARCH_SETTINGS[self.depth][1][: self.num_stages]

    @property
    def feat_dim(self) -> int:
        """Channels of the last stage's output, mmaction2's ``ResNet3d.feat_dim``."""
        return self.expansion * self.base_channels * 2 ** (len(self.blocks_per_stage) - 1)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every field and cross-field rule; raise :class:`ConfigError` on the first."""
        _validate(self)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """The constructor keyword arguments as plain JSON types (tuples become lists)."""
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from ``to_dict()`` output or any mmaction2 ``ResNet3d`` keyword dict.

        Unknown keys are rejected by name (mmaction2's ``type`` key is tolerated when it says
        ``ResNet3d``, so a backbone dict from an mmaction2 config can be passed as it is, and
        a ``None`` ``init_cfg`` is dropped).
        """
        kwargs = check_keys(cls, data, what=cls.config_name, tolerated=("type", "init_cfg"))
        kind = kwargs.pop("type", "ResNet3d")
        if kind != "ResNet3d":
            raise ConfigError(f"type must be 'ResNet3d'; got {kind!r}")
        if kwargs.get("init_cfg", "absent") is None:
            del kwargs["init_cfg"]
        return cls(**kwargs)

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys): what digests and trial attributes store."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ResNet3dConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config JSON is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def digest(self) -> str:
        """A short stable identity of the network this config builds (12 hex digits of SHA-256).

        It hashes the canonical form (:func:`search_space.canonical.canonicalize`), so spellings
        that build the same network (any ``inflate_style`` when nothing is inflated, ...) share
        one digest and a study never trains the same architecture twice.
        """
        return canonicalize(self).exact_digest()

    def exact_digest(self) -> str:
        """12 hex digits of SHA-256 of these exact field values (no canonicalization)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]


# ---------------------------------------------------------------------- helpers
def _to_json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, StrEnum):
        return value.value
    return value


def _set(config: ResNet3dConfig, name: str, value: Any) -> None:
    object.__setattr__(config, name, value)


def _as_tuple(name: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigTypeError(f"{name} must be a sequence of ints; got {value!r}")
    return tuple(value)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if is_int(value) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{name} must be true or false; got {value!r}")


def _expand_per_block(
    name: str, value: Any, num_stages: int, blocks: tuple[int, ...]
) -> tuple[PerBlock, ...]:
    """Expand mmaction2's two-level broadcast of ``inflate`` / ``non_local``."""
    if isinstance(value, bool) or is_int(value):
        per_stage: tuple[Any, ...] = (int(value),) * num_stages
    else:
        per_stage = _as_tuple(name, value)
        if len(per_stage) < num_stages:
            raise ConfigError(
                f"{name} has {len(per_stage)} entries but num_stages is {num_stages}"
            )
        per_stage = per_stage[:num_stages]
    expanded = []
    for i, stage_value in enumerate(per_stage):
        if isinstance(stage_value, bool) or is_int(stage_value):
            expanded.append((int(stage_value),) * blocks[i])
            continue
        per_block = _as_tuple(f"{name}[{i}]", stage_value)
        if len(per_block) != blocks[i]:
            raise ConfigError(
                f"{name}[{i}] has {len(per_block)} entries but layer{i + 1} has {blocks[i]} "
                f"blocks (stage blocks {list(blocks)}); give one 0/1 per block"
            )
        for v in per_block:
            if not (isinstance(v, bool) or is_int(v)):
                raise ConfigError(f"{name}[{i}] entries must be 0 or 1; got {v!r}")
        expanded.append(tuple(int(v) for v in per_block))
    return tuple(expanded)


def _normalize(config: ResNet3dConfig) -> None:
    """Bring sequence fields to tuples and broadcast inflate/non_local, as mmaction2 reads them."""
    c = config
    if not is_int(c.depth) or c.depth not in ARCH_SETTINGS:
        raise ConfigError(
            f"depth must be one of {', '.join(map(str, ARCH_SETTINGS))}; got {c.depth!r}"
        )
    if not is_int(c.num_stages) or not 1 <= c.num_stages <= 4:
        raise ConfigError(f"num_stages must be an int from 1 to 4; got {c.num_stages!r}")
    for name in ("out_indices", "spatial_strides", "temporal_strides", "dilations"):
        _set(c, name, _as_tuple(name, getattr(c, name)))
    if c.stage_blocks is not None:
        _set(c, "stage_blocks", _as_tuple("stage_blocks", c.stage_blocks))
        if len(c.stage_blocks) != c.num_stages:
            raise ConfigError(
                f"stage_blocks has {len(c.stage_blocks)} entries but num_stages is {c.num_stages}"
            )
        for b in c.stage_blocks:
            if not is_int(b) or b < 1:
                raise ConfigError(f"stage_blocks entries must be positive ints; got {b!r}")
    kernel: Any = c.conv1_kernel
    if is_int(kernel):
        kernel = (kernel,) * 3
    _set(c, "conv1_kernel", _as_tuple("conv1_kernel", kernel))
    for name in (
        "pretrained2d",
        "with_pool1",
        "with_pool2",
        "norm_eval",
        "with_cp",
        "zero_init_residual",
    ):
        _set(c, name, _as_bool(name, getattr(c, name)))
    blocks = c.blocks_per_stage
    _set(c, "inflate", _expand_per_block("inflate", c.inflate, c.num_stages, blocks))
    _set(c, "non_local", _expand_per_block("non_local", c.non_local, c.num_stages, blocks))
    for name in ("conv_cfg", "norm_cfg", "act_cfg", "non_local_cfg"):
        value = getattr(c, name)
        if not isinstance(value, Mapping):
            raise ConfigTypeError(f"{name} must be a dict; got {value!r}")
        _set(c, name, copy.deepcopy(dict(value)))
    if isinstance(c.style, StrEnum):
        _set(c, "style", c.style.value)
    if isinstance(c.inflate_style, StrEnum):
        _set(c, "inflate_style", c.inflate_style.value)


def _check_positive_ints(name: str, values: tuple[Any, ...], length: int | None = None) -> None:
    if length is not None and len(values) != length:
        raise ConfigError(f"{name} has {len(values)} entries but num_stages is {length}")
    for v in values:
        if not is_int(v):
            raise ConfigTypeError(f"{name} entries must be positive ints; got {list(values)}")
        if v < 1:
            raise ConfigError(f"{name} entries must be positive ints; got {list(values)}")


def _validate(c: ResNet3dConfig) -> None:
    n = c.num_stages
    if c.pretrained is not None and not isinstance(c.pretrained, str):
        # NOTE: a TypeError too, as mmaction2 raises (its tests expect it).
        raise ConfigTypeError(f"pretrained must be a file path or null; got {c.pretrained!r}")
    check_positive_int("in_channels", c.in_channels)
    check_positive_int("base_channels", c.base_channels)
    if not c.out_indices:
        raise ConfigError("out_indices must name at least one stage; got []")
    for i in c.out_indices:
        if not is_int(i) or not 0 <= i < n:
            raise ConfigError(
                f"out_indices entries must be stage indices 0..{n - 1} (num_stages {n}); "
                f"got {list(c.out_indices)}"
            )
    _check_positive_ints("spatial_strides", c.spatial_strides, n)
    _check_positive_ints("temporal_strides", c.temporal_strides, n)
    _check_positive_ints("dilations", c.dilations, n)
    if len(c.conv1_kernel) != 3:
        raise ConfigError(
            f"conv1_kernel must be an int or 3 ints (t, h, w); got {list(c.conv1_kernel)}"
        )
    _check_positive_ints("conv1_kernel", c.conv1_kernel)
    for name in ("conv1_stride_s", "conv1_stride_t", "pool1_stride_s", "pool1_stride_t"):
        check_positive_int(name, getattr(c, name))
    if c.style not in tuple(Style):
        raise ConfigError(
            f"style must be one of {', '.join(repr(s.value) for s in Style)}; got {c.style!r}"
        )
    if c.inflate_style not in tuple(InflateStyle):
        raise ConfigError(
            "inflate_style must be one of "
            f"{', '.join(repr(s.value) for s in InflateStyle)}; got {c.inflate_style!r}"
        )
    if not is_int(c.frozen_stages) or not -1 <= c.frozen_stages <= n:
        raise ConfigError(
            f"frozen_stages must be an int from -1 (nothing frozen) to num_stages {n}; "
            f"got {c.frozen_stages!r}"
        )
    _validate_non_local_cfg(c)
    _validate_layer_cfgs(c)
    _validate_temporal_downsample(c)


def _validate_non_local_cfg(c: ResNet3dConfig) -> None:
    cfg = c.non_local_cfg
    unknown = sorted(set(cfg) - set(NON_LOCAL_KEYS))
    if unknown:
        raise ConfigError(
            f"non_local_cfg has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(NON_LOCAL_KEYS)}"
        )
    mode = cfg.get("mode", "embedded_gaussian")
    if mode not in NON_LOCAL_MODES:
        raise ConfigError(
            f"non_local_cfg.mode must be one of {', '.join(map(repr, NON_LOCAL_MODES))}; "
            f"got {mode!r}"
        )
    reduction = cfg.get("reduction", 2)
    if not is_int(reduction) or reduction < 1:
        raise ConfigError(f"non_local_cfg.reduction must be a positive int; got {reduction!r}")
    for key in ("sub_sample", "use_scale"):
        if key in cfg and not isinstance(cfg[key], bool):
            raise ConfigError(f"non_local_cfg.{key} must be true or false; got {cfg[key]!r}")


def _validate_layer_cfgs(c: ResNet3dConfig) -> None:
    check_layer_cfg("conv_cfg", c.conv_cfg, kind="conv")
    check_layer_cfg("norm_cfg", c.norm_cfg, kind="norm")
    check_layer_cfg("act_cfg", c.act_cfg, kind="act")
    if c.non_local_cfg.get("conv_cfg") is not None:
        check_layer_cfg("non_local_cfg.conv_cfg", c.non_local_cfg["conv_cfg"], kind="conv")
    if c.non_local_cfg.get("norm_cfg") is not None:
        check_layer_cfg("non_local_cfg.norm_cfg", c.non_local_cfg["norm_cfg"], kind="norm")


def _validate_temporal_downsample(c: ResNet3dConfig) -> None:
    """Reject a temporal stride on a stage that gets no downsample branch.

    mmaction2 builds a downsample only when the spatial stride is not 1 or the channel count
    changes; otherwise the identity keeps the full temporal length and the residual add
    fails at run time ("The size of tensor a must match the size of tensor b").
    """
    inplanes = c.base_channels
    for i in range(c.num_stages):
        out_channels = c.base_channels * 2**i * c.expansion
        downsample = has_downsample(
            inplanes=inplanes,
            out_channels=out_channels,
            spatial_stride=c.spatial_strides[i],
        )
        if c.temporal_strides[i] != 1 and not downsample:
            raise ConfigError(
                f"temporal_strides[{i}]={c.temporal_strides[i]} needs a downsample in "
                f"layer{i + 1}, but mmaction2 builds one only when spatial_strides[{i}] != 1 or "
                "the channel count changes (the residual add would fail); set "
                f"temporal_strides[{i}] to 1 or spatial_strides[{i}] above 1"
            )
        inplanes = out_channels


def readable_architecture(config: ResNet3dConfig) -> str:
    """One line a person can read, e.g. ``R50 inflate 111-1010-101010-010 3x1x1 pool2 ...``."""
    inflate = "-".join("".join(str(b) for b in stage) for stage in config.inflate)
    parts = [f"R{config.depth}", f"inflate {inflate}"]
    if any(any(stage) for stage in config.inflate) and config.block_type == "bottleneck":
        parts.append(config.inflate_style)
    parts.append("pool2" if config.with_pool2 else "no-pool2")
    parts.append(f"conv1 {'x'.join(map(str, config.conv1_kernel))}/t{config.conv1_stride_t}")
    parts.append("d" + "".join(map(str, config.dilations)))
    parts.append("s" + "".join(map(str, config.spatial_strides)))
    parts.append("t" + "".join(map(str, config.temporal_strides)))
    if any(any(stage) for stage in config.non_local):
        parts.append("nl " + "-".join("".join(str(b) for b in s) for s in config.non_local))
    if config.base_channels != 64:
        parts.append(f"w{config.base_channels}")
    return " ".join(parts)
