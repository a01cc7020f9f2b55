"""Expected hypervolume improvement when one objective is uncertain and the others are known.

All objectives are minimised. A candidate is ``(Y, c)``: ``c`` its known costs, ``Y`` its
trained objective (e.g. minus top-1), uncertain with ``Y ~ N(mu, sd^2)``. Its improvement of the
hypervolume dominated by the front ``P`` up to the reference ``r`` is

    HVI(y) = integral from y to r_0 of A(t) dt,

where ``A(t)`` is the area (volume, with several costs) of the cost box ``[c, r_1..]`` that the
front points with first coordinate ``<= t`` do not already dominate. ``A`` is a step function
that changes only at the front's first coordinates ``l_1 < ... < l_m``, so ``HVI`` is piecewise
linear in ``y`` and its expectation has a closed form:

    E[HVI(Y)] = sum_k A_k * (G(l_{k+1}) - G(l_k)),   G(t) = sd * (z Phi(z) + phi(z)),
    z = (t - mu) / sd,

the integral of ``P(Y <= t)`` over each step (``l_0 = -inf``, ``l_{m+1} = r_0``). It is exact
(a Monte-Carlo estimate converges to it: ``tests/studies/test_cost_aware.py``) and vectorised
over the candidates: with two known costs ``A_k`` is a staircase area, ``O(front)`` per
candidate and level. Three or more known costs use the exact hypervolume of the slice, one
candidate at a time (slow; no shipped spec has them).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["expected_improvement", "uncovered_area"]


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return np.asarray(ndtr(z))


def _integral_of_cdf(t: float, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``integral_{-inf}^{t} P(Y <= s) ds`` for ``Y ~ N(mu, sd^2)`` (0 at ``t = -inf``)."""
    if t == -math.inf:
        return np.zeros_like(mu)
    z = (t - mu) / sd
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    return sd * (z * _normal_cdf(z) + pdf)


def uncovered_area(costs: np.ndarray, front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per candidate (rows of ``costs``), the volume of its box up to ``reference`` that no
    point of ``front`` (rows, same columns, minimised) dominates."""
    n, k = costs.shape
    box = np.prod(np.clip(reference[None, :] - costs, 0.0, None), axis=1) if k else np.ones(n)
    inside = front[np.all(front < reference[None, :], axis=1)] if len(front) else front
    if not len(inside):
        return box
    if k == 0:
        return np.zeros(n)
    if k == 1:
        return np.clip(np.minimum(inside[:, 0].min(), reference[0]) - costs[:, 0], 0.0, None)
    if k == 2:
        order = np.argsort(inside[:, 0], kind="stable")
        x = inside[order, 0]
        y = np.minimum.accumulate(inside[order, 1])  # the staircase: lowest y left of x
        right = np.append(x[1:], reference[0])
        a, b = costs[:, :1], costs[:, 1:2]
        width = np.clip(np.maximum(right[None, :], a) - np.maximum(x[None, :], a), 0.0, None)
        height = np.clip(reference[1] - np.maximum(y[None, :], b), 0.0, None)
        return box - (width * height).sum(axis=1)
    # NOTE: Optuna's exact hypervolume (private: it has no public one); studies.pareto's cannot
    # be imported here (studies.pareto reaches studies.storage, which builds this sampler).
    from optuna._hypervolume import compute_hypervolume

    out = np.empty(n)
    for i in range(n):
        clipped = np.maximum(inside, costs[i][None, :])
        out[i] = box[i] - compute_hypervolume(clipped, reference)
    return out


def expected_improvement(
    mu: np.ndarray,
    sd: np.ndarray,
    costs: np.ndarray,
    front: np.ndarray,
    reference: np.ndarray,
) -> np.ndarray:
    """``E[HVI]`` of each candidate (see the module docstring).

    Args:
        mu, sd: mean and standard deviation of each candidate's uncertain objective (``sd > 0``).
        costs: ``(n, k)`` known objectives of the candidates.
        front: ``(m, 1 + k)`` points already found (uncertain objective first); dominated
            points may be included, they add nothing.
        reference: ``1 + k`` reference point.
    """
    sd = np.maximum(np.asarray(sd, dtype=float), 1e-12)
    mu = np.asarray(mu, dtype=float)
    front = np.asarray(front, dtype=float).reshape(-1, 1 + costs.shape[1])
    levels = np.unique(front[front[:, 0] < reference[0], 0])
    edges = [-math.inf, *levels.tolist(), float(reference[0])]
    out = np.zeros(len(mu))
    below = _integral_of_cdf(edges[0], mu, sd)
    for k in range(len(edges) - 1):
        active = front[front[:, 0] <= edges[k]]
        area = uncovered_area(costs, active[:, 1:], reference[1:])
        above = _integral_of_cdf(edges[k + 1], mu, sd)
        out += area * (above - below)
        below = above
    return out
