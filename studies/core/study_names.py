"""What a study may be called: its name becomes file names under the runs folder.

A study's default storage is ``<runs>/<name>.db`` and its weights, logs and wandb runs go to
``<runs>/<name>/``. So a name that is empty, holds a path separator or starts with a dot
would write outside the runs folder (an empty name put checkpoints in ``/checkpoints``; a
name ``../x`` wrote next to the project). Such names are refused where a study is created or
resumed; reading a study another tool named is left alone.
"""

from __future__ import annotations

from search_space.errors import ConfigError

__all__ = ["MAX_STUDY_NAME", "check_study_name"]

MAX_STUDY_NAME = 100  # characters; file systems allow 255 bytes, with room for suffixes


def check_study_name(name: str, *, field: str) -> str:
    """``name`` unchanged, or a one-line :class:`ConfigError` naming ``field`` (``[study] name``,
    ``--study``) and what a name may be."""
    problem = _problem(name)
    if problem is None:
        return name
    raise ConfigError(
        f"{field} {name!r} {problem}; a study name becomes a file name under the runs folder: "
        f"1-{MAX_STUDY_NAME} characters, no '/' or '\\', not starting with '.' or a space"
    )


def _problem(name: str) -> str | None:
    if not name:
        return "is empty"
    if len(name) > MAX_STUDY_NAME:
        return f"is {len(name)} characters long"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if name[0] == ".":
        return "starts with a dot"
    if name != name.strip():
        return "starts or ends with a space"
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        return "holds a control character"
    return None
