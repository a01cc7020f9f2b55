"""The statistics of a latency measurement, against numpy and in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runners.latency.measure import LatencyConfig
from runners.latency.stats import (
    coefficient_of_variation,
    default_blocks,
    percentile,
    split_blocks,
    summarize_ms,
)


@pytest.mark.parametrize(
    ("n", "blocks", "sizes"), [(10, 3, [4, 3, 3]), (8, 2, [4, 4]), (5, 5, [1] * 5)]
)
def test_blocks_are_consecutive_and_differ_by_at_most_one(
    n: int, blocks: int, sizes: list[int]
) -> None:
    parts = split_blocks(list(range(n)), blocks)
    assert [len(p) for p in parts] == sizes
    assert [x for p in parts for x in p] == list(range(n))


@pytest.mark.parametrize("q", [0, 10, 25, 50, 75, 90, 100])
@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0, 9.5, 0.25]])
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    assert percentile(sorted(values), q) == pytest.approx(np.percentile(values, q))


def test_summary_in_closed_form() -> None:
    summary = summarize_ms([4.0, 1.0, 3.0, 2.0, 5.0])
    # sorted 1..5: p90 sits 0.6 of the way from 4 to 5, p75 = 4, p25 = 2
    assert summary == pytest.approx(
        # p10 sits 0.4 of the way from 1 to 2
        {
            "median_ms": 3.0,
            "p10_ms": 1.4,
            "p90_ms": 4.6,
            "iqr_ms": 2.0,
            "mean_ms": 3.0,
            "min_ms": 1.0,
        }
    )


def test_coefficient_of_variation_in_closed_form() -> None:
    # mean 10, sample std sqrt(((-2)^2 + 0 + 2^2) / 2) = 2
    assert coefficient_of_variation([8.0, 10.0, 12.0]) == pytest.approx(0.2)
    assert coefficient_of_variation([7.0, 7.0]) == 0.0
    assert math.isfinite(coefficient_of_variation([1.0, 3.0]))


@pytest.mark.parametrize(
    ("repeats", "blocks"), [(2, 2), (8, 2), (12, 3), (20, 5), (40, 10), (100, 10)]
)
def test_default_blocks_have_at_least_four_runs_up_to_ten_blocks(
    repeats: int, blocks: int
) -> None:
    assert default_blocks(repeats) == blocks
    LatencyConfig(repeats=repeats, blocks=default_blocks(repeats))  # always a valid pair
