"""Keep credentials out of everything r3dnas prints, logs or sends to wandb.

Storage URLs carry passwords (``postgresql://user:secret@host/db``) and specs or error messages
can carry them along, so every value that leaves the process through a printout, a log line or
a wandb run goes through :func:`redact` first. Redaction is by shape, not by knowing every field:
any ``scheme://user:password@host`` inside any string, any ``password=``/``token=``-like query
parameter, and the value of any mapping key named like a secret become ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "is_secret_key", "redact", "redact_url"]

MASK = "***"

# NOTE: the password runs up to the *last* '@' before the host, as urllib.parse does it, so a
# password written with a raw '@' (``u:p@ss@host``) is masked whole instead of leaking ``ss``.
_USERINFO_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*):(?P<password>[^\s/?#]*)"
    r"@(?=[^\s@/?#]*(?:[/?#\s'\"]|$))"
)
# libpq and SQLAlchemy also accept credentials as query parameters (``?password=...``).
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|secret|token|access_token|api_key|apikey|sslpassword)=)"
    r"(?P<value>[^&#;\s'\"]*)",
    re.IGNORECASE,
)
_SECRET_SUBSTRINGS = (
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "credential",
)
_SECRET_WORDS = frozenset({"pwd", "token", "auth_token"})


def redact_url(url: str) -> str:
    """Mask the password of a URL, keeping scheme, user, host, port, path and query readable.

    ``postgresql+psycopg://u:p%40ss@h:5432/db?sslmode=require`` becomes
    ``postgresql+psycopg://u:***@h:5432/db?sslmode=require``, and ``?password=x`` becomes
    ``?password=***``. Strings without a password (``sqlite:///runs/a.db``, journal paths,
    ``postgresql://u@h/db``) come back unchanged, so the result is still a usable label.
    """
    if "://" not in url and "=" not in url:
        return url
    masked = _USERINFO_PASSWORD.sub(_mask_password, url)
    return _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, masked)


def _mask_password(match: re.Match[str]) -> str:
    # NOTE: an empty password (``u:@h``) hides nothing; leave it as written.
    if not match.group("password"):
        return match.group(0)
    return f"{match.group('head')}:{MASK}@"


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a credential (``password``, ``db_secret``, ``api_key``, ...).

    Whole words are required for short names, so ``max_tokens`` or ``pwd_dir`` style keys that
    merely contain ``token`` are not flagged, while ``WANDB_API_KEY`` and ``dbPassword`` are.
    """
    if not isinstance(key, str):
        return False
    norm = key.lower().replace("-", "_")
    if any(part in norm for part in _SECRET_SUBSTRINGS):
        return True
    words = [w for w in re.split(r"[^a-z0-9]+", norm) if w]
    return any(w in _SECRET_WORDS for w in words) or norm.endswith("token")


def redact(obj: Any) -> Any:
    """A copy of ``obj`` with every credential masked.

    Walks mappings, lists and tuples (keeping their kind; mappings come back as ``dict``): string
    values go through :func:`redact_url` wherever a URL sits inside them (error messages quote
    URLs), and the value of any key for which :func:`is_secret_key` holds becomes ``***``
    (``None`` stays ``None``: it says no secret was set). Other values are returned as they are.
    """
    if isinstance(obj, str):
        return redact_url(obj)
    if isinstance(obj, Mapping):
        return {
            key: (MASK if value is not None else None) if is_secret_key(key) else redact(value)
            for key, value in obj.items()
        }
    if isinstance(obj, list):
        return [redact(item) for item in obj]
    if isinstance(obj, tuple):
        return tuple(redact(item) for item in obj)
    return obj
