"""The statistics of a latency measurement, as pure functions over lists of milliseconds.

How the timed runs are split into blocks (:func:`default_blocks`, :func:`split_blocks`), and
what is reported of them (:func:`summarize_ms`: median, p10, p90, IQR, mean, min;
:func:`coefficient_of_variation` of the block medians). Percentiles interpolate linearly, as
numpy's default does (a test checks them against numpy).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = [
    "coefficient_of_variation",
    "default_blocks",
    "percentile",
    "split_blocks",
    "summarize_ms",
]


def default_blocks(repeats: int) -> int:
    """Blocks to split ``repeats`` runs into: as many as give at least 4 runs each, 2 to 10.

    Why: with the drift reference, finer alternation follows faster drift (on this project's
    VM, 100 runs in 10 blocks repeated within ±10% for 94% of networks, 60 runs in 5 blocks for
    81%); blocks of fewer than 4 runs make each block's median, and its CV, mostly noise.
    """
    return max(2, min(10, repeats // 4))


def split_blocks(values: Sequence[float], blocks: int) -> list[Sequence[float]]:
    """``blocks`` consecutive slices whose sizes differ by at most one."""
    size, extra = divmod(len(values), blocks)
    out, start = [], 0
    for i in range(blocks):
        stop = start + size + (1 if i < extra else 0)
        out.append(values[start:stop])
        start = stop
    return out


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of sorted values, linear interpolation (numpy default)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def summarize_ms(samples_ms: Sequence[float]) -> dict[str, float]:
    """median, p10, p90, IQR (p75 - p25), mean and min of the samples, in ms."""
    ordered = sorted(samples_ms)
    return {
        "median_ms": percentile(ordered, 50),
        "p10_ms": percentile(ordered, 10),
        "p90_ms": percentile(ordered, 90),
        "iqr_ms": percentile(ordered, 75) - percentile(ordered, 25),
        "mean_ms": statistics.fmean(ordered),
        "min_ms": ordered[0],
    }


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1) over mean; needs at least two values."""
    return statistics.stdev(values) / statistics.fmean(values)
