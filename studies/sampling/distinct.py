"""``DistinctNetworks(inner, spec)``: any Optuna sampler, kept from proposing a network the study
has already measured, another worker is measuring, or a budget rules out.

Why: a sampler sees parameters, not networks. TPE, GP, NSGA-II and random sampling propose
networks already trained again and again (Optuna's default TPE needs 350-615 trials to train 100
of the 372 networks of the v1 table; GP stalls after about 30, its model unchanged by reused
trials). Each such trial trains nothing and tells the sampler nothing.

Contract (what the run loop can rely on):

* In ``before_trial`` the inner sampler is asked for a whole proposal, through the space's own
  :meth:`SearchSpace.sample` on a stand-in trial (so the conditional space is asked exactly as
  a real trial asks it). A proposal that builds a measured or pending network
  (:mod:`studies.sampling.claims`), is infeasible, or breaks a budget known before training
  is refused and the inner sampler asked again, up to ``tries`` times.
* Then, if every proposal was refused, the **fallback**: the unmeasured, feasible network whose
  parameters differ from the inner sampler's last proposal in the fewest dimensions (ties drawn
  with ``seed``), i.e. the closest new network to what the inner sampler wanted.
* The choice is claimed as the trial's ``fixed_params`` (the claim protocol of
  :mod:`studies.sampling.claims`: no two workers measure one network); the trial's system
  attribute ``distinct_networks`` says ``{"asked": n, "fallback": bool}``.
* When no unmeasured feasible network is left, the trial is marked
  (:func:`~studies.sampling.claims.space_exhausted` is then true for it) and samples as the
  inner sampler would (a reuse): the loop should stop the study there.
* Trials that already have ``fixed_params`` (enqueued configurations, presets, retries) are left
  alone. Everything else (``after_trial``, independent sampling, reseeding) is the inner
  sampler's.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from optuna.samplers import BaseSampler

from search_space.space import InfeasibleConfig
from studies.sampling.claims import claim, mark_exhausted, set_system_attr, taken
from studies.sampling.picker import NetworkPicker, is_fixed

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import BaseTrial, FrozenTrial
    from optuna.trial._state import TrialState

    from studies.study.sections import StudySpec

__all__ = ["INFO_ATTR", "DistinctNetworks"]

INFO_ATTR = "distinct_networks"  # trial system attribute: {"asked": n, "fallback": bool}


class _Proposal:
    """A stand-in trial that asks ``inner`` for each value ``SearchSpace.sample`` suggests."""

    def __init__(self, inner: BaseSampler, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner, self._study, self._trial = inner, study, trial
        self._space: dict[str, BaseDistribution] | None = None
        self._relative: dict[str, Any] = {}
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        from optuna.distributions import CategoricalDistribution

        distribution = CategoricalDistribution(tuple(choices))
        if self._space is None:
            self._space = self._inner.infer_relative_search_space(self._study, self._trial)
            self._relative = self._inner.sample_relative(self._study, self._trial, self._space)
        if name in self._relative and self._space.get(name) == distribution:
            value = self._relative[name]
        else:
            value = self._inner.sample_independent(self._study, self._trial, name, distribution)
        self.params[name] = value
        return value


class DistinctNetworks(NetworkPicker):
    """See the module docstring."""

    def __init__(
        self, inner: BaseSampler, spec: StudySpec, *, tries: int = 4, seed: int | None = None
    ) -> None:
        super().__init__(spec, fallback=inner)
        self.inner = inner
        self._tries = max(1, tries)
        self._rng = random.Random(spec.study.seed if seed is None else seed)

    def _resolve(self, params: Mapping[str, Any]) -> str | None:
        row = self.candidates().row_of(params)
        if row is not None:
            return self.candidates().digests[row]
        try:
            return self._spec.space.config_from_params(params).digest()
        except InfeasibleConfig:
            return None

    # ------------------------------------------------------------------ Optuna's interface
    # NOTE: the relative sampling and after_trial are the inner sampler's (sample_independent
    # and reseeding are too: it is the picker's fallback).
    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if is_fixed(trial):
            return {}
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if is_fixed(trial):
            return {}
        return self.inner.sample_relative(study, trial, search_space)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Ask the inner sampler until it proposes a new network (see the module docstring)."""
        self.inner.before_trial(study, trial)
        if is_fixed(trial):
            return
        # NOTE: the inner sampler may have written system attributes (GridSampler's grid_id)
        # that its own sampling reads back from the frozen trial.
        proposing = study.get_trials(deepcopy=False)[trial.number]
        state = taken(study, trial, self._resolve)
        excluded = set(state.measured) | set(state.pending)
        feasible = self._feasible()
        last: dict[str, Any] = {}
        for asked in range(1, self._tries + 1):
            proposal = _Proposal(self.inner, study, proposing)
            try:
                digest = self._spec.space.sample(cast("BaseTrial", proposal)).digest()
            except InfeasibleConfig:
                digest = None
            last = proposal.params
            row = None if digest is None else self.candidates().index.get(digest)
            fits = digest is not None and (row is None or bool(feasible[row]))
            if fits and digest not in excluded and claim(study, trial, last, str(digest),
                                                         self._resolve):  # fmt: skip
                set_system_attr(study, trial, INFO_ATTR, {"asked": asked, "fallback": False})
                return
            if digest is not None:
                excluded.add(digest)
        while True:
            row = self._nearest(last, excluded, feasible)
            if row is None:
                mark_exhausted(study, trial)
                return
            digest = self.candidates().digests[row]
            if claim(study, trial, self.candidates().params[row], digest, self._resolve):
                info = {"asked": self._tries, "fallback": True}
                set_system_attr(study, trial, INFO_ATTR, info)
                return
            excluded.add(digest)

    # ------------------------------------------------------------------ helpers
    def _nearest(
        self, params: Mapping[str, Any], excluded: set[str], feasible: np.ndarray
    ) -> int | None:
        """The allowed candidate differing from ``params`` in the fewest dimensions."""
        candidates = self.candidates()
        names = [d.name for d in self._spec.space.choices]
        best: list[int] = []
        fewest = len(names) + 1
        for row, (digest, other) in enumerate(zip(candidates.digests, candidates.params,
                                                  strict=True)):  # fmt: skip
            if not feasible[row] or digest in excluded:
                continue
            differ = sum(other.get(n, _ABSENT) != params.get(n, _ABSENT) for n in names)
            if differ < fewest:
                best, fewest = [row], differ
            elif differ == fewest:
                best.append(row)
        return self._rng.choice(best) if best else None


_ABSENT = object()
