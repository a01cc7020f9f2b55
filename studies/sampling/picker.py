"""``NetworkPicker``: what the samplers that choose *networks*, not parameters, have in common.

Why a base: :class:`~studies.sampling.distinct.DistinctNetworks` and
:class:`~studies.sampling.sampler.CostAwareSampler` both decide a whole network in
``before_trial`` and fix the trial's parameters to it (:mod:`studies.sampling.claims`). They
share the spec's enumerated networks (built at the first use, once per process), the rule that a
trial with ``fixed_params`` (enqueued, a preset, a retry) is left alone, the feasibility mask of
the spec's budgets, and a sampler for what a pick leaves open (``sample_independent``: an
exhausted space, a parameter the pick did not fix). Each is written once here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optuna.samplers import BaseSampler

from studies.sampling.candidates import Candidates, build_candidates

if TYPE_CHECKING:
    import numpy as np
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from studies.study.sections import StudySpec

__all__ = ["NetworkPicker", "is_fixed"]


def is_fixed(trial: FrozenTrial) -> bool:
    """Whether the trial's parameters were fixed before sampling (enqueued, a preset, a retry)."""
    return "fixed_params" in trial.system_attrs


class NetworkPicker(BaseSampler):
    """An Optuna sampler that picks networks; subclasses implement ``before_trial``.

    ``fallback`` answers ``sample_independent`` and is reseeded with this sampler; the relative
    search space is empty unless a subclass defers it to another sampler."""

    def __init__(
        self, spec: StudySpec, *, fallback: BaseSampler, use_latency: bool = True
    ) -> None:
        self._spec = spec
        self._fallback = fallback
        self._use_latency = use_latency
        self._candidates: Candidates | None = None

    def candidates(self) -> Candidates:
        """The spec's networks (enumerated at the first use, once per process)."""
        if self._candidates is None:
            self._candidates = build_candidates(self._spec, use_latency=self._use_latency)
        return self._candidates

    def _feasible(self) -> np.ndarray:
        """Which candidates the spec's budgets known before training allow."""
        return self.candidates().within(self._spec.constraints)

    # NOTE: BaseSampler's abstract methods, with the signatures Optuna gives them.
    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()
