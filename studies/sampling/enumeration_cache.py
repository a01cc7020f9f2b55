"""The cost-aware sampler's enumeration of a space, kept on disk for every later process.

Why: enumerating and costing the 24,544 networks of ``i3d_r50_gpu`` takes about 12 s of CPU
(building, shape-checking and hashing each network), and every ``r3dnas worker`` process
would pay it before its first trial. The result depends only on the space, the clip, the
head, the seed (of a sampled space) and the code that builds and costs networks, so it is
computed once and read back (a fraction of a second) by every later process.

Never stale: the file name is a hash of all that decides it: the space's ``to_dict()``, the
input shape, ``include_head``, ``num_classes``, the seed, and the *code version*, a hash of
the source of every module of ``search_space`` (how networks are built, checked, hashed and
costed) and of :mod:`studies.sampling.candidates` (how the space is enumerated). Any edit of
that code, any other space, is another file. Tables (the benchmark table's networks and
latencies, a latency table's predictions) are applied after reading, not cached.

Where: ``cache_dir() / "candidates" / "<hash>.json"`` (:func:`search_space.user_cache.
cache_dir`: ``$R3DNAS_CACHE_DIR``, else ``~/.cache/r3dnas``). Written atomically (temporary
file, then rename), so a reader never sees half a file; an unreadable or mismatched file is
ignored and the enumeration recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_space.user_cache import cache_dir

if TYPE_CHECKING:
    from search_space.dimensions import Value
    from studies.study.sections import StudySpec

__all__ = ["Enumeration", "enumeration_key", "load_enumeration", "store_enumeration"]

FORMAT = 1  # of the file; part of the key


@dataclass(frozen=True, slots=True)
class Enumeration:
    """A space's distinct networks in enumeration order, with their exact costs."""

    digests: list[str]
    params: list[dict[str, Value]]
    gflops: list[float]
    params_m: list[float]
    complete: bool


@functools.cache
def code_version() -> str:
    """A hash of the source that decides an enumeration (see the module docstring)."""
    import search_space

    root = Path(search_space.__file__).parent
    files = sorted(root.rglob("*.py")) + [Path(__file__).with_name("candidates.py")]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def enumeration_key(spec: StudySpec) -> str:
    """The hash naming the file of ``spec``'s enumeration (see the module docstring)."""
    text = json.dumps(
        {
            "format": FORMAT,
            "code": code_version(),
            "space": spec.space.to_dict(),
            "input_shape": list(spec.measure.input_shape),
            "include_head": spec.measure.include_head,
            "num_classes": spec.data.num_classes,
            "seed": spec.study.seed,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _path(key: str) -> Path:
    return cache_dir() / "candidates" / f"{key}.json"


def load_enumeration(key: str) -> Enumeration | None:
    """The stored enumeration for ``key``, or None (absent, unreadable or not this key's)."""
    try:
        data: dict[str, Any] = json.loads(_path(key).read_text())
        if data.get("key") != key:
            return None
        found = Enumeration(
            digests=[str(d) for d in data["digests"]],
            params=[dict(p) for p in data["params"]],
            gflops=[float(g) for g in data["gflops"]],
            params_m=[float(p) for p in data["params_m"]],
            complete=bool(data["complete"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    sizes = {len(found.digests), len(found.params), len(found.gflops), len(found.params_m)}
    return found if len(sizes) == 1 else None


def store_enumeration(key: str, enumeration: Enumeration) -> None:
    """Keep ``enumeration`` for ``key``; a folder that cannot be written is left alone (the
    next process enumerates again)."""
    path = _path(key)
    data = {
        "key": key,
        "digests": enumeration.digests,
        "params": enumeration.params,
        "gflops": enumeration.gflops,
        "params_m": enumeration.params_m,
        "complete": enumeration.complete,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".candidates-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
