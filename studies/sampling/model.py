"""A Gaussian-process model of top-1 over a space's networks, with seed noise as a learned term.

One training of a network is one noisy observation of its mean top-1 (on the v1 benchmark
table two seeds of one network differ by 9.5 points sd). The model is a GP on the candidates'
features (:class:`~studies.sampling.candidates.Candidates`): a constant mean, a Matern-5/2
kernel with one length scale per searched dimension and per log-cost, a signal variance and a
noise variance, all fitted by maximum a posteriori on the observations (standardised) with a
Gamma(2, 0.5) prior on the length scales (mean 4: smooth unless the data say otherwise). The
posterior it returns is of the network's *mean* top-1 (the noise is not in ``sd``), and the
repeated trainings of a network simply average.

Why a GP (numbers in ``benchmarks/README.md``, "Cost-aware search"): on the v1 table a Bayesian
linear model on the same features (main effects, evidence-maximised) reached a normalised
hypervolume of 0.65 after 10 trainings against the GP's 0.82, at the same 25 and 50. A short
numpy/scipy implementation with analytic gradients (no GPyTorch/BoTorch dependency; a torch
version with autograd took 1.6 s per fit here): see ``benchmarks/bench_cost_aware.py`` for the
time of one proposal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Posterior", "fit_posterior"]

_LENGTH_PRIOR = (2.0, 0.5)  # Gamma(shape, rate) on every length scale
_JITTER = 1e-6


@dataclass(frozen=True, slots=True)
class Posterior:
    """Mean and standard deviation (noise excluded) of each row of the predicted features,
    in the units of the observations, and the fitted noise standard deviation."""

    mean: np.ndarray
    sd: np.ndarray
    noise_sd: float


def fit_posterior(
    features: np.ndarray,
    observed: np.ndarray,
    values: np.ndarray,
    groups: Sequence[Sequence[int]],
) -> Posterior:
    """Fit the GP to ``values`` at the rows ``observed`` of ``features``; predict every row.

    Args:
        features: ``(n, d)`` inputs of all candidates.
        observed: indices into ``features``, one per observation (repeats allowed).
        values: one observation each.
        groups: feature columns that share one length scale.
    """
    from scipy.optimize import minimize

    x = features[np.asarray(observed, dtype=int)]
    y = np.asarray(values, dtype=float)
    centre = float(y.mean())
    scale = float(y.std()) if len(y) > 1 and float(y.std()) > 0 else 1.0
    target = (y - centre) / scale
    # squared distance along each group of columns, between every pair of observations
    parts = np.stack([_squared_distances(x[:, list(g)], x[:, list(g)]) for g in groups])
    n_groups = len(groups)
    start = np.r_[np.zeros(n_groups), 0.0, math.log(0.3)]
    bounds = [_LOG_LENGTH] * n_groups + [_LOG_SIGNAL, _LOG_NOISE]
    found = minimize(_neg_log_posterior, start, args=(parts, target), jac=True,
                     method="L-BFGS-B", bounds=bounds)  # fmt: skip
    theta = found.x if np.isfinite(found.fun) else start
    lengths, signal, noise = np.exp(theta[:n_groups]), math.exp(theta[-2]), math.exp(theta[-1])
    gram = _matern(np.tensordot(1.0 / lengths**2, parts, axes=1), signal)
    chol = np.linalg.cholesky(gram + (noise + _JITTER) * np.eye(len(y)))
    alpha = _solve(chol, target)
    scales = np.zeros(features.shape[1])
    for length, columns in zip(lengths, groups, strict=True):
        scales[list(columns)] = 1.0 / length
    cross = _matern(_squared_distances(features * scales, x * scales), signal)
    mean = cross @ alpha
    half = np.linalg.solve(chol, cross.T)  # L^-1 k(x, X)^T
    var = np.clip(signal - (half**2).sum(axis=0), 1e-12, None)
    return Posterior(
        mean=mean * scale + centre, sd=np.sqrt(var) * scale, noise_sd=math.sqrt(noise) * scale
    )


_LOG_LENGTH = (math.log(0.05), math.log(100.0))
_LOG_SIGNAL = (math.log(0.01), math.log(20.0))
_LOG_NOISE = (math.log(1e-4), math.log(4.0))
_ROOT5 = math.sqrt(5.0)


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.clip(d2, 0.0, None)


def _matern(d2: np.ndarray, signal: float) -> np.ndarray:
    d = np.sqrt(d2)
    return signal * (1.0 + _ROOT5 * d + 5.0 / 3.0 * d2) * np.exp(-_ROOT5 * d)


def _solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.linalg import cho_solve

    return np.asarray(cho_solve((chol, True), b))


def _neg_log_posterior(
    theta: np.ndarray, parts: np.ndarray, target: np.ndarray
) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood plus the length-scale prior, and its gradient."""
    n_groups = len(parts)
    inverse_sq = np.exp(-2.0 * theta[:n_groups])
    signal, noise = math.exp(theta[-2]), math.exp(theta[-1])
    d2 = np.tensordot(inverse_sq, parts, axes=1)
    d = np.sqrt(d2)
    decay = np.exp(-_ROOT5 * d)
    kernel = signal * (1.0 + _ROOT5 * d + 5.0 / 3.0 * d2) * decay
    gram = kernel + (noise + _JITTER) * np.eye(len(target))
    try:
        chol = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return math.inf, np.zeros_like(theta)
    alpha = _solve(chol, target)
    inverse = _solve(chol, np.eye(len(target)))
    shape, rate = _LENGTH_PRIOR
    lengths = np.exp(theta[:n_groups])
    value = 0.5 * target @ alpha + np.log(np.diag(chol)).sum()
    value += ((1.0 - shape) * theta[:n_groups] + rate * lengths).sum()
    # dNLL/dtheta = 0.5 tr((K^-1 - a a^T) dK/dtheta)
    w = inverse - np.outer(alpha, alpha)
    dk_dd2 = -signal * (5.0 / 6.0) * (1.0 + _ROOT5 * d) * decay
    grad = np.empty_like(theta)
    # d(d2)/d(log length_g) = -2 parts_g / length_g^2
    grad[:n_groups] = -inverse_sq * np.tensordot(parts, w * dk_dd2, axes=([1, 2], [0, 1]))
    grad[:n_groups] += (1.0 - shape) + rate * lengths
    grad[-2] = 0.5 * (w * kernel).sum()
    grad[-1] = 0.5 * noise * np.trace(w)
    return float(value), grad
