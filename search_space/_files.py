"""Reading a user's file, with the one-line error every loader gives when it cannot."""

from __future__ import annotations

from pathlib import Path

from search_space.errors import ConfigError

__all__ = ["read_text"]


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
