"""``SearchSpace``: which ResNet3d choices a study searches, declared as data.

A space is a base :class:`ResNet3dConfig` (everything not searched), the input shape it is
declared for, and a list of dimensions, each :class:`Fixed` (overrides the base) or a
:class:`Choice` (searched). Dimension names are the Optuna parameter names::

    depth  base_channels  conv1_kernel_t  conv1_stride_t  pool1_stride_t  inflate_style
    with_pool2  layerN.inflate  layerN.non_local  layerN.dilation  layerN.spatial_stride
    layerN.temporal_stride

``layerN.inflate`` / ``layerN.non_local`` take a per-stage pattern: a family (``none``, ``all``,
``alternate`` = 1,0,1,0…, ``alternate_odd`` = 0,1,0,1…), which fits any number of blocks, or an
explicit bit string such as ``"1010"`` (one bit per block). ``conv1_kernel_t`` is the temporal
size of conv1's kernel (its spatial size stays the base's).

The TOML form (``SearchSpace.from_toml``; see ``search_space/spaces/*.toml``)::

    name = "example"
    base = "i3d_r50"                 # a preset, a JSON config file, or a table (below)
    input_shape = [1, 3, 32, 224, 224]

    [dimensions]
    inflate_style = ["3x1x1", "3x3x3"]   # a list is a Choice
    layer3.inflate = ["none", "alternate", "111000"]
    with_pool2 = false                   # a scalar is Fixed

A table base is ResNet3d keyword arguments, optionally on top of a preset:
``[base] preset = "i3d_r50"  base_channels = 32``.

Feasibility: :meth:`SearchSpace.sample` and :meth:`SearchSpace.config_from_params` either
return a config that is valid and whose every layer has a non-empty output for
``input_shape``, or raise :class:`InfeasibleConfig` with the reason, before any network is
built.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from search_space._files import read_text
from search_space.config import ARCH_SETTINGS, ResNet3dConfig
from search_space.cost import cost
from search_space.dimensions import (
    PATTERN_FAMILIES,
    STAGE_PARAMETER,
    Choice,
    Fixed,
    Value,
    expand_pattern,
    family_of,
    parameter_names_help,
)
from search_space.errors import ConfigError, InputTooSmallError
from search_space.presets import PRESETS, preset
from search_space.shapes import Shape5, ShapeTable, output_shapes, parse_input_shape

if TYPE_CHECKING:
    from optuna.trial import BaseTrial

# NOTE: Choice, Fixed and expand_pattern are re-exported so a space is declared from one import.
__all__ = [
    "Choice",
    "Fixed",
    "InfeasibleConfig",
    "SearchSpace",
    "expand_pattern",
    "load_space",
    "shipped_spaces",
]


_TOP_KEYS = ("name", "description", "base", "input_shape", "dimensions")
# Dimensions some networks do not read (mmaction2 ignores ``inflate_style`` when no Bottleneck
# block is inflated): :meth:`SearchSpace.sample` suggests them only when they change the network.
CONDITIONAL = ("inflate_style",)
_SIZE_LIMIT = 1_000_000
_LOG = logging.getLogger(__name__)


class InfeasibleConfig(ConfigError):
    """A combination of choices that is invalid, or too small for the space's input shape.

    ``reason`` is the validation or shape message, ``params`` the parameters that led to it.
    """

    def __init__(self, reason: str, params: Mapping[str, Value]) -> None:
        self.reason = reason
        self.params = dict(params)
        super().__init__(f"infeasible configuration {json.dumps(self.params)}: {reason}")


# ---------------------------------------------------------------------- the space
@dataclass(frozen=True, kw_only=True, slots=True)
class SearchSpace:
    """A base config, the input shape it is declared for, and the dimensions searched.

    Build one in Python (``SearchSpace(base=preset("i3d_r50"), input_shape=(1, 3, 32, 224,
    224), dimensions=(Choice("inflate_style", ("3x1x1", "3x3x3")),))``) or from TOML. Every
    declared value is checked on construction (types, stage names, bit-string lengths for
    every depth choice), so sampling can only fail for combinations, never for typos.
    """

    base: ResNet3dConfig
    input_shape: Shape5
    dimensions: tuple[Choice | Fixed, ...] = ()
    name: str = ""
    description: str = ""
    _fixed_base: ResNet3dConfig = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.base, ResNet3dConfig):
            raise ConfigError(f"base must be a ResNet3dConfig; got {type(self.base).__name__}")
        shape = parse_input_shape(self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "dimensions", tuple(self.dimensions))
        if shape[1] != self.base.in_channels:
            raise ConfigError(
                f"input_shape has {shape[1]} channels but base in_channels is "
                f"{self.base.in_channels}"
            )
        for dim in self.dimensions:
            if not isinstance(dim, Choice | Fixed):
                raise ConfigError(f"dimensions must be Choice or Fixed; got {dim!r}")
            self._check_stage(dim)
        names = [d.name for d in self.dimensions]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"dimension(s) {', '.join(map(repr, repeated))} declared twice")
        self._check_block_counts()
        try:
            fixed_base = self._build(self._fixed_values())
        except ConfigError as exc:
            raise ConfigError(f"base with the fixed dimensions is invalid: {exc}") from None
        object.__setattr__(self, "_fixed_base", fixed_base)

    # ------------------------------------------------------------------ declaration checks
    def _check_stage(self, dim: Choice | Fixed) -> None:
        match = STAGE_PARAMETER.fullmatch(dim.name)
        if match and int(match.group(1)) > self.base.num_stages:
            n = self.base.num_stages
            raise ConfigError(
                f"{dim.name}: the base has {n} stage(s); stage dimensions are layer1..layer{n}"
            )

    def _depths(self) -> tuple[int, ...]:
        for dim in self.dimensions:
            if dim.name == "depth":
                return tuple(int(v) for v in _dim_values(dim))
        return (self.base.depth,)

    def _blocks(self, depth: int) -> tuple[int, ...]:
        if self.base.stage_blocks is not None:
            return self.base.stage_blocks
        return ARCH_SETTINGS[depth][1][: self.base.num_stages]

    def _check_block_counts(self) -> None:
        """Bit strings must fit every depth choice; base patterns must follow a depth change."""
        values = {d.name: _dim_values(d) for d in self.dimensions}
        fixed = {d.name for d in self.dimensions if isinstance(d, Fixed)}
        for depth in self._depths():
            blocks = self._blocks(depth)
            for i, count in enumerate(blocks):
                for key, base_bits in (
                    ("inflate", self.base.inflate[i]),
                    ("non_local", self.base.non_local[i]),
                ):
                    name = f"layer{i + 1}.{key}"
                    for value in values.get(name, ()):
                        if value not in PATTERN_FAMILIES and len(str(value)) != count:
                            raise ConfigError(
                                f"{name}: {value!r} has {len(str(value))} bits but layer{i + 1} "
                                f"has {count} block(s) at depth {depth}; use one bit per block "
                                f"or a family ({', '.join(PATTERN_FAMILIES)})"
                            )
                    if name in fixed or len(base_bits) == count or family_of(base_bits):
                        continue
                    raise ConfigError(
                        f"depth: {depth} gives layer{i + 1} {count} block(s) but the base's "
                        f"{key}[{i}] {list(base_bits)} has {len(base_bits)} and is no family; "
                        f"fix {name} to a family or give the base stage_blocks"
                    )

    # ------------------------------------------------------------------ accessors
    @property
    def choices(self) -> tuple[Choice, ...]:
        return tuple(d for d in self.dimensions if isinstance(d, Choice))

    def param_names(self) -> tuple[str, ...]:
        """The Optuna parameter names, in declaration order."""
        return tuple(d.name for d in self.choices)

    def _fixed_values(self) -> dict[str, Value]:
        return {d.name: d.value for d in self.dimensions if isinstance(d, Fixed)}

    def fixed_base(self) -> ResNet3dConfig:
        """The base config with the :class:`Fixed` dimensions applied (not checked for shape)."""
        return self._fixed_base

    # ------------------------------------------------------------------ configs
    def sample(self, trial: BaseTrial) -> ResNet3dConfig:
        """Suggest every :class:`Choice` through ``trial`` and return the config.

        This is the only code that calls ``trial.suggest_*``. Raises :class:`InfeasibleConfig`
        (after the suggestions, so the trial holds the parameters) when the combination is
        invalid or too small for ``input_shape``.

        The space is conditional: a :data:`CONDITIONAL` dimension is suggested only when its
        values build different networks given the others (``inflate_style`` only when some
        Bottleneck block is inflated), so a trial's parameters are those that shaped its
        network and no sample is spent on a spelling of a network already proposed.
        """
        # NOTE: Optuna types the suggestion as any categorical; it is one of d.values, and
        # config_from_params checks that (type included) before using it.
        params = {
            d.name: cast(Value, trial.suggest_categorical(d.name, d.values))
            for d in self.choices
            if d.name not in CONDITIONAL
        }
        for d in self.choices:
            if d.name in CONDITIONAL and self._shapes_network(d, params):
                params[d.name] = cast(Value, trial.suggest_categorical(d.name, d.values))
        return self.config_from_params(params)

    def _shapes_network(self, dim: Choice, params: Mapping[str, Value]) -> bool:
        """Whether ``dim``'s values build different networks (canonical digests) given
        ``params``; an invalid combination counts as different (it is suggested, then
        reported infeasible as before)."""
        digests = set()
        fixed = self._fixed_values()
        for value in dim.values:
            try:
                digests.add(self._build({**fixed, **params, dim.name: value}).digest())
            except ConfigError:
                return True
        return len(digests) > 1

    def config_from_params(self, params: Mapping[str, Value]) -> ResNet3dConfig:
        """The config for a trial's parameters (or a grid row): the inverse of :meth:`sample`.

        A searched dimension missing from ``params`` keeps the base value. Unknown names,
        values outside the declared choices, or a fixed dimension given another value raise
        :class:`ConfigError`; a valid set of parameters that gives an invalid or too small
        network raises :class:`InfeasibleConfig`.
        """
        dims = {d.name: d for d in self.dimensions}
        for name, value in params.items():
            dim = dims.get(name)
            if dim is None:
                raise ConfigError(
                    f"unknown parameter {name!r}; this space's parameters are: "
                    f"{', '.join(self.param_names()) or '(none)'}"
                )
            if isinstance(dim, Fixed):
                if not _same_value(value, dim.value):
                    raise ConfigError(
                        f"{name} is fixed to {dim.value!r} in this space; got {value!r}"
                    )
            elif not any(_same_value(value, v) for v in dim.values):
                raise ConfigError(
                    f"{name} must be one of {', '.join(map(repr, dim.values))}; got {value!r}"
                )
        try:
            config = self._build({**self._fixed_values(), **params})
        except ConfigError as exc:
            raise InfeasibleConfig(str(exc), params) from None
        self.check(config, params)
        return config

    def check(
        self, config: ResNet3dConfig, params: Mapping[str, Value] | None = None
    ) -> ShapeTable:
        """The shape table of ``config`` for ``input_shape``, or :class:`InfeasibleConfig`."""
        try:
            return output_shapes(config, self.input_shape)
        except ConfigError as exc:
            raise InfeasibleConfig(str(exc), params or {}) from None

    def _build(self, values: Mapping[str, Value]) -> ResNet3dConfig:
        """Apply dimension values to the base; the config constructor validates the result."""
        base = self.base
        depth = int(values.get("depth", base.depth))
        blocks = self._blocks(depth)
        changes: dict[str, Any] = {"depth": depth}
        for name in ("base_channels", "conv1_stride_t", "pool1_stride_t", "with_pool2"):
            if name in values:
                changes[name] = values[name]
        if "inflate_style" in values:
            changes["inflate_style"] = values["inflate_style"]
        if "conv1_kernel_t" in values:
            changes["conv1_kernel"] = (values["conv1_kernel_t"], *base.conv1_kernel[1:])
        for key, field_name in (
            ("dilation", "dilations"),
            ("spatial_stride", "spatial_strides"),
            ("temporal_stride", "temporal_strides"),
        ):
            per_stage = list(getattr(base, field_name))
            for i in range(base.num_stages):
                per_stage[i] = values.get(f"layer{i + 1}.{key}", per_stage[i])
            changes[field_name] = tuple(per_stage)
        for key in ("inflate", "non_local"):
            per_block = []
            for i, count in enumerate(blocks):
                pattern = values.get(f"layer{i + 1}.{key}")
                base_bits: tuple[int, ...] = getattr(base, key)[i]
                if pattern is None and len(base_bits) == count:
                    per_block.append(base_bits)
                    continue
                if pattern is None:
                    pattern = family_of(base_bits)
                    if pattern is None:  # pragma: no cover - rejected on construction
                        raise ConfigError(f"{key}[{i}] {list(base_bits)} has no family")
                per_block.append(expand_pattern(str(pattern), count))
            changes[key] = tuple(per_block)
        return base.replace(**changes)

    # ------------------------------------------------------------------ enumeration
    def grid(self, factors: Sequence[str]) -> list[dict[str, Value]]:
        """The full factorial over ``factors`` (searched parameter names), all else at base.

        Each row is a ``params`` dict for :meth:`config_from_params`; rows are listed with the
        last factor varying fastest. Rows are not filtered: an infeasible one raises
        :class:`InfeasibleConfig` when turned into a config.
        """
        if isinstance(factors, str):
            factors = (factors,)
        by_name = {d.name: d for d in self.choices}
        for name in factors:
            if name not in by_name:
                raise ConfigError(
                    f"unknown factor {name!r}; the searched parameters are: "
                    f"{', '.join(self.param_names()) or '(none)'}"
                )
        if len(set(factors)) != len(factors):
            raise ConfigError(f"factors repeat a name; got {list(factors)}")
        levels = [by_name[name].values for name in factors]
        return [dict(zip(factors, row, strict=True)) for row in itertools.product(*levels)]

    def architectures(
        self, *, limit: int = _SIZE_LIMIT
    ) -> dict[str, tuple[dict[str, Value], ResNet3dConfig]]:
        """Every distinct feasible network of the space: ``digest -> (params, config)``.

        ``params`` are those of the first combination of choices (in :meth:`grid` order: the
        last parameter varies fastest) that builds the network, and ``config`` is what
        :meth:`config_from_params` returns for them. Invalid combinations and networks too small
        for ``input_shape`` are left out. Exact: every combination is built as a config (no
        module) and shapes are checked once per digest, through the cached analytic cost;
        building and canonicalising dominates, roughly 0.2-0.4 ms per combination on one CPU
        core, so spaces with more than ``limit`` combinations are refused with a
        :class:`ConfigError` giving the count.
        """
        combinations = 1
        for dim in self.choices:
            combinations *= len(dim.values)
        if combinations > limit:
            raise ConfigError(
                f"the space has {combinations} combinations, more than the enumeration limit "
                f"{limit}; pass a larger limit or fix some dimensions"
            )
        names = self.param_names()
        feasible: dict[str, tuple[dict[str, Value], ResNet3dConfig]] = {}
        infeasible: set[str] = set()
        invalid = 0
        for row in itertools.product(*(d.values for d in self.choices)):
            params = dict(zip(names, row, strict=True))
            try:
                config = self._build({**self._fixed_values(), **params})
            except ConfigError:  # an invalid combination of choices: not an architecture
                invalid += 1
                continue
            digest = config.digest()
            if digest in feasible or digest in infeasible:
                continue  # NOTE: one network, one shape table: check each digest once
            if self._collapses(config):
                infeasible.add(digest)
            else:
                feasible[digest] = (params, config)
        _LOG.debug(
            "space %r: %d combinations, %d invalid, %d architectures too small for %s, "
            "%d feasible",
            self.name,
            combinations,
            invalid,
            len(infeasible),
            list(self.input_shape),
            len(feasible),
        )
        return feasible

    def size(self, *, limit: int = _SIZE_LIMIT) -> int:
        """The number of distinct feasible architectures (see :meth:`architectures`)."""
        return len(self.architectures(limit=limit))

    def _collapses(self, config: ResNet3dConfig) -> bool:
        """Whether some layer of a valid ``config`` has an empty output for ``input_shape``."""
        try:
            # NOTE: the analytic cost walks the same shapes through cached per-block
            # arithmetic and raises output_shapes' own error on a collapse: ~30x faster.
            cost(config, self.input_shape)
        except InputTooSmallError:
            # NOTE: only this; any other error is a real one and must not read as "0 networks".
            return True
        return False

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; ``from_dict(to_dict())`` gives an equal space (the base inline)."""
        return {
            "name": self.name,
            "description": self.description,
            "base": self.base.to_dict(),
            "input_shape": list(self.input_shape),
            "dimensions": {
                d.name: list(d.values) if isinstance(d, Choice) else d.value
                for d in self.dimensions
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, root: Path | None = None) -> SearchSpace:
        """Build from the TOML/JSON form; ``root`` resolves a relative base config path."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a search space must be a table; got {type(data).__name__}")
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(_TOP_KEYS)}"
            )
        for key in ("base", "input_shape"):
            if key not in data:
                raise ConfigError(f"missing key {key!r}; a space needs base and input_shape")
        for key in ("name", "description"):
            if not isinstance(data.get(key, ""), str):
                raise ConfigError(f"{key} must be a string; got {data[key]!r}")
        base = _resolve_base(data["base"], root)
        try:
            input_shape = parse_input_shape(data["input_shape"])
        except ConfigError as exc:
            raise ConfigError(f"input_shape: {exc}") from None
        dimensions = _parse_dimensions(data.get("dimensions", {}))
        return cls(
            base=base,
            input_shape=input_shape,
            dimensions=dimensions,
            name=data.get("name", ""),
            description=data.get("description", ""),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> SearchSpace:
        """Load a space file; any mistake is one :class:`ConfigError` line naming the key."""
        path = Path(path)
        text = read_text(path, failure="cannot read search space file {path}: {reason}")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        data.setdefault("name", path.stem)
        try:
            return cls.from_dict(data, root=path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


def _same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type (``True == 1`` in Python, not here)."""
    return type(a) is type(b) and a == b


def _dim_values(dim: Choice | Fixed) -> tuple[Value, ...]:
    return dim.values if isinstance(dim, Choice) else (dim.value,)


def _parse_dimensions(table: Any) -> tuple[Choice | Fixed, ...]:
    """``{name: list | scalar}``; TOML's dotted keys (``layer1.inflate``) arrive nested."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"dimensions must be a table; got {table!r}")
    flat: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            if not re.fullmatch(r"layer[1-9]", key):
                raise ConfigError(
                    f"dimensions.{key} is a table, but only layerN groups stage dimensions "
                    f"(e.g. layer2.inflate); allowed: {parameter_names_help()}"
                )
            flat.extend((f"{key}.{sub}", v) for sub, v in value.items())
        else:
            flat.append((key, value))
    dims: list[Choice | Fixed] = []
    for name, value in flat:
        try:
            if isinstance(value, list | tuple):
                dims.append(Choice(name, tuple(value)))
            elif isinstance(value, Mapping):
                raise ConfigError(f"{name}: expected a value or a list of values; got a table")
            else:
                dims.append(Fixed(name, value))
        except ConfigError as exc:
            raise ConfigError(f"dimensions.{exc}") from None
    return tuple(dims)


def _resolve_base(value: Any, root: Path | None) -> ResNet3dConfig:
    """A preset name, a JSON config path (relative to ``root``), a table, or a config."""
    if isinstance(value, ResNet3dConfig):
        return value
    try:
        if isinstance(value, str):
            if value in PRESETS:
                return preset(value)
            path = Path(value)
            if root is not None and not path.is_absolute():
                path = root / path
            if value.endswith(".json") or path.is_file():
                text = read_text(path, failure="cannot read {path}: {reason}")
                return ResNet3dConfig.from_json(text)
            raise ConfigError(
                f"unknown preset {value!r}; choose one of {', '.join(PRESETS)}, "
                "or give a .json config file or a table of ResNet3d arguments"
            )
        if isinstance(value, Mapping):
            table = dict(value)
            name = table.pop("preset", None)
            if name is None:
                return ResNet3dConfig.from_dict(table)
            if name not in PRESETS:
                raise ConfigError(
                    f"preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}"
                )
            return ResNet3dConfig.from_dict({**preset(name).to_dict(), **table})
    except ConfigError as exc:
        raise ConfigError(f"base: {exc}") from None
    raise ConfigError(f"base must be a preset name, a .json config path or a table; got {value!r}")


# ---------------------------------------------------------------------- shipped spaces
def shipped_spaces() -> tuple[str, ...]:
    """Names of the spaces in ``search_space/spaces/`` (package data)."""
    folder = resources.files("search_space") / "spaces"
    return tuple(
        sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))
    )


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A shipped space by name (``default``, ``inflation``, ``i3d_r50``) or a TOML file path."""
    text = str(name_or_path)
    if text in shipped_spaces():
        resource = resources.files("search_space") / "spaces" / f"{text}.toml"
        with resources.as_file(resource) as path:
            return SearchSpace.from_toml(path)
    path = Path(name_or_path)
    if path.is_file():
        return SearchSpace.from_toml(path)
    raise ConfigError(
        f"unknown search space {text!r}; shipped spaces: {', '.join(shipped_spaces())}, "
        "or give the path of a .toml file"
    )
