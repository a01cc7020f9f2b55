"""Every trial of a study as a pandas DataFrame: the counterpart of :func:`studies.pareto`
for all trials, not just the front.

``trials(study)`` gives one row per trial, in trial order, with these columns:

* ``trial``, ``state`` (r3dnas's: complete | reused | infeasible | failed | pruned | running |
  over_budget | duplicate | waiting), ``optuna_state`` (Optuna's: COMPLETE, PRUNED, FAIL, ...);
* one column per objective, by name (a reused trial shows the values it reused; a trial with
  none shows NaN), then the other measured metrics (``top1``, ``gflops``, ...);
* ``reason`` (why it failed, was infeasible or pruned; ``reused trial N`` for a reuse),
  ``reused_from`` (the trial whose measurement a reused trial copies, else NA);
* ``arch`` (one readable line), ``digest``, ``seed``;
* ``n_seeds``, ``top1_mean``, ``top1_std``: the trial's network over its seeds (complete
  feasible trials of the same digest, one per seed; std with ddof 1, NaN with one seed; 0 seeds
  for a network with no complete trial), e.g. after ``[study] confirm_seeds``;
* ``config`` (the canonical ResNet3d config dict), ``val_top1`` (the per-epoch validation curve,
  a list; empty without one).

``df.attrs`` holds ``study``, ``objectives``, ``directions`` and the counts per ``state``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studies.core.defaults import RUNS_DIR
from studies.study.record import StudyRecord

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna
    import pandas as pd
    from optuna.trial import FrozenTrial

    from studies.core.seeds import SeedSummary

__all__ = [
    "METRIC_COLUMNS",
    "NOISY",
    "SEED_COLUMNS",
    "describe_confirmation",
    "front_columns",
    "front_row",
    "seed_summaries",
    "trial_row",
    "trial_rows",
    "trials",
]

# Measured metrics shown after the objectives (objectives themselves are not repeated).
METRIC_COLUMNS = ("top1", "gflops", "params_m", "latency_ms", "throughput_clips_s")
# A trial's network over its seeds (complete feasible trials of the same digest).
SEED_COLUMNS = ("n_seeds", "top1_mean", "top1_std")
# Objectives measured again with each seed: the front shows their spread (costs are exact).
NOISY = ("top1", "top5", "latency_ms", "throughput_clips_s")


def seed_summaries(trials: Sequence[FrozenTrial]) -> dict[str, SeedSummary]:
    """Complete trials grouped by network (digest) over their seeds: the mean and spread of the
    objectives (in the study's order) followed by :data:`METRIC_COLUMNS` (NaN where a trial has
    no such attribute). A trial without a digest is a network of its own."""
    from studies.core.seeds import summarize_seeds

    rows = []
    for t in trials:
        attrs = t.user_attrs
        metrics = [attrs.get(m) for m in METRIC_COLUMNS]
        values = [*t.values, *(float(v) if isinstance(v, int | float) else math.nan
                               for v in metrics)]  # fmt: skip
        digest = str(attrs.get("digest") or f"#{t.number}")
        seed = attrs.get("seed")
        rows.append((digest, int(seed) if isinstance(seed, int) else 0, t.number, values))
    return summarize_seeds(rows)


def trial_row(trial: FrozenTrial, objectives: list[str]) -> dict[str, Any]:
    """One trial as a row of :func:`trials` (see the module docstring for the columns)."""
    attrs = trial.user_attrs
    state = attrs.get("state") or trial.state.name.lower()
    row: dict[str, Any] = {"trial": trial.number, "state": state,
                           "optuna_state": trial.state.name}  # fmt: skip
    for i, name in enumerate(objectives):
        if trial.values is not None:
            row[name] = float(trial.values[i])
        elif isinstance(attrs.get(name), int | float):
            row[name] = float(attrs[name])  # a reused trial: the values it copies
        else:
            row[name] = float("nan")
    for metric in METRIC_COLUMNS:
        if metric not in objectives:
            value = attrs.get(metric)
            row[metric] = float(value) if isinstance(value, int | float) else float("nan")
    if state == "reused":
        reason = attrs.get("about") or f"reused trial {attrs.get('reused_from')}"
    else:
        reason = attrs.get("fail_reason")
    row["reason"] = reason
    row["reused_from"] = attrs.get("reused_from")
    row["arch"] = attrs.get("arch", "")
    row["digest"] = attrs.get("digest", "")
    row["seed"] = attrs.get("seed")
    row["config"] = attrs.get("config", {})
    row["val_top1"] = [h.get("val_top1") for h in attrs.get("history", [])]
    return row


def front_row(
    trial: FrozenTrial,
    objectives: list[str],
    chosen: list[str],
    summary: SeedSummary | None = None,
) -> dict[str, Any]:
    """One network as a row of :func:`studies.pareto`: the ``chosen`` objectives' values, the
    other metrics it recorded, its architecture and config (see :func:`front_columns`).

    With ``summary`` (:func:`seed_summaries`; ``trial`` is its first trial) the values are the
    means over its seeds, with ``<objective>_std`` for the :data:`NOISY` ones and ``n_seeds``.
    """
    attrs = trial.user_attrs
    row: dict[str, Any] = {"trial": trial.number}
    for name in chosen:
        k = objectives.index(name)
        row[name] = trial.values[k] if summary is None else summary.mean[k]
    if summary is not None:
        for name in chosen:
            if name in NOISY:
                row[f"{name}_std"] = summary.std[objectives.index(name)]
        row["n_seeds"] = summary.n_seeds
    for k, metric in enumerate(METRIC_COLUMNS):
        if metric not in row and metric in attrs:
            row[metric] = attrs[metric] if summary is None else summary.mean[len(objectives) + k]
    row["arch"] = attrs.get("arch", "")
    row["digest"] = attrs.get("digest", "")
    row["state"] = attrs.get("state", "complete")
    row["config"] = attrs.get("config", {})
    return row


def front_columns(rows: list[dict[str, Any]], chosen: list[str]) -> list[str]:
    """The columns of :func:`studies.pareto`: only the metrics some front trial recorded, and
    the spread over seeds where a row has it."""
    spread = [f"{n}_std" for n in chosen if any(f"{n}_std" in r for r in rows)]
    if any("n_seeds" in r for r in rows):
        spread.append("n_seeds")
    extra = [m for m in METRIC_COLUMNS if m not in chosen and any(m in r for r in rows)]
    return ["trial", *chosen, *spread, *extra, "arch", "digest", "state", "config"]


def trials(
    study: optuna.Study | str | None = None,
    *,
    storage: str | None = None,
    runs_dir: str | Path = RUNS_DIR,
) -> pd.DataFrame:
    """Every trial of the study as a DataFrame (see the module docstring).

    Args:
        study: a Study, a study name, or None for the only study in the storage.
        storage: the storage URL (default: ``$R3DNAS_STORAGE``, else ``<runs_dir>/*.db``).
        runs_dir: where the default storages ``<runs_dir>/<study>.db`` are.
    """
    import pandas as pd

    from studies.study.storage import resolve_study

    study = resolve_study(study, storage=storage, runs_dir=runs_dir)
    objectives = StudyRecord(study).objectives
    every = study.get_trials(deepcopy=False)
    rows = trial_rows(every, every, objectives)
    frame = pd.DataFrame(rows, columns=_columns(objectives))
    # NOTE: a trial number, NA where nothing was reused (a plain column of ints and None would
    # be float: 1.0).
    frame["reused_from"] = frame["reused_from"].astype("Int64")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    frame.attrs.update(
        study=study.study_name,
        objectives=objectives,
        directions=[d.name.lower() for d in study.directions],
        states=counts,
    )
    return frame


def trial_rows(
    chosen: Sequence[FrozenTrial], every: Sequence[FrozenTrial], objectives: list[str]
) -> list[dict[str, Any]]:
    """Rows of :func:`trials` for the ``chosen`` trials, their seed columns read from ``every``
    trial of the study."""
    from optuna.trial import TrialState

    from studies.core.dominance import is_feasible

    rows = [trial_row(t, objectives) for t in chosen]
    complete = [t for t in every if t.state == TrialState.COMPLETE and is_feasible(t)]
    _add_seed_columns(rows, seed_summaries(complete), objectives)
    return [{c: row[c] for c in _columns(objectives)} for row in rows]


def _columns(objectives: list[str]) -> list[str]:
    """The columns of :func:`trials`, in order (see the module docstring)."""
    return ["trial", "state", "optuna_state", *objectives,
            *(m for m in METRIC_COLUMNS if m not in objectives), "reason", "reused_from",
            "arch", "digest", "seed", *SEED_COLUMNS, "config", "val_top1"]  # fmt: skip


def _add_seed_columns(
    rows: list[dict[str, Any]], summaries: dict[str, SeedSummary], objectives: list[str]
) -> None:
    """:data:`SEED_COLUMNS` on each row: how many seeds its network was trained with and its
    top-1 mean and spread over them (0 and NaN for a network without a complete trial)."""
    index = objectives.index("top1") if "top1" in objectives else None
    if index is None:
        index = len(objectives) + METRIC_COLUMNS.index("top1")
    for row in rows:
        summary = summaries.get(str(row["digest"]))
        row["n_seeds"] = summary.n_seeds if summary else 0
        row["top1_mean"] = summary.mean[index] if summary else float("nan")
        row["top1_std"] = summary.std[index] if summary else float("nan")


def describe_confirmation(
    study: optuna.Study, trial: optuna.Trial, values: tuple[float, ...]
) -> str:
    """The ``about`` line of a confirmation trial: the network it confirms and its top-1 over
    the seeds measured so far (this one included)."""
    from optuna.trial import TrialState

    names = StudyRecord(study).objectives
    attrs = trial.user_attrs
    digest, seed = attrs.get("digest"), attrs.get("seed")
    if "top1" not in names:
        return f"confirmation: seed {seed} of trial {attrs.get('confirm_of')}'s network"
    index = names.index("top1")
    by_seed = {
        t.user_attrs.get("seed"): t.values[index]
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("digest") == digest
    }
    by_seed[seed] = values[index]
    top1 = list(by_seed.values())
    mean = math.fsum(top1) / len(top1)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in top1) / max(len(top1) - 1, 1))
    return (
        f"confirmation: seed {seed} of trial {attrs.get('confirm_of')}'s network; top1 "
        f"{mean:.4g} ± {std:.2g} over {len(top1)} seeds"
    )
