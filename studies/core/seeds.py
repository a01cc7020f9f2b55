"""Networks measured with several seeds: means, spreads, the seed noise, and how far a network
is from a front. Pure functions over numbers, read by the front (:mod:`studies.results.pareto`),
the trial table (:mod:`studies.results.frames`) and confirmation (:mod:`studies.run.confirm`).

One training per network is one noisy draw of its accuracy; a network trained with several
seeds is reported by its mean over seeds (its costs too: latency is measured again each time),
with the standard deviation (ddof 1) and the number of seeds beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["SeedSummary", "domination_gap", "pooled_std", "summarize_seeds"]


@dataclass(frozen=True, kw_only=True, slots=True)
class SeedSummary:
    """One network over its seeds: ``trials`` in trial order (the first is the network's
    first training), one per seed; ``mean``/``std`` per value (std NaN with one seed)."""

    digest: str
    trials: tuple[int, ...]
    seeds: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)


def summarize_seeds(
    rows: Iterable[tuple[str, int, int, Sequence[float]]],
) -> dict[str, SeedSummary]:
    """``(digest, seed, trial, values)`` rows -> digest -> :class:`SeedSummary`.

    A seed measured twice (a retry, a preset that is also a search point) counts once: the
    earliest trial's values.
    """
    by_digest: dict[str, dict[int, tuple[int, Sequence[float]]]] = {}
    for digest, seed, trial, values in sorted(rows, key=lambda r: r[2]):
        by_digest.setdefault(digest, {}).setdefault(seed, (trial, values))
    out = {}
    for digest, seeds in by_digest.items():
        order = sorted(seeds.items(), key=lambda kv: kv[1][0])
        columns = list(zip(*(values for _, (_, values) in order), strict=True))
        n = len(order)
        means = tuple(math.fsum(c) / n for c in columns)
        stds = tuple(
            math.sqrt(math.fsum((v - m) ** 2 for v in c) / (n - 1)) if n > 1 else math.nan
            for c, m in zip(columns, means, strict=True)
        )
        out[digest] = SeedSummary(
            digest=digest,
            trials=tuple(t for _, (t, _) in order),
            seeds=tuple(s for s, _ in order),
            mean=means,
            std=stds,
        )
    return out


def pooled_std(summaries: Iterable[SeedSummary], index: int) -> float:
    """The seed noise of value ``index``: the pooled within-network standard deviation over the
    networks with two or more seeds (NaN when there are none)."""
    squares, dof = 0.0, 0
    for s in summaries:
        if s.n_seeds > 1:
            squares += s.std[index] ** 2 * (s.n_seeds - 1)
            dof += s.n_seeds - 1
    return math.sqrt(squares / dof) if dof else math.nan


def domination_gap(point: Sequence[float], others: Iterable[Sequence[float]], index: int) -> float:
    """How much lower value ``index`` of ``point`` would have to be (all values minimised) for no
    point of ``others`` to dominate it: 0 for a non-dominated point.

    Only a point at least as good in every other value can dominate whatever value ``index``
    takes; it stops dominating once ``point`` is strictly better there.
    """
    gap = 0.0
    for other in others:
        rest = all(o <= p for k, (o, p) in enumerate(zip(other, point, strict=True)) if k != index)
        if rest and other[index] <= point[index] and list(other) != list(point):
            gap = max(gap, point[index] - other[index])
    return gap
