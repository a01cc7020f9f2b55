"""Every trial of a study as a pandas DataFrame: the counterpart of :func:`studies.pareto`
for all trials, not just the front.

``trials(study)`` gives one row per trial, in trial order, with these columns:

* ``trial``, ``state`` (r3dnas's: complete | reused | infeasible | failed | pruned | running |
  over_budget | waiting), ``optuna_state`` (Optuna's: COMPLETE, PRUNED, FAIL, ...);
* one column per objective, by name (a reused trial shows the values it reused; a trial with
  none shows NaN), then the other measured metrics (``top1``, ``gflops``, ...);
* ``reason`` (why it failed, was infeasible or pruned; ``reused trial N`` for a reuse),
  ``reused_from`` (the trial whose measurement a reused trial copies, else NA);
* ``arch`` (one readable line), ``digest``, ``seed``, ``config`` (the canonical ResNet3d
  config dict), ``val_top1`` (the per-epoch validation curve, a list; empty without one).

``df.attrs`` holds ``study``, ``objectives``, ``directions`` and the counts per ``state``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from studies.core.defaults import RUNS_DIR
from studies.study.record import StudyRecord

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from optuna.trial import FrozenTrial

__all__ = ["METRIC_COLUMNS", "front_columns", "front_row", "trial_row", "trials"]

# Measured metrics shown after the objectives (objectives themselves are not repeated).
METRIC_COLUMNS = ("top1", "gflops", "params_m", "latency_ms", "throughput_clips_s")


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


def front_row(trial: FrozenTrial, objectives: list[str], chosen: list[str]) -> dict[str, Any]:
    """One trial as a row of :func:`studies.pareto`: the ``chosen`` objectives' values, the
    other metrics it recorded, its architecture and config (see :func:`front_columns`)."""
    attrs = trial.user_attrs
    row: dict[str, Any] = {"trial": trial.number}
    for name in chosen:
        row[name] = trial.values[objectives.index(name)]
    for metric in METRIC_COLUMNS:
        if metric not in row and metric in attrs:
            row[metric] = attrs[metric]
    row["arch"] = attrs.get("arch", "")
    row["digest"] = attrs.get("digest", "")
    row["state"] = attrs.get("state", "complete")
    row["config"] = attrs.get("config", {})
    return row


def front_columns(rows: list[dict[str, Any]], chosen: list[str]) -> list[str]:
    """The columns of :func:`studies.pareto`: only the metrics some front trial recorded."""
    extra = [m for m in METRIC_COLUMNS if m not in chosen and any(m in r for r in rows)]
    return ["trial", *chosen, *extra, "arch", "digest", "state", "config"]


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
    rows = [trial_row(t, objectives) for t in study.get_trials(deepcopy=False)]
    columns = ["trial", "state", "optuna_state", *objectives,
               *(m for m in METRIC_COLUMNS if m not in objectives), "reason", "reused_from",
               "arch", "digest", "seed", "config", "val_top1"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
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
