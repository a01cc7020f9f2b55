"""Fresh training clips every epoch for the generated tasks (``[data] fresh_clips = true``).

Why: with a fixed set of a few hundred generated clips, small networks memorise them within a few
epochs, and what a table then measures is which features a network happened to fit before it
memorised (a lottery, chaotic across seeds and machines). A generated task can draw as many
clips as it likes, so with ``fresh_clips`` epoch ``e`` (0-based) trains on items
``e * num_train_clips .. (e + 1) * num_train_clips - 1``: no clip is seen twice, and the
validation set stays fixed.

How: :class:`FreshClips` wraps the training split and answers *global* item indices;
:class:`FreshEpochSampler` (chosen by :func:`runners.data.build_loader`) hands out epoch ``e``'s
indices, shuffled, on its ``e``-th iteration. The sampler runs in the main process, so this holds
whatever the number of DataLoader workers. Item ``i`` still depends only on ``(seed, split, i)``,
so a run is reproducible from its seed; epoch 0 is exactly the non-fresh run's first epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from runners.data.clip_cache import ChunkCache, clip_cache_enabled
from runners.data.generated import CHUNK, GeneratedClips

__all__ = ["FreshClips", "FreshEpochSampler"]


class FreshClips(Dataset):
    """A generated training split whose epoch ``e`` is items ``e*N .. (e+1)*N - 1``.

    ``len()`` is ``N`` (the clips of one epoch: ``clips.num_clips``); ``self[i]`` accepts any
    ``i >= 0``. Only the chunks of the newest epoch asked for stay in memory, so memory stays that
    of one epoch's clips however many epochs run; every chunk drawn is kept on disk
    (:mod:`runners.data.clip_cache`), so the next training of the same data reads it back.
    """

    def __init__(
        self, clips: GeneratedClips, *, noise_start: float | None = None, ramp_epochs: int = 0
    ) -> None:
        self.clips = clips
        self.per_epoch = clips.num_clips
        self.noise_start = noise_start
        self.ramp_epochs = ramp_epochs
        self._chunks: dict[int, torch.Tensor] = {}
        shape = (CHUNK, 3, clips.clip_len, clips.resolution, clips.resolution)
        self._disk = ChunkCache(clips, shape=shape) if clip_cache_enabled() else None

    def noise_of_epoch(self, epoch: int) -> float:
        """The noise of epoch ``epoch``'s clips (0-based): ``noise_start`` at epoch 0, moving
        linearly to the task's noise at epoch ``ramp_epochs`` and staying there.

        Why a curriculum: at the target noise, when a run first finds the task's features
        depends on its seed (the take-off lottery of issue 23); on clearer clips every run
        finds them in the first epoch, and the later epochs at the target noise then grade
        how well an architecture can use them. Piloted (benchmarks/README.md): on 4 directions
        at noise 2.5 it turned seed pairs 87/97 and 96/96 into 100/100 and 99/100; on the
        16-class task, where the lottery is learning the *order* of the motion, it did not
        help."""
        if self.noise_start is None or epoch >= self.ramp_epochs:
            return self.clips.noise
        return self.noise_start + (self.clips.noise - self.noise_start) * epoch / self.ramp_epochs

    def __len__(self) -> int:
        return self.per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if index < 0:
            raise IndexError(f"index {index}: fresh clips take global indices >= 0")
        chunk, offset = divmod(index, CHUNK)
        if chunk not in self._chunks:
            first = (index // self.per_epoch) * self.per_epoch // CHUNK
            for old in [c for c in self._chunks if c < first]:
                del self._chunks[old]
            level = self.noise_of_epoch(chunk * CHUNK // self.per_epoch)
            self._chunks[chunk] = torch.from_numpy(self._draw(chunk, level))
        return self._chunks[chunk][offset].clone(), self.clips.label(index)

    def _draw(self, chunk: int, level: float) -> np.ndarray:
        # NOTE: the task's own generator, so item i is the same clip as in a plain split; the
        # disk copy is bit-identical (runners.data.clip_cache).
        if self._disk is None:
            return self.clips._generate_chunk(chunk, level)
        return self._disk.chunk(chunk, level, lambda: self.clips._generate_chunk(chunk, level))

    def label(self, index: int) -> int:
        """The label of global item ``index``, without generating the clip."""
        return self.clips.label(index)


class FreshEpochSampler(Sampler[int]):
    """Its ``e``-th iteration yields ``e*N + perm(N)``, the permutation drawn from ``generator``.

    Epoch 0 draws the same permutation as ``RandomSampler(generator=...)`` would.
    """

    def __init__(self, per_epoch: int, *, generator: torch.Generator) -> None:
        self.per_epoch = per_epoch
        self.generator = generator
        self.epoch = 0

    def __len__(self) -> int:
        return self.per_epoch

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.per_epoch, generator=self.generator) + (
            self.epoch * self.per_epoch
        )
        self.epoch += 1
        return iter(order.tolist())
