"""``sampler = "cost_aware"``: pick the network with the largest expected hypervolume improvement,
knowing every cost before training and modelling only top-1.

What it knows: the space's distinct networks (:mod:`studies.sampling.candidates`), each with
its exact GFLOPs and parameters, and its latency when a source gives it before training (the
benchmark table in tabular mode, the latency table when ``[measure] latency`` is "predicted" or
"both"). What it models: top-1 (or top-5), a Gaussian process over the networks' factors and
log-costs with the seed-to-seed spread as a learned noise term (:mod:`studies.sampling.model`).
How it picks: the closed-form expected hypervolume improvement over the current front
(:mod:`studies.sampling.ehvi`), exact in the known objectives; the front's networks are
placed at their posterior mean top-1, so one lucky seed does not define it.

* **Start**: the first ``[study] n_startup_trials`` networks are a space-filling design: each
  the farthest from those already chosen, over the normalised costs (weighted 2) and the
  factors, the first one drawn with the sampler's seed.
* **Never twice, never infeasible**: networks measured or held by another running trial are
  not candidates (:mod:`studies.sampling.claims`), and neither are networks that break
  ``max_gflops``, ``max_params_m`` or (with a latency source) ``max_latency_ms``.
* **No latency source** (``latency = "measured"``, the default, with latency an objective):
  latency is estimated from the trials that measured it, a least-squares fit of log latency on
  log GFLOPs and log parameters (with fewer than three such trials: proportional to GFLOPs),
  and used as if known; measured networks keep their measured latency on the front. A latency
  budget is then checked by the trial itself (seconds of timing, before training), not here.
* **State**: rebuilt from the study's trials at every trial; only the enumeration of the space
  is cached (per process, and on disk for later processes:
  :mod:`studies.sampling.enumeration_cache`). Storage, several workers, resume and
  optuna-dashboard work unchanged.
* **Exhausted**: with no candidate left the trial is marked (:func:`claims.space_exhausted`)
  and samples at random (a reuse).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.samplers import RandomSampler

from search_space.errors import ConfigError
from studies.sampling.claims import claim, mark_exhausted, set_system_attr, taken
from studies.sampling.ehvi import best_improvement
from studies.sampling.model import fit_posterior
from studies.sampling.picker import NetworkPicker, is_fixed

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from studies.study.sections import StudySpec

__all__ = ["KNOWN_OBJECTIVES", "TRAINED_OBJECTIVES", "CostAwareSampler", "check_cost_aware"]

KNOWN_OBJECTIVES = ("gflops", "params_m", "latency_ms", "throughput_clips_s")
TRAINED_OBJECTIVES = ("top1", "top5")
INFO_ATTR = "cost_aware"  # trial system attribute: why this network was picked
_CLAIM_TRIES = 8
_COST_WEIGHT = 2.0  # start design: normalised costs count twice a factor's difference


def check_cost_aware(spec: StudySpec) -> None:
    """One-line :class:`ConfigError` unless the study has something to trade against top-1."""
    names = spec.objective_names
    trained = [n for n in names if n in TRAINED_OBJECTIVES]
    unknown = [n for n in names if n not in TRAINED_OBJECTIVES + KNOWN_OBJECTIVES]
    if len(trained) != 1 or unknown:
        raise ConfigError(
            f"sampler 'cost_aware' needs exactly one of {', '.join(TRAINED_OBJECTIVES)} among "
            f"the objectives, the others from {', '.join(KNOWN_OBJECTIVES)}; got {list(names)}"
        )
    if len(names) == 1 and not spec.constraints.any():
        raise ConfigError(
            f"sampler 'cost_aware' needs costs to trade against {names[0]}: add gflops, "
            "params_m or latency_ms to [study] objectives, or a [constraints] budget; got "
            f"objectives {list(names)} and no constraints"
        )


class CostAwareSampler(NetworkPicker):
    """See the module docstring. ``seed`` defaults to ``[study] seed``, ``n_startup`` to
    ``[study] n_startup_trials``; ``use_latency=False`` ignores the latency source (the
    benchmark of a study without one)."""

    def __init__(
        self,
        spec: StudySpec,
        *,
        seed: int | None = None,
        n_startup: int | None = None,
        use_latency: bool = True,
    ) -> None:
        check_cost_aware(spec)
        self._seed = spec.study.seed if seed is None else seed
        # NOTE: random sampling answers only what a pick leaves open (an exhausted space, an
        # enqueued trial's missing parameters).
        super().__init__(spec, fallback=RandomSampler(seed=self._seed), use_latency=use_latency)
        self._n_startup = max(1, spec.study.n_startup_trials if n_startup is None else n_startup)

    def _resolve(self, params: Mapping[str, Any]) -> str | None:
        row = self.candidates().row_of(params)
        return None if row is None else self.candidates().digests[row]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Pick a network and fix the trial's parameters to it (unless already fixed: an
        enqueued trial or a retry)."""
        if is_fixed(trial):
            return
        candidates = self.candidates()
        lost: set[str] = set()
        for _ in range(_CLAIM_TRIES):
            # NOTE: read afresh each time: a lost claim means other workers moved on.
            state = taken(study, trial, self._resolve)
            trials = study.get_trials(deepcopy=False)
            excluded = set(state.measured) | set(state.pending) | lost
            pick = self.propose(trials, excluded, pending=state.pending)
            if pick is None:
                mark_exhausted(study, trial)
                return
            row, info = pick
            digest = candidates.digests[row]
            if claim(study, trial, candidates.params[row], digest, self._resolve):
                set_system_attr(study, trial, INFO_ATTR, info)
                return
            lost.add(digest)

    # ------------------------------------------------------------------ the pick
    def propose(
        self,
        trials: list[FrozenTrial],
        excluded: set[str],
        *,
        pending: frozenset[str] = frozenset(),
    ) -> tuple[int, dict[str, Any]] | None:
        """``(candidate row, why)`` of the next network, or None when none is left.

        Args:
            trials: the study's trials (observations are its complete feasible ones).
            excluded: digests that must not be proposed (measured, pending, lost claims).
            pending: digests other trials are measuring: placed on the front at their
                posterior mean, so parallel workers spread out.
        """
        candidates = self.candidates()
        available = self._feasible().copy()
        for digest in excluded:
            row = candidates.index.get(digest)
            if row is not None:
                available[row] = False
        if not available.any():
            return None
        spec = self._spec
        names = spec.objective_names
        trained = next(i for i, n in enumerate(names) if n in TRAINED_OBJECTIVES)
        sign = -1.0 if spec.directions[trained] == "maximize" else 1.0
        observed = [
            t
            for t in trials
            # NOTE: studies.pareto.is_feasible's rule; that module cannot be imported here
            # (it reaches studies.storage, which builds this sampler)
            if t.values is not None
            and t.state.name == "COMPLETE"
            and all(c <= 0 for c in t.constraints.values())
        ]
        rows = [candidates.index.get(str(t.user_attrs.get("digest"))) for t in observed]
        modelled = [(r, t.values[trained]) for r, t in zip(rows, observed, strict=True)
                    if r is not None]  # fmt: skip
        held = {r for r, _ in modelled} | {
            candidates.index[d] for d in pending if d in candidates.index
        }
        costs, observed_costs = self._known_costs(observed, rows)
        if len({r for r, _ in modelled}) < 2 or len(held) < self._n_startup:
            row = self._spread(available, held, costs)
            return row, {"phase": "start", "digest": candidates.digests[row]}
        posterior = fit_posterior(
            candidates.features,
            np.array([r for r, _ in modelled]),
            np.array([v for _, v in modelled]),
            candidates.groups,
        )
        mean = sign * posterior.mean
        front_y = [mean[r] if r is not None else sign * t.values[trained]
                   for r, t in zip(rows, observed, strict=True)]  # fmt: skip
        front = np.column_stack([np.array(front_y), observed_costs])
        believed = [candidates.index[d] for d in pending if d in candidates.index]
        if believed:
            front = np.vstack([front, np.column_stack([mean[believed], costs[believed]])])
        values = np.array([sign * t.values[trained] for t in observed])
        span = float(values.max() - values.min())
        worst = float(values.max())
        reference = np.r_[worst + (0.1 * span if span > 0 else 1.0), np.full(costs.shape[1], 1.1)]
        row, gain = best_improvement(mean, posterior.sd, costs, front, reference, available)
        return row, {
            "phase": "model",
            "digest": candidates.digests[row],
            "mean": float(posterior.mean[row]),
            "sd": float(posterior.sd[row]),
            "noise_sd": posterior.noise_sd,
            "ehvi": gain,
        }

    def _known_costs(
        self, observed: list[FrozenTrial], rows: list[int | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The known objectives, minimised and scaled to [0, 1] over the candidates: of every
        candidate ``(n, k)``, and of the observed trials ``(m, k)`` (a network outside the
        candidates, e.g. an enqueued preset, with its measured values)."""
        candidates = self.candidates()
        latency, measured_latency = self._latency(observed, rows)
        columns, observed_columns = [], []
        for name, direction in zip(self._spec.objective_names, self._spec.directions, strict=True):
            if name not in KNOWN_OBJECTIVES:
                continue
            if name in ("latency_ms", "throughput_clips_s"):
                values, seen = latency, measured_latency
                if name == "throughput_clips_s":
                    values, seen = 1000.0 / values, 1000.0 / seen
            else:
                values = getattr(candidates, name)
                seen = np.array([
                    values[r] if r is not None else float(t.user_attrs.get(name, math.nan))
                    for r, t in zip(rows, observed, strict=True)
                ])  # fmt: skip
            sign = -1.0 if direction == "maximize" else 1.0
            low, high = float((sign * values).min()), float((sign * values).max())
            span = high - low if high > low else 1.0
            columns.append((sign * values - low) / span)
            observed_columns.append((sign * seen - low) / span)
        n = len(candidates)
        if not columns:
            return np.zeros((n, 0)), np.zeros((len(observed), 0))
        return np.column_stack(columns), np.column_stack(observed_columns)

    def _latency(
        self, observed: list[FrozenTrial], rows: list[int | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Latency of every candidate before training (its source, or the estimate the module
        docstring describes), and of the observed trials (measured where they have it)."""
        candidates = self.candidates()
        measured = np.array([float(t.user_attrs.get("latency_ms", math.nan)) for t in observed])
        if candidates.latency_source != "none":
            known = np.array([candidates.latency_ms[r] if r is not None else m
                              for r, m in zip(rows, measured, strict=True)])  # fmt: skip
            return candidates.latency_ms, known
        logs = np.column_stack([np.ones(len(candidates)), np.log(candidates.gflops),
                                np.log(candidates.params_m)])  # fmt: skip
        fit = [(r, m) for r, m in zip(rows, measured, strict=True)
               if r is not None and math.isfinite(m) and m > 0]  # fmt: skip
        if len(fit) >= 3:
            coef, *_ = np.linalg.lstsq(logs[[r for r, _ in fit]],
                                       np.log([m for _, m in fit]), rcond=None)  # fmt: skip
            estimate = np.exp(logs @ coef)
        elif fit:
            ratio = float(np.median([m / candidates.gflops[r] for r, m in fit]))
            estimate = candidates.gflops * ratio
        else:
            estimate = candidates.gflops.copy()
        seen = np.array([m if math.isfinite(m) else (estimate[r] if r is not None else math.nan)
                         for r, m in zip(rows, measured, strict=True)])  # fmt: skip
        return estimate, seen

    def _spread(self, available: np.ndarray, held: set[int], costs: np.ndarray) -> int:
        """The available network farthest from those held (the space-filling start)."""
        candidates = self.candidates()
        space = np.hstack([_COST_WEIGHT * costs, candidates.features]) if costs.shape[1] \
            else candidates.features  # fmt: skip
        rows = np.flatnonzero(available)
        if not held:
            return int(rows[np.random.default_rng(self._seed).integers(len(rows))])
        chosen = space[sorted(held)]
        gaps = ((space[rows, None, :] - chosen[None, :, :]) ** 2).sum(axis=2)
        distance = gaps.min(axis=1)
        return int(rows[int(np.argmax(distance))])
