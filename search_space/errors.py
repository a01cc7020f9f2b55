"""The r3dnas exception hierarchy.

Every error a user can cause derives from :class:`R3dnasError`, so the CLI can turn it into one
line on stderr and exit code 2, while anything else stays a bug with its traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConfigTypeError",
    "DataError",
    "InputTooSmallError",
    "MissingDependencyError",
    "R3dnasError",
    "TrialFailure",
]


class R3dnasError(Exception):
    """Base class of every error r3dnas raises on purpose."""


class ConfigError(R3dnasError, ValueError):
    """A configuration, spec or argument is invalid; the message names the field."""


class ConfigTypeError(ConfigError, TypeError):
    """A value has the wrong type (a list where a path or ``None`` belongs, ...).

    Also a ``TypeError`` because mmaction2 raises one for these (``pretrained`` that is neither a
    string nor ``None``), and code written against it catches that; as a :class:`ConfigError` the
    CLI still reports it in one line.
    """


class DataError(R3dnasError, ValueError):
    """A file a command reads holds a malformed value; the message names the file, the row and
    the column. The CLI exits 1 (bad data), not 2 (a usage error)."""


class InputTooSmallError(ConfigError):
    """A valid config whose layers leave an empty output for the given input shape.

    Raised by :func:`search_space.shapes.output_shapes` (and so by :func:`search_space.cost.cost`)
    naming the layer; a search space counts such a network as infeasible for its input shape.
    """


class MissingDependencyError(R3dnasError, ImportError):
    """An optional dependency is not installed; the message gives the ``pip install`` line."""


class TrialFailure(R3dnasError):
    """A trial could not be measured (non-finite loss, out of memory, ...).

    The study records the reason on the trial and goes on with the next one.
    """
