"""Ablations: the full factorial over named factors, K seeds each, with honest statistics.

Every grid point x seed is enqueued once as its own trial (so several workers never run the
same point twice) and measured by the same trial pipeline as a search. The summary gives, per
factor level and metric, mean ± std and a 95% confidence interval (Student t over seeds and the
other factors' levels), each factor's effect (the spread of its level means) and its importance
as the share of the metric's variance its main effect explains (eta squared, exact for a full
factorial). Results go to a CSV and a bar chart.
"""

# NOTE: this import block has the shape of sampling/candidates.py's (a parenthesised list, then
# TYPE_CHECKING imports); they import different things.
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from search_space._files import output_dir
from search_space.errors import ConfigError
from studies.core.defaults import RUNS_DIR
from studies.run.budget import first_attempts, is_completed, is_counted
from studies.run.loop import StopReason, exit_status, requeue_interrupted
from studies.study.record import StudyRecord

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from search_space.space import SearchSpace
    from studies.study.sections import StudySpec

__all__ = ["AblationResult", "ablate", "plot_ablation", "prepare_ablation", "summarize"]

METRICS = ("top1", "gflops", "params_m", "latency_ms")


def t95(dof: int) -> float:
    """The two-sided 95% Student t quantile (the 97.5% point) for ``dof`` degrees of freedom,
    exact (:mod:`studies.core.student_t`); NaN below 1."""
    from studies.core.student_t import t_quantile

    return t_quantile(0.975, dof)


@dataclass(frozen=True, kw_only=True, slots=True)
class AblationResult:
    study_name: str
    trials: pd.DataFrame  # one row per completed trial (factors, seed, metrics)
    summary: pd.DataFrame  # factor, level, metric, n, mean, std, ci95_low, ci95_high
    effects: pd.DataFrame  # factor, metric, effect, importance
    csv_path: Path | None
    plot_path: Path | None
    n_trials: int  # grid points x seeds
    stopped: StopReason

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"

    @property
    def exit_code(self) -> int:
        return exit_status(self.stopped, completed=len(self.trials))

    def format(self) -> str:
        lines = [f"Ablation {self.study_name!r}: {len(self.trials)} completed trials"]
        if not len(self.summary):
            return lines[0]
        for (factor, metric), rows in self.summary.groupby(["factor", "metric"], sort=False):
            lines.append(f"\n{factor} -> {metric}")
            for row in rows.itertuples():
                lines.append(
                    f"  {row.level!s:<14} {row.mean:10.4g} ± {row.std:<8.3g} "
                    f"95% CI [{row.ci95_low:.4g}, {row.ci95_high:.4g}]  (n={row.n})"
                )
        lines.append("\neffects (max - min of level means) and importance (eta²):")
        for row in self.effects.itertuples():
            lines.append(
                f"  {row.factor:<20} {row.metric:<11} effect {row.effect:10.4g}  "
                f"importance {row.importance:.3f}"
            )
        if self.csv_path:
            lines.append(f"\nCSV: {self.csv_path}")
        if self.plot_path:
            lines.append(f"plot: {self.plot_path}")
        return "\n".join(lines)


def summarize(
    trials: pd.DataFrame, factors: Sequence[str], metrics: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-level statistics and per-factor effects from a per-trial DataFrame."""
    import pandas as pd

    rows, effects = [], []
    for metric in metrics:
        if metric not in trials.columns:
            continue
        values = trials[metric].astype(float)
        grand = values.mean()
        ss_total = float(((values - grand) ** 2).sum())
        for factor in factors:
            level_means = []
            ss_factor = 0.0
            for level, group in trials.groupby(factor, sort=True):
                v = group[metric].astype(float)
                n = len(v)
                mean = float(v.mean())
                std = float(v.std(ddof=1)) if n > 1 else 0.0
                half = t95(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
                rows.append(
                    {
                        "factor": factor,
                        "level": level,
                        "metric": metric,
                        "n": n,
                        "mean": mean,
                        "std": std,
                        "ci95_low": mean - half,
                        "ci95_high": mean + half,
                    }
                )
                level_means.append(mean)
                ss_factor += n * (mean - grand) ** 2
            effects.append(
                {
                    "factor": factor,
                    "metric": metric,
                    "effect": max(level_means) - min(level_means),
                    "importance": ss_factor / ss_total if ss_total > 0 else 0.0,
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(effects)


def plot_ablation(summary: pd.DataFrame, path: Path, metric: str = "top1") -> Path:
    """Bar chart: one panel per factor, bars = level means of ``metric`` with 95% CIs.

    Drawn on a bare matplotlib ``Figure`` (no pyplot), so the caller's backend and open
    figures are left as they are.
    """
    from matplotlib.figure import Figure

    data = summary[summary["metric"] == metric]
    factors = list(dict.fromkeys(data["factor"]))
    fig = Figure(figsize=(4 * max(1, len(factors)), 4), dpi=120)
    axes = fig.subplots(1, max(1, len(factors)), squeeze=False)
    for ax, factor in zip(axes[0], factors, strict=False):
        rows = data[data["factor"] == factor]
        errors = (rows["ci95_high"] - rows["mean"]).fillna(0.0)
        ax.bar([str(v) for v in rows["level"]], rows["mean"], yerr=errors, capsize=4,
               color="#4c72b0")  # fmt: skip
        ax.set_title(factor)
        ax.set_ylabel(metric)
        ax.tick_params(axis="x", rotation=30)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"ablation: mean {metric} per level (95% CI)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _enqueue_grid(
    study: optuna.Study,
    space: SearchSpace,
    factors: Sequence[str],
    seeds: Sequence[int],
    order_seed: int | None = None,
) -> int:
    """Enqueue every grid point x seed once per study (idempotent across launches).

    ``order_seed``: enqueue the grid points in a seeded random order (the seeds of a point stay
    together), so that a grid stopped half-way has covered a uniform sample of it.
    """
    import random

    from search_space.canonical import canonicalize

    key = json.dumps({"factors": list(factors), "seeds": list(seeds)})
    record = StudyRecord(study)
    if record.ablation_grid == key:
        return 0
    if record.ablation_grid is not None:
        raise ConfigError(
            f"study {study.study_name!r} already holds another ablation grid "
            f"({record.ablation_grid}); use another --study name"
        )
    count = 0
    points = space.grid(factors)
    if order_seed is not None:
        random.Random(order_seed).shuffle(points)
    for point in points:
        config = canonicalize(space.config_from_params(point))
        for seed in seeds:
            study.enqueue_trial(
                {},
                user_attrs={
                    "enqueued_config": config.to_json(),
                    "factors": {k: point[k] for k in factors},
                    "train_seed": seed,
                },
                skip_if_exists=False,
            )
            count += 1
    record.record_ablation_grid(key)
    return count


def check_seeds(seeds: int) -> None:
    """``--seeds`` of ``ablate`` and ``table build``: [1, MAX_SEEDS] (a million queued trials for
    minutes before anything trained, and stayed queued)."""
    from studies.study.spec import MAX_SEEDS

    if not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"--seeds must be an int in [1, {MAX_SEEDS}]; got {seeds}")


def prepare_ablation(
    spec: StudySpec,
    *,
    factors: Sequence[str],
    seeds: int,
    study_name: str,
    storage_url: str,
    runs_dir: str | Path = RUNS_DIR,
    order_seed: int | None = None,
    limit: int | None = None,
) -> tuple[optuna.Study, int]:
    """Create (or resume) an ablation study with every grid point x seed enqueued once.

    ``r3dnas worker --study NAME`` processes can join it: each enqueued trial is taken by
    exactly one worker. Returns the study and its number of trials: every grid point x seed,
    or only the first ``limit`` points (in enqueue order) x seeds, e.g. for a pilot; a later
    call without a limit raises the budget and goes on with the rest.
    """
    from studies.study.storage import open_study

    study = open_study(spec, study_name=study_name, storage_url=storage_url)
    check_seeds(seeds)
    seed_values = [spec.train.seed + k for k in range(seeds)]
    _enqueue_grid(study, spec.space, factors, seed_values, order_seed)
    requeue_interrupted(study)
    total = len(spec.space.grid(factors)) * seeds
    if limit is not None:
        total = min(total, limit * seeds)
    # NOTE: trials the sampler added beyond the grid (before interrupted points were requeued,
    # a resumed ablation ran out of queue and sampled) are not grid points: they do not count.
    total += sum(is_counted(t) and "factors" not in t.user_attrs for t in study.trials)
    StudyRecord(study).record_budget(n_trials=total, runs_dir=runs_dir)
    return study, total


def ablate(
    spec: StudySpec | str | Path | None = None,
    *,
    factors: Sequence[str],
    seeds: int = 1,
    study_name: str | None = None,
    storage: str | None = None,
    wandb_mode: str | None = None,
    runs_dir: str | Path = RUNS_DIR,
    out_dir: str | Path | None = None,
    progress: bool = True,
    workers: int = 1,
    order_seed: int | None = None,
    limit: int | None = None,
) -> AblationResult:
    """Run (or resume) the full factorial over ``factors`` with ``seeds`` seeds each.

    With ``workers > 1`` the trials run in that many ``r3dnas worker`` processes on this machine
    (one per GPU where there are GPUs); each grid point x seed is still run exactly once.
    """
    from studies.run.loop import check_data
    from studies.run.run_study import run_study
    from studies.run.worker_args import WorkerArgs
    from studies.study.sections import StudySpec
    from studies.study.spec import load_spec
    from studies.study.storage import display_url, resolve_storage_url, storage_settings
    from studies.tracking.tracker import open_tracker

    if not isinstance(spec, StudySpec):
        spec = load_spec(spec or "inflation_ablation")
    if not factors:
        raise ConfigError("ablate needs at least one --factor (a search-space parameter name)")
    check_seeds(seeds)
    if workers < 1:
        raise ConfigError(f"--workers must be a positive int; got {workers}")
    spec.space.grid(factors)  # an unknown or repeated factor is an error before any write
    if out_dir is not None:
        output_dir(out_dir, option="--out")  # NOTE: written after the training, checked before
    name = study_name or f"{spec.study.name}-ablation"
    url = resolve_storage_url(storage, study_name=name, runs_dir=runs_dir)
    datasets = check_data(spec)
    study, total = prepare_ablation(
        spec,
        factors=factors,
        seeds=seeds,
        study_name=name,
        storage_url=url,
        runs_dir=runs_dir,
        order_seed=order_seed,
        limit=limit,
    )
    print(
        f"ablation {name!r} on {display_url(url)}: {total} trials "
        f"({', '.join(factors)} x {seeds} seeds)"
    )
    tracker = open_tracker(spec.wandb, study_name=name, mode=wandb_mode,
                           run_dir=Path(runs_dir) / name)  # fmt: skip
    outcome = run_study(
        study, spec, n_trials=total, tracker=tracker, datasets=datasets,
        settings=storage_settings(), progress=progress, label=name, workers=workers,
        worker_args=WorkerArgs(study_name=name, storage=url, wandb_mode=wandb_mode),
    )  # fmt: skip
    tracker.close()
    stopped = outcome.stopped
    if any(outcome.worker_exit_codes):
        print(f"worker exit codes: {', '.join(map(str, outcome.worker_exit_codes))}")
        stopped = "gave_up"  # NOTE: a failed worker fails the ablation, even with a full grid
    trials = _trial_table(study)
    return _summarize_to(
        trials, factors, out=Path(out_dir) if out_dir is not None else Path(runs_dir) / name,
        study_name=name, n_trials=total, stopped=stopped,
    )  # fmt: skip


def _trial_table(study: optuna.Study) -> pd.DataFrame:
    """One row per completed trial (reused ones too): its factors, seed, metrics and
    architecture. Two retries of one failed trial that both completed (studies written before
    :func:`studies.run.budget.duplicate_retry_of`) are one grid point x seed: the first stays."""
    import pandas as pd

    records = []
    first = first_attempts(study.get_trials(deepcopy=False))
    seen: set[int] = set()
    for t in study.get_trials(deepcopy=False):
        if not is_completed(t) or first.get(t.number, -1) in seen:
            continue
        if t.number in first:
            seen.add(first[t.number])
        row = {
            "trial": t.number,
            **t.user_attrs.get("factors", {}),
            "seed": t.user_attrs.get("seed"),
        }
        for metric in METRICS:
            if metric in t.user_attrs:
                row[metric] = t.user_attrs[metric]
        row["arch"] = t.user_attrs.get("arch")
        records.append(row)
    return pd.DataFrame(records)


def _summarize_to(
    trials: pd.DataFrame,
    factors: Sequence[str],
    *,
    out: Path,
    study_name: str,
    n_trials: int,
    stopped: StopReason,
) -> AblationResult:
    """Statistics over the completed trials, written as CSVs and a chart into ``out``."""
    import pandas as pd

    metrics = [m for m in METRICS if m in trials.columns]
    summary, effects = (
        summarize(trials, factors, metrics) if len(trials) else (pd.DataFrame(), pd.DataFrame())
    )
    csv_path = plot_path = None
    if len(trials):
        out.mkdir(parents=True, exist_ok=True)
        csv_path = out / "ablation.csv"
        trials.to_csv(out / "ablation_trials.csv", index=False)
        summary.to_csv(csv_path, index=False)
        effects.to_csv(out / "ablation_effects.csv", index=False)
        plot_path = plot_ablation(summary, out / "ablation.png")
    return AblationResult(
        study_name=study_name, trials=trials, summary=summary, effects=effects,
        csv_path=csv_path, plot_path=plot_path, n_trials=n_trials, stopped=stopped,
    )  # fmt: skip
