"""Deferred imports of optional dependencies with an actionable error."""

from __future__ import annotations

import importlib
from types import ModuleType

from search_space.errors import MissingDependencyError

# NOTE: module name -> the pip requirement that provides it.
_PIP_NAMES = {
    "av": "av",
    "fvcore": "fvcore",
    "matplotlib": "matplotlib",
    "optuna": "optuna",
    "pandas": "pandas",
    "wandb": "wandb",
    "psycopg": "psycopg[binary]",
    "hypothesis": "hypothesis",
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        pip_name = _PIP_NAMES.get(top, top)
        raise MissingDependencyError(
            f"{module} is required for this feature but could not be imported ({exc}); "
            f"install it with: pip install '{pip_name}'"
        ) from exc
