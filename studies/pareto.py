"""The Pareto front of a study: non-dominated, completed, feasible trials.

``pareto(...)`` returns a pandas DataFrame, one row per front trial (best first by the first
objective), with the objective values by name, the other measured metrics, a one-line
architecture, the canonical digest and the full config. ``df.attrs`` carries the objectives,
their directions, the hypervolume and the reference point it was measured from.

Hypervolume convention (stated in every output): objectives are turned into minimisation
(maximised ones negated); the reference point is, per objective, the worst value among all
completed feasible trials pushed 10% of that objective's range further (1.0 when the range is
0), so every front point contributes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_space.errors import ConfigError

__all__ = ["format_pareto", "hypervolume", "non_dominated", "pareto", "plot_pareto"]

METRIC_COLUMNS = ("top1", "gflops", "params_m", "latency_ms", "throughput_clips_s")
FORMATS = ("table", "csv", "json", "markdown")


def non_dominated(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates (all objectives minimised)."""
    front = []
    for i, p in enumerate(points):
        dominated = False
        for j, q in enumerate(points):
            if (
                j != i
                and all(a <= b for a, b in zip(q, p, strict=True))
                and any(a < b for a, b in zip(q, p, strict=True))
            ):
                dominated = True
                break
        if not dominated:
            front.append(i)
    return front


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Exact hypervolume dominated by ``points`` (minimisation) up to ``reference``.

    Recursive slicing over the last objective: exact in any dimension and fast for the fronts
    of a study (tens of points).
    """
    pts = [tuple(p) for p in points if all(a < r for a, r in zip(p, reference, strict=True))]
    if not pts:
        return 0.0
    dims = len(reference)
    if dims == 1:
        return reference[0] - min(p[0] for p in pts)
    pts.sort(key=lambda p: p[-1])
    volume = 0.0
    for k, p in enumerate(pts):
        upper = pts[k + 1][-1] if k + 1 < len(pts) else reference[-1]
        depth = upper - p[-1]
        if depth > 0:
            slice_points = [q[:-1] for q in pts[: k + 1]]
            volume += depth * hypervolume(slice_points, reference[:-1])
    return volume


def _as_study(study: Any, storage: str | None, *, runs_dir: str | Path = "runs") -> Any:
    """``study`` itself, or the existing study of that name (None: the storage's only one)."""
    if study is not None and not isinstance(study, str):
        return study
    from studies.storage import load_existing_study

    return load_existing_study(study, storage=storage, runs_dir=runs_dir)


def _feasible(trial: Any) -> bool:
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    constraints = trial.system_attrs.get(_CONSTRAINTS_KEY)
    if constraints is None:
        constraints = [
            v for k, v in trial.system_attrs.items() if str(k).startswith(f"{_CONSTRAINTS_KEY}:")
        ]
    return all(c <= 0 for c in constraints)


def pareto(
    study: Any = None,
    *,
    storage: str | None = None,
    objectives: Sequence[str] | None = None,
    runs_dir: str | Path = "runs",
) -> Any:
    """The front as a DataFrame (see module docstring).

    Args:
        study: a Study, a study name, or None for the only study in the storage.
        objectives: a subset of the study's objectives to take the front over (default all).
        runs_dir: where the default storages ``<runs_dir>/<study>.db`` are.
    """
    import pandas as pd
    from optuna.trial import TrialState

    study = _as_study(study, storage, runs_dir=runs_dir)
    names = list(
        study.user_attrs.get("objectives") or [f"value{i}" for i in range(len(study.directions))]
    )
    directions = [d.name.lower() for d in study.directions]
    chosen = list(objectives) if objectives else names
    for name in chosen:
        if name not in names:
            raise ConfigError(f"objective {name!r} is not one of this study's: {', '.join(names)}")
    idx = [names.index(n) for n in chosen]
    dirs = [directions[i] for i in idx]
    trials = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _feasible(t)
    ]

    def minimised(t: Any) -> list[float]:
        return [
            t.values[i] if d == "minimize" else -t.values[i]
            for i, d in zip(idx, dirs, strict=True)
        ]

    points = [minimised(t) for t in trials]
    front_ids = non_dominated(points)
    # NOTE: several trials can share one architecture (reuse); keep the earliest of each digest.
    seen: set[tuple[Any, ...]] = set()
    rows = []
    for i in sorted(front_ids, key=lambda k: (points[k], trials[k].number)):
        t = trials[i]
        key = (t.user_attrs.get("digest"), tuple(points[i]))
        if key in seen:
            continue
        seen.add(key)
        row: dict[str, Any] = {"trial": t.number}
        for n in chosen:
            row[n] = t.values[names.index(n)]
        for m in METRIC_COLUMNS:
            if m not in row and m in t.user_attrs:
                row[m] = t.user_attrs[m]
        row["arch"] = t.user_attrs.get("arch", "")
        row["digest"] = t.user_attrs.get("digest", "")
        row["state"] = t.user_attrs.get("state", "complete")
        row["config"] = t.user_attrs.get("config", {})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=_columns(rows, chosen))
    reference = _reference_point(points) or [math.nan] * len(chosen)
    front_points = [points[i] for i in front_ids]
    frame.attrs.update(
        study=study.study_name,
        objectives=chosen,
        directions=dirs,
        reference_point=[
            r if d == "minimize" else -r for r, d in zip(reference, dirs, strict=True)
        ],
        hypervolume=hypervolume(front_points, reference) if front_points else 0.0,
        n_complete_feasible=len(trials),
    )
    return frame


def _columns(rows: list[dict[str, Any]], chosen: list[str]) -> list[str]:
    extra = [m for m in METRIC_COLUMNS if m not in chosen and any(m in r for r in rows)]
    return ["trial", *chosen, *extra, "arch", "digest", "state", "config"]


def _reference_point(points: list[list[float]]) -> list[float]:
    if not points:
        return []
    reference = []
    for k in range(len(points[0])):
        values = [p[k] for p in points]
        span = max(values) - min(values)
        reference.append(max(values) + (0.1 * span if span > 0 else 1.0))
    return reference


def _describe(frame: Any) -> str:
    refs = ", ".join(
        f"{n} {'>=' if d == 'maximize' else '<='} {r:.4g}"
        for n, d, r in zip(
            frame.attrs["objectives"],
            frame.attrs["directions"],
            frame.attrs["reference_point"],
            strict=True,
        )
    )
    return (
        f"hypervolume {frame.attrs['hypervolume']:.6g} (reference point: {refs}; "
        f"{len(frame)} front trials of {frame.attrs['n_complete_feasible']} complete feasible)"
    )


def format_pareto(frame: Any, *, fmt: str = "table") -> str:
    """The front as ``table`` | ``csv`` | ``json`` | ``markdown`` text."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "json":
        records = []
        for row in frame.to_dict(orient="records"):
            records.append({k: v for k, v in row.items() if k != "state"})
        return json.dumps(records, indent=2, default=str)
    shown = frame.drop(columns=["config"])
    if fmt == "csv":
        return frame.assign(config=[json.dumps(c) for c in frame["config"]]).to_csv(index=False)
    if not len(frame):
        return f"study {frame.attrs.get('study')!r}: no completed feasible trials yet"
    numeric = {
        c: "{:.4g}".format for c in shown.columns if c not in ("trial", "arch", "digest", "state")
    }
    if fmt == "markdown":
        header = "| " + " | ".join(shown.columns) + " |"
        rule = "|" + "|".join("---" for _ in shown.columns) + "|"
        lines = [header, rule]
        for row in shown.to_dict(orient="records"):
            cells = [numeric[c](v) if c in numeric else str(v) for c, v in row.items()]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + f"\n\n{_describe(frame)}"
    text = shown.to_string(index=False, formatters=numeric)  # type: ignore[arg-type]
    return f"Pareto front of {frame.attrs.get('study')!r}\n{text}\n{_describe(frame)}"


def plot_pareto(frame: Any, study: Any, path: str | Path) -> Path:
    """Scatter every completed feasible trial, the front highlighted; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    objectives = frame.attrs["objectives"]
    names = list(study.user_attrs.get("objectives", objectives))
    x_name = objectives[1] if len(objectives) > 1 else objectives[0]
    y_name = objectives[0]
    trials = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _feasible(t)
    ]
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    ax.scatter(
        [t.values[names.index(x_name)] for t in trials],
        [t.values[names.index(y_name)] for t in trials],
        c="#bbbbbb",
        label="completed trials",
    )
    color = None
    if len(objectives) > 2:
        color = frame[objectives[2]]
    points = ax.scatter(frame[x_name], frame[y_name], c=color, cmap="viridis", s=60,
                        edgecolors="black", label="Pareto front")  # fmt: skip
    if color is not None:
        fig.colorbar(points, ax=ax, label=objectives[2])
    for _, row in frame.iterrows():
        ax.annotate(f"#{row['trial']}", (row[x_name], row[y_name]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")  # fmt: skip
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(f"{study.study_name}: Pareto front (HV {frame.attrs['hypervolume']:.4g})")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
