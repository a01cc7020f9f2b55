"""A user's files: reading one with the one-line error every loader gives when it cannot, and
checking a path a command will write before the command does any work."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from search_space.errors import ConfigError

__all__ = ["output_dir", "output_file", "read_text"]


def read_text(path: Path, *, failure: str) -> str:
    """``path``'s UTF-8 text.

    Args:
        failure: the message when the file cannot be read, with ``{path}`` (filled in quoted)
            and ``{reason}`` (the operating system's words, e.g. "No such file or directory",
            "Is a directory", or where the text is not UTF-8).

    Raises:
        ConfigError: the file cannot be read (no traceback: the message says it all).
    """
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(failure.format(path=repr(str(path)), reason=exc.strerror)) from None
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start]
        reason = f"not UTF-8 text (byte {bad:#04x} at offset {exc.start}); save it as UTF-8"
        raise ConfigError(failure.format(path=repr(str(path)), reason=reason)) from None


def output_file(path: str | Path, *, option: str, suffixes: Collection[str] = ()) -> Path:
    """``path`` as a file a command may write (create or replace); nothing is created.

    Why: a command that measures or trains for an hour must refuse at once a path it cannot
    write (an existing folder, a folder below a file, a suffix its writer cannot produce),
    instead of failing at its last step with a traceback, or leaving a temporary file behind.

    Args:
        option: the flag that gave the path, named in the error (``--out``).
        suffixes: the suffixes allowed, lower case with the dot (``.png``); empty: any.

    Raises:
        ConfigError: one line naming ``option``, the path and what is allowed.
    """
    text = str(path)
    if not text.strip():
        raise ConfigError(f"{option} must be a file path; got {text!r}")
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{option} must be a file path, not an existing folder; got {text!r}")
    if suffixes and target.suffix.lower() not in suffixes:
        raise ConfigError(
            f"{option} must end in one of {', '.join(sorted(suffixes))}; got {text!r}"
        )
    _check_writable(target if target.exists() else _existing_parent(target, option, text),
                    option, text)  # fmt: skip
    return target


def output_dir(path: str | Path, *, option: str) -> Path:
    """``path`` as a folder a command may create and write into; nothing is created.

    Raises:
        ConfigError: ``path`` is empty, an existing file, or below a file (one line naming
            ``option`` and the path).
    """
    text = str(path)
    if not text.strip():
        raise ConfigError(f"{option} must be a folder path; got {text!r}")
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{option} must be a folder, not an existing file; got {text!r}")
    _existing_parent(target, option, text)
    return target


def _existing_parent(target: Path, option: str, text: str) -> Path:
    """The nearest folder above ``target`` that exists; an error when a file is in the way
    (the folders below it could never be made)."""
    for parent in target.absolute().parents:
        if parent.is_dir():
            return parent
        if parent.exists():
            raise ConfigError(
                f"{option} {text!r} cannot be written: {str(parent)!r} is a file, not a folder"
            )
    raise AssertionError("unreachable: the root is a folder")  # pragma: no cover


def _check_writable(place: Path, option: str, text: str) -> None:
    if not os.access(place, os.W_OK):
        raise ConfigError(f"{option} {text!r} cannot be written: {str(place)!r} is not writable")
