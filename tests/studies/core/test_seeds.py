"""Means over seeds, the pooled seed noise and the domination gap, in closed form."""

from __future__ import annotations

import math

import pytest

from studies.core.seeds import domination_gap, pooled_std, summarize_seeds


def test_summaries_average_each_network_over_its_seeds_once_per_seed() -> None:
    rows = [("a", 0, 0, [60.0, 1.0]), ("b", 0, 1, [50.0, 2.0]), ("a", 1, 5, [64.0, 1.0]),
            ("a", 1, 7, [99.0, 1.0])]  # fmt: skip
    out = summarize_seeds(rows)
    assert out["a"].trials == (0, 5) and out["a"].seeds == (0, 1)  # trial 7 repeats seed 1
    assert out["a"].mean == (62.0, 1.0)
    assert out["a"].std == pytest.approx((math.sqrt(8.0), 0.0))
    assert out["b"].n_seeds == 1 and math.isnan(out["b"].std[0])


def test_pooled_std_weights_networks_by_their_degrees_of_freedom() -> None:
    rows = [("a", 0, 0, [0.0]), ("a", 1, 1, [2.0]), ("b", 0, 2, [0.0]), ("b", 1, 3, [0.0]),
            ("b", 2, 4, [0.0]), ("c", 0, 5, [7.0])]  # fmt: skip
    # a: variance 2 with 1 dof; b: 0 with 2 dof; c: one seed, left out
    assert pooled_std(summarize_seeds(rows).values(), 0) == pytest.approx(math.sqrt(2 / 3))
    assert math.isnan(pooled_std(summarize_seeds([("c", 0, 0, [1.0])]).values(), 0))


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ([-60.0, 1.0], 0.0),  # on the front itself
        ([-55.0, 1.0], 5.0),  # same cost, 5 points less accurate
        ([-55.0, 3.0], 15.0),  # dominated by both: the more accurate one sets the gap
        ([-80.0, 0.5], 0.0),  # cheaper than every front point: nothing dominates it
    ],
)
def test_domination_gap_is_the_accuracy_a_point_lacks(point: list[float], expected: float) -> None:
    front = [[-60.0, 1.0], [-70.0, 2.0]]  # minimised: -top1, gflops
    assert domination_gap(point, front, 0) == pytest.approx(expected)
