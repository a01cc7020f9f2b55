"""The dominance rules: the non-dominated set against brute force, the hypervolume against
Optuna's and closed forms, and domination itself."""

from __future__ import annotations

import itertools
import random

import pytest

from studies.core.dominance import dominates, hypervolume, minimised, non_dominated, sign


@pytest.mark.parametrize(
    ("expected", "q", "p"),
    [
        (True, (1, 2), (2, 2)),
        (True, (1, 1), (2, 2)),
        (False, (2, 2), (2, 2)),  # equal: neither dominates
        (False, (1, 3), (2, 2)),  # better in one, worse in another
        (False, (3, 2), (2, 2)),
    ],
)
def test_dominates_is_no_worse_anywhere_and_better_somewhere(
    expected: bool, q: tuple[int, int], p: tuple[int, int]
) -> None:
    assert dominates(q, p) is expected


def test_non_dominated_matches_brute_force() -> None:
    rng = random.Random(0)
    for _ in range(50):
        points = [[rng.randint(0, 5) for _ in range(3)] for _ in range(rng.randint(1, 12))]
        expected = [
            i
            for i, p in enumerate(points)
            if not any(all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in points)
        ]
        assert non_dominated(points) == expected


def test_hypervolume_matches_optunas_and_closed_forms() -> None:
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    assert hypervolume([[1.0, 1.0]], [2.0, 3.0]) == pytest.approx(2.0)
    assert hypervolume([[1, 2], [2, 1]], [3, 3]) == pytest.approx(3.0)
    rng = random.Random(1)
    for dims, n in itertools.product((2, 3, 4), (1, 5, 9, 80)):
        points = [[rng.random() for _ in range(dims)] for _ in range(n)]
        reference = [1.1] * dims
        expected = compute_hypervolume(np.array(points), np.array(reference))
        assert hypervolume(points, reference) == pytest.approx(expected, rel=1e-9)
        # duplicates and points beyond the reference add nothing
        extra = [*points, points[0], [1.5] * dims]
        assert hypervolume(extra, reference) == pytest.approx(expected, rel=1e-9)


def test_a_maximised_objective_is_negated_whatever_the_case_of_its_direction() -> None:
    assert [sign("minimize"), sign("maximize"), sign("MAXIMIZE"), sign("MINIMIZE")] == [
        1.0, -1.0, -1.0, 1.0
    ]  # fmt: skip
    assert minimised([80.0, 2.5], ["maximize", "minimize"]) == [-80.0, 2.5]
    with pytest.raises(ValueError):
        minimised([1.0], ["minimize", "maximize"])  # one direction per value
