"""Generated clips kept on disk, so that every training of a build does not draw them again.

Why: with ``[data] fresh_clips`` each training draws ``epochs x num_train_clips`` clips, and
every training of a study draws the *same* ones (the clips depend on ``[data] seed``, not on
the training seed). Drawing them costs about 3 s CPU per 768 clips of 16 x 32 x 32: a third of
a 10-epoch training on one core (benchmark v2, issue 23). Read back from disk (the page cache,
shared by all worker processes) a chunk costs about a millisecond.

Where: ``cache_dir() / "clips" / <task key> / <chunk>-<level>.npy``
(:func:`search_space.user_cache.cache_dir`). Size: 4 bytes x 3 x frames x pixels per clip,
e.g. 1.5 GB for the v2 table's 7,680 clips of 16 x 32 x 32; delete the folder to reclaim it.
``R3DNAS_CLIP_CACHE=0`` turns the cache off.

Never stale: the task key hashes the task's class, every public attribute of the split (classes,
clips, frames, resolution, noise, seed, split, speed and the task's own settings), numpy's
version and the source of ``runners/data``'s modules; the file name holds the chunk and the
exact noise level. Never wrong: ``np.save``/``np.load`` round-trip float32 bit for bit; a file
of another shape or type, or one that cannot be read, is drawn again and rewritten. A folder
that cannot be written only costs time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from search_space.user_cache import cache_dir

if TYPE_CHECKING:
    from runners.data.generated import GeneratedClips

__all__ = ["ChunkCache", "clip_cache_enabled", "task_key"]

FORMAT = 1  # bump when the files' layout changes


def clip_cache_enabled() -> bool:
    """Whether generated clips are kept on disk (``R3DNAS_CLIP_CACHE=0`` turns it off)."""
    return os.environ.get("R3DNAS_CLIP_CACHE", "1").strip() not in ("0", "false", "no", "off")


@functools.cache
def _code_version() -> str:
    """A hash of the source that draws clips: every module of ``runners/data``."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def task_key(clips: GeneratedClips) -> str:
    """The hash naming the folder of ``clips``'s chunks (see the module docstring)."""
    task = type(clips)
    text = json.dumps(
        {
            "format": FORMAT,
            "code": _code_version(),
            "numpy": np.__version__,
            "task": f"{task.__module__}.{task.__qualname__}",
            "attrs": {k: v for k, v in vars(clips).items() if not k.startswith("_")},
        },
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ChunkCache:
    """The chunks of one generated split on disk; :meth:`chunk` reads one or draws and keeps it."""

    def __init__(self, clips: GeneratedClips, *, shape: tuple[int, ...]) -> None:
        self.folder = cache_dir() / "clips" / task_key(clips)
        self.shape = shape

    def _path(self, chunk: int, level: float | None) -> Path:
        name = "base" if level is None else float(level).hex()
        return self.folder / f"{chunk}-{name}.npy"

    def chunk(self, chunk: int, level: float | None, draw: Callable[[], np.ndarray]) -> np.ndarray:
        """Chunk ``chunk`` at noise ``level``: read from disk, else ``draw()`` it and keep it."""
        path = self._path(chunk, level)
        try:
            found = np.load(path, allow_pickle=False)
            if found.shape == self.shape and found.dtype == np.float32:
                return found
        except (OSError, ValueError, EOFError):
            pass
        drawn = draw()
        self._store(path, drawn)
        return drawn

    def _store(self, path: Path, array: np.ndarray) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".chunk-", suffix=".npy")
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, array, allow_pickle=False)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
