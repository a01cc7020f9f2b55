"""Search-space dimensions as data: :class:`Choice`, :class:`Fixed` and per-stage patterns.

A dimension's name is its Optuna parameter name (``inflate_style``, ``layer3.inflate``, ...);
its values are checked here for their kind (type, range, pattern syntax), so a typo in a space
file is reported where it was written. What the values do to a config lives in
:mod:`search_space.space`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from search_space.config import ARCH_SETTINGS, InflateStyle
from search_space.errors import ConfigError

__all__ = [
    "PATTERN_FAMILIES",
    "STAGE_PARAMETER",
    "Choice",
    "Fixed",
    "Value",
    "expand_pattern",
    "family_of",
    "parameter_names_help",
]

Value: TypeAlias = str | int | bool

PATTERN_FAMILIES = ("none", "all", "alternate", "alternate_odd")
# ``layer<N>.<kind>``: group 1 is the 1-based stage, group 2 the kind (inflate, dilation, ...).
STAGE_PARAMETER = re.compile(r"layer([1-9])\.([a-z_]+)")


# ---------------------------------------------------------------------- value kinds
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_positive_int(name: str, value: Any) -> None:
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{name}: values must be positive ints; got {value!r}")


def _check_pattern(name: str, value: Any) -> None:
    if isinstance(value, str) and (value in PATTERN_FAMILIES or re.fullmatch(r"[01]+", value)):
        return
    raise ConfigError(
        f"{name}: values must be a family ({', '.join(map(repr, PATTERN_FAMILIES))}) or a "
        f"string of 0/1 bits, one per block (e.g. '1010'); got {value!r}"
    )


def _check_depth(name: str, value: Any) -> None:
    if not _is_int(value) or value not in ARCH_SETTINGS:
        raise ConfigError(
            f"{name}: values must be one of {', '.join(map(str, ARCH_SETTINGS))}; got {value!r}"
        )


def _check_inflate_style(name: str, value: Any) -> None:
    if value not in tuple(InflateStyle) or not isinstance(value, str):
        allowed = ", ".join(repr(s.value) for s in InflateStyle)
        raise ConfigError(f"{name}: values must be one of {allowed}; got {value!r}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: values must be true or false; got {value!r}")


_GLOBAL_CHECKS = {
    "depth": _check_depth,
    "base_channels": _check_positive_int,
    "conv1_kernel_t": _check_positive_int,
    "conv1_stride_t": _check_positive_int,
    "pool1_stride_t": _check_positive_int,
    "inflate_style": _check_inflate_style,
    "with_pool2": _check_bool,
}
_STAGE_CHECKS = {
    "inflate": _check_pattern,
    "non_local": _check_pattern,
    "dilation": _check_positive_int,
    "spatial_stride": _check_positive_int,
    "temporal_stride": _check_positive_int,
}


def parameter_names_help() -> str:
    """The dimension names, written for an error message."""
    stage = "|".join(_STAGE_CHECKS)
    return f"{', '.join(_GLOBAL_CHECKS)}, layerN.{{{stage}}}"


def _check_value(name: str, value: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` has the right type for dimension ``name``."""
    match = STAGE_PARAMETER.fullmatch(name)
    if match and match.group(2) in _STAGE_CHECKS:
        _STAGE_CHECKS[match.group(2)](name, value)
    elif name in _GLOBAL_CHECKS:
        _GLOBAL_CHECKS[name](name, value)
    else:
        raise ConfigError(
            f"{name}: unknown dimension; allowed: {parameter_names_help()} (N = 1..4)"
        )


def expand_pattern(pattern: str, blocks: int) -> tuple[int, ...]:
    """Per-block 0/1 of a stage pattern: a family at any length, or a bit string as written."""
    if pattern == "none":
        return (0,) * blocks
    if pattern == "all":
        return (1,) * blocks
    if pattern == "alternate":
        return tuple(1 - b % 2 for b in range(blocks))
    if pattern == "alternate_odd":
        return tuple(b % 2 for b in range(blocks))
    if not re.fullmatch(r"[01]+", pattern):
        _check_pattern("pattern", pattern)  # raises, listing the families
    if len(pattern) != blocks:
        raise ConfigError(
            f"pattern {pattern!r} has {len(pattern)} bits but the stage has {blocks}"
        )
    return tuple(int(bit) for bit in pattern)


def family_of(bits: tuple[int, ...]) -> str | None:
    """The first family that expands to ``bits`` at their length, or ``None``.

    Used to carry a base pattern over to a depth with another block count.
    """
    for family in PATTERN_FAMILIES:
        if expand_pattern(family, len(bits)) == bits:
            return family
    return None


@dataclass(frozen=True, slots=True)
class Choice:
    """A searched dimension: Optuna picks one of ``values`` (categorical)."""

    name: str
    values: tuple[Value, ...]

    def __post_init__(self) -> None:
        if isinstance(self.values, str | bytes) or not isinstance(self.values, Sequence):
            raise ConfigError(f"{self.name}: choices must be a list; got {self.values!r}")
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ConfigError(f"{self.name}: choices are empty; give at least one value")
        for value in self.values:
            _check_value(self.name, value)
        if len(set(self.values)) != len(self.values):
            raise ConfigError(f"{self.name}: choices repeat a value; got {list(self.values)}")


@dataclass(frozen=True, slots=True)
class Fixed:
    """A dimension pinned to one value, overriding the base config."""

    name: str
    value: Value

    def __post_init__(self) -> None:
        _check_value(self.name, self.value)
