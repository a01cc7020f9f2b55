"""Write a spec's tables back as TOML text (the standard library reads TOML but cannot write it).

Why: a benchmark table ships with the spec that built it, as a file ``r3dnas`` loads like any
other spec. Specs hold only strings, numbers, booleans, lists of those and nested tables, so
this small writer covers them; anything else is a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from search_space.errors import ConfigError

__all__ = ["dumps_toml"]


def _value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{key}: TOML specs hold finite numbers only; got {value!r}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, Mapping):
        items = ", ".join(f"{_key(k)} = {_value(f'{key}.{k}', v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(key, v) for v in value) + "]"
    raise ConfigError(f"{key}: cannot write {type(value).__name__} {value!r} as TOML")


def _key(key: str) -> str:
    plain = key.replace("_", "").replace("-", "").isalnum()
    return key if plain and key.isascii() else json.dumps(key)


def dumps_toml(tables: Mapping[str, Mapping[str, Any]], *, header: str = "") -> str:
    """``{section: {key: value}}`` as TOML: one ``[section]`` per entry, nested mappings inline.

    Dotted keys stay quoted where they need it (``"layer1.inflate" = [...]``), so
    ``tomllib.loads(dumps_toml(t)) == t`` for every spec.
    """
    lines = [f"# {line}" for line in header.splitlines()]
    for section, table in tables.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{section}] must be a table; got {table!r}")
        lines += ["", f"[{_key(section)}]"]
        lines += [f"{_key(k)} = {_value(f'{section}.{k}', v)}" for k, v in table.items()]
    return "\n".join(lines).lstrip("\n") + "\n"
