"""Strict construction shared by every config dataclass of the three packages.

One home for the rules each config follows (STYLE §2): ``from_dict`` rejects unknown keys and
names them, ``to_dict`` gives the constructor keywords back, ``replace`` builds a validated copy,
and integers are checked without letting ``True`` pass for ``1``. :class:`StrictConfig` is the
mixin that gives a frozen dataclass the three methods; a config whose stored form differs
(tuples as lists, enums as values) overrides ``to_dict`` and calls :func:`check_keys` itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeGuard

from search_space.errors import ConfigError, ConfigTypeError

__all__ = ["StrictConfig", "check_int", "check_keys", "check_positive_int", "is_int"]


def is_int(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool`` (``True == 1`` in Python, not in a config)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: object, *, minimum: int, extra: str = "") -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int ``>= minimum``.

    ``extra`` completes the rule in the message, e.g. ``" or null (all cores)"``.
    """
    if not is_int(value) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}{extra}; got {value!r}")


# NOTE: torch.set_num_threads(100000) segfaulted a trial (and made libgomp run out of memory in
# a latency table); 1024 ran. No CPU a study runs on comes near it.
MAX_THREADS = 1024


def check_threads(name: str, value: object, *, extra: str = "") -> None:
    """A CPU thread count: an int in ``[1, MAX_THREADS]`` (``extra`` completes the rule)."""
    if not is_int(value) or not 1 <= value <= MAX_THREADS:
        raise ConfigError(f"{name} must be an int in [1, {MAX_THREADS}]{extra}; got {value!r}")


def check_positive_int(name: str, value: object) -> None:
    """A positive int; a value of another type is a :class:`ConfigTypeError` (a TypeError)."""
    if not is_int(value):
        raise ConfigTypeError(f"{name} must be a positive int; got {value!r}")
    if value < 1:
        raise ConfigError(f"{name} must be a positive int; got {value!r}")


def check_keys(
    cls: type, data: object, *, what: str, where: str = "", tolerated: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``data`` as a plain dict, after checking it is a mapping of ``cls``'s field names.

    ``where`` (e.g. ``" in section [wandb]"``) follows the unknown keys in the message. Keys in
    ``tolerated`` pass too; the caller pops and checks them.

    Raises:
        ConfigError: ``data`` is no mapping, or has keys that are not fields of ``cls``; the
            message names ``what`` (e.g. ``"train config"``), the unknown keys and the allowed
            ones in declaration order.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a {what} must be a mapping; got {type(data).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known) - set(tolerated), key=str)
    if unknown:
        raise ConfigError(
            f"unknown {what} key(s) {', '.join(map(repr, unknown))}{where}; "
            f"allowed: {', '.join(known)}"
        )
    return dict(data)


class StrictConfig:
    """Mixin for ``@dataclass(frozen=True, kw_only=True, slots=True)`` configs.

    Subclasses name themselves in ``config_name`` (and where they are written, in
    ``config_where``; both used in error messages) and validate in ``__post_init__``; they get
    ``to_dict``, a strict ``from_dict`` and a validating ``replace``.
    """

    __slots__ = ()
    config_name: ClassVar[str] = "config"
    config_where: ClassVar[str] = ""
    if TYPE_CHECKING:
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def to_dict(self) -> dict[str, Any]:
        """The constructor keywords: ``type(self).from_dict(self.to_dict()) == self``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from ``to_dict()`` output; unknown keys are rejected by name."""
        return cls(**check_keys(cls, data, what=cls.config_name, where=cls.config_where))

    def check_ints(self, **minimums: int) -> None:
        """Raise :class:`ConfigError` (via :func:`check_int`) for the first named field that is
        not an int >= its minimum, in the order given. A field whose default is None may be
        None (unset): it is checked only when set.

        Why here: every config validates integer fields the same way; one declarative line per
        config keeps the minimums readable and the rule (and its message) in one place."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if value is None and fields[name].default is None:
                continue
            check_int(name, value, minimum=minimum)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, validated again."""
        return dataclasses.replace(self, **changes)
