"""Confirmation seeds (``[study] confirm_seeds = K``): after the budget, the networks likeliest
to be on the front are trained with K more seeds, so the reported front is less a matter of
one seed's luck.

Why: one training per network is one noisy draw of its top-1 (on the v1 table two seeds of a
network differ by up to 9.5 points; the front of seed 0 holds 18 of the 24 networks of the
front of the seed means). A network that is on the front by luck drops off once its mean is
known; one that missed it by bad luck can come back.

Rounds, each read from the study (so a resumed study goes on where it stopped):

1. The front is taken over every network at its mean over the seeds it has (one seed for most).
2. The seed noise ``sigma`` is the pooled standard deviation of top-1 over the networks already
   confirmed (none in the first round: ``sigma = 0``). A network is a candidate when its
   top-1 is within ``sigma * sqrt(1 + 1/(K+1))`` (one standard deviation of the difference
   between one seed and a mean of K+1) of escaping domination by the front
   (:func:`studies.core.seeds.domination_gap`; 0 for the front itself).
3. Unconfirmed candidates, nearest first (the front first), are enqueued with seeds
   ``[train] seed + 1 .. + K`` (user attributes ``train_seed`` and ``confirm_of``, the network's
   first trial), as long as at most ``ceil(n_trials / 2)`` networks are confirmed in all.
4. The round's trials run through the run loop (shared by workers, resumable: an interrupted one
   is re-run, never enqueued twice); then the next round, until one adds nothing.

A confirmation trial trains the same network with another seed: a different training, so it is
never a reuse (:func:`studies.run.budget.is_counted` counts it, beyond ``n_trials``). Its
``about`` says which network it confirms and the network's top-1 mean ± std so far
(:func:`studies.results.frames.describe_confirmation`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from studies.run.run_study import RunOutcome
    from studies.study.sections import StudySpec

__all__ = ["confirm_networks", "enqueue_round"]

Run = Callable[[int], "RunOutcome"]


def _cap(n_trials: int) -> int:
    """At most this many networks are confirmed: half the budget (K extra trainings each)."""
    return max(1, math.ceil(n_trials / 2))


def enqueue_round(study: optuna.Study, spec: StudySpec, *, n_trials: int) -> int:
    """Enqueue one round of confirmation trials (see the module docstring); how many."""
    from optuna.trial import TrialState

    from search_space.config import ResNet3dConfig
    from studies.core.dominance import is_feasible, non_dominated
    from studies.core.seeds import domination_gap, pooled_std
    from studies.results.frames import seed_summaries

    every = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in every}
    confirmed = {
        str(by_number[t.user_attrs["confirm_of"]].user_attrs.get("digest"))
        for t in every
        if t.user_attrs.get("confirm_of") in by_number
    }
    complete = [t for t in every if t.state == TrialState.COMPLETE and is_feasible(t)]
    networks = seed_summaries(complete)
    names = list(spec.objective_names)
    top1 = names.index("top1")
    signs = [1.0 if d == "minimize" else -1.0 for d in spec.directions]
    points = {d: [s * v for s, v in zip(signs, n.mean, strict=False)] for d, n in networks.items()}
    digests = list(points)
    front = [points[digests[i]] for i in non_dominated([points[d] for d in digests])]
    sigma = pooled_std(networks.values(), top1)
    k = spec.study.confirm_seeds
    margin = 0.0 if math.isnan(sigma) else sigma * math.sqrt(1 + 1 / (k + 1))
    gaps = sorted(
        (gap, networks[d].trials[0], d)
        for d in digests
        if d not in confirmed and (gap := domination_gap(points[d], front, top1)) <= margin
    )
    room = _cap(n_trials) - len(confirmed)
    added = 0
    for _, first, _ in gaps[: max(room, 0)]:
        config = ResNet3dConfig.from_dict(by_number[first].user_attrs["config"]).to_json()
        for seed in range(spec.train.seed + 1, spec.train.seed + k + 1):
            study.enqueue_trial(
                {},
                user_attrs={"enqueued_config": config, "train_seed": seed, "confirm_of": first},
                skip_if_exists=False,
            )
            added += 1
    return added


def _slots(study: optuna.Study) -> int:
    """Distinct confirmation trials asked for (a retry of one is the same slot)."""
    return len(
        {
            (t.user_attrs["confirm_of"], t.user_attrs.get("train_seed"))
            for t in study.get_trials(deepcopy=False)
            if "confirm_of" in t.user_attrs
        }
    )


def confirm_networks(
    study: optuna.Study, spec: StudySpec, *, n_trials: int, run: Run, searched: RunOutcome
) -> RunOutcome:
    """Run confirmation rounds until one adds nothing; how the last run ended (the search's
    ``searched`` outcome when every round completed, with every worker's exit codes).

    ``run(budget)`` runs the study's trials until ``budget`` trials count
    (:func:`studies.run.budget.is_counted`): the search's trainings plus the confirmation slots.
    """
    import dataclasses

    from studies.run.budget import count_counted
    from studies.study.record import StudyRecord

    codes = searched.worker_exit_codes
    while True:
        added = enqueue_round(study, spec, n_trials=n_trials)
        every = study.get_trials(deepcopy=False)
        trained = count_counted([t for t in every if "confirm_of" not in t.user_attrs])
        budget = trained + _slots(study)
        if added == 0 and count_counted(every) >= budget:
            return dataclasses.replace(searched, worker_exit_codes=codes)
        # NOTE: workers that join now (r3dnas worker) read the budget from the study.
        StudyRecord(study).record_n_trials(budget)
        print(f"{study.study_name}: confirming with {spec.study.confirm_seeds} more seed(s): "
              f"{added} trials enqueued ({_slots(study)} in all)")  # fmt: skip
        outcome = run(budget)
        codes += outcome.worker_exit_codes
        if outcome.stopped != "done":
            return dataclasses.replace(outcome, worker_exit_codes=codes)
