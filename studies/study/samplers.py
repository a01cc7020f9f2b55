"""The spec's sampler and pruner, built in one place for ``launch``, workers and ablations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search_space.errors import ConfigError

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

    from studies.study.sections import StudySpec

__all__ = ["build_pruner", "build_sampler", "distinct_networks"]


def build_sampler(spec: StudySpec) -> BaseSampler:
    """The spec's sampler with its seed (always explicit: Optuna 5 changed the defaults),
    kept from proposing networks already measured (:func:`distinct_networks`)."""
    return distinct_networks(_spec_sampler(spec), spec)


def distinct_networks(sampler: BaseSampler, spec: StudySpec) -> BaseSampler:
    """``sampler``, asked again when it proposes a network the study has measured or another
    worker is measuring (:class:`studies.sampling.distinct.DistinctNetworks`).

    Why: the run loop does not count a reuse toward ``n_trials`` and asks the sampler again
    (:func:`studies.run.budget.is_counted`); a sampler that learns nothing from reused trials (GP)
    would propose them until the loop stops it as stuck. ``cost_aware`` picks distinct networks
    itself, and ``grid`` walks its own grid (ablations and tables enqueue their points), so both
    are left as they are.
    """
    if spec.study.sampler in ("cost_aware", "grid"):
        return sampler
    from studies.sampling.distinct import DistinctNetworks

    return DistinctNetworks(sampler, spec)


def _spec_sampler(spec: StudySpec) -> BaseSampler:
    import optuna

    study = spec.study
    if study.sampler == "tpe":
        import warnings

        with warnings.catch_warnings():
            # NOTE: group=True ("experimental" since Optuna 2.8) keeps TPE multivariate over the
            # conditional space (SearchSpace.sample suggests inflate_style only when it matters).
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=study.seed,
                multivariate=True,
                group=True,
                constant_liar=True,
                n_startup_trials=study.n_startup_trials,
            )
    if study.sampler == "cost_aware":
        from studies.sampling.sampler import CostAwareSampler

        return CostAwareSampler(spec)
    if study.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=study.seed)
    if study.sampler == "gp":
        return optuna.samplers.GPSampler(seed=study.seed, n_startup_trials=study.n_startup_trials)
    if study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=study.seed)
    if study.sampler == "grid":
        grid = {c.name: list(c.values) for c in spec.space.choices}
        return optuna.samplers.GridSampler(grid, seed=study.seed)
    raise ConfigError(f"[study] sampler {study.sampler!r} is not supported")  # pragma: no cover


def build_pruner(spec: StudySpec) -> BasePruner:
    """Optuna's median pruner when asked for (single-objective studies), else none."""
    import optuna

    if spec.study.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.study.n_startup_trials)
    return optuna.pruners.NopPruner()
