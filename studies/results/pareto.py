"""The Pareto front of a study (non-dominated, completed, feasible trials), and picking a
trial from it (:func:`select_trial`, for ``export`` and ``reproduce``).

``pareto(...)`` returns a pandas DataFrame, one row per front network (best first by the first
objective), with the objective values by name, the other measured metrics, a one-line
architecture, the canonical digest and the full config. A network trained with several seeds
(``[study] confirm_seeds``, an ablation's seeds) is one point at its means over seeds, and the
front then has ``<objective>_std`` (the spread over seeds of the measured objectives, ddof 1,
NaN with one seed) and ``n_seeds`` columns; ``trial`` is the network's first trial.
``df.attrs`` carries the objectives, their directions, the hypervolume and the reference point
it was measured from.

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
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from search_space._files import output_file
from search_space.errors import ConfigError
from studies.core.defaults import RUNS_DIR
from studies.core.dominance import hypervolume, is_feasible, minimised, non_dominated
from studies.study.record import StudyRecord

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from optuna.trial import FrozenTrial

__all__ = [
    "PICKS",
    "TrialChoice",
    "check_plot_path",
    "choose_trial",
    "format_pareto",
    "pareto",
    "plot_pareto",
    "select_trial",
    "selected_trial",
]

FORMATS = ("table", "csv", "json", "markdown")
PICKS = ("top1", "knee", "min-latency")


def pareto(
    study: optuna.Study | str | None = None,
    *,
    storage: str | None = None,
    objectives: Sequence[str] | None = None,
    runs_dir: str | Path = RUNS_DIR,
) -> pd.DataFrame:
    """The front as a DataFrame (see module docstring).

    Args:
        study: a Study, a study name, or None for the only study in the storage.
        objectives: a subset of the study's objectives to take the front over (default all).
        runs_dir: where the default storages ``<runs_dir>/<study>.db`` are.
    """
    import pandas as pd
    from optuna.trial import TrialState

    from studies.results.frames import front_columns, front_row, seed_summaries
    from studies.study.storage import resolve_study

    study = resolve_study(study, storage=storage, runs_dir=runs_dir)
    names = StudyRecord(study).objectives
    directions = [d.name.lower() for d in study.directions]
    chosen = [n.strip() for n in objectives] if objectives else names
    for name in chosen:
        if name not in names:
            raise ConfigError(f"objective {name!r} is not one of this study's: {', '.join(names)}")
    if len(set(chosen)) < len(chosen):
        raise ConfigError(f"objectives {', '.join(chosen)} name one twice; give each once")
    idx = [names.index(n) for n in chosen]
    dirs = [directions[i] for i in idx]
    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if is_feasible(t)
    ]

    # NOTE: one point per network (digest): a network trained with several seeds
    # (confirm_seeds, an ablation's seeds) at its means, its spread and seed count beside them.
    networks = sorted(seed_summaries(trials).values(), key=lambda s: s.trials[0])
    several = any(s.n_seeds > 1 for s in networks)
    by_number = {t.number: t for t in trials}
    points = [minimised([s.mean[i] for i in idx], dirs) for s in networks]
    front_ids = non_dominated(points)
    rows = []
    for i in sorted(front_ids, key=lambda k: (points[k], networks[k].trials[0])):
        first = by_number[networks[i].trials[0]]
        rows.append(front_row(first, names, chosen, networks[i] if several else None))
    frame = pd.DataFrame(rows, columns=front_columns(rows, chosen))
    reference = _reference_point(points) or [math.nan] * len(chosen)
    front_points = [points[i] for i in front_ids]
    frame.attrs.update(
        study=study.study_name,
        objectives=chosen,
        directions=dirs,
        reference_point=minimised(reference, dirs),
        hypervolume=hypervolume(front_points, reference) if front_points else 0.0,
        n_complete_feasible=len(trials),
        n_networks=len(networks),
    )
    return frame


def _reference_point(points: list[list[float]]) -> list[float]:
    """Per objective (minimised), the worst value that is not an extreme outlier
    (:func:`robust_max`), plus 10% of the range. Why: one mis-measured trial (a latency of
    62 ms among 2.3 ms neighbours) set the reference alone and inflated the hypervolume
    thirtyfold; beyond the fence a point adds nothing to the hypervolume instead."""
    if not points:
        return []
    reference = []
    for k in range(len(points[0])):
        values = [p[k] for p in points]
        worst = robust_max(values)
        span = worst - min(values)
        reference.append(worst + (0.1 * span if span > 0 else 1.0))
    return reference


def robust_max(values: list[float]) -> float:
    """The largest of ``values`` not beyond Tukey's far-out fence ``Q3 + 3 IQR`` (the plain
    maximum for fewer than four values, or when half of them are equal)."""
    import statistics

    if len(values) < 4:
        return max(values)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    if q3 <= q1:
        return max(values)
    fence = q3 + 3.0 * (q3 - q1)
    return max(v for v in values if v <= fence)


def _describe(frame: pd.DataFrame) -> str:
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
        f"hypervolume {frame.attrs['hypervolume']:.6g} ({len(frame)} front trials of "
        f"{frame.attrs['n_complete_feasible']} complete feasible)\nreference point: {refs}"
    )


def format_pareto(frame: pd.DataFrame, *, fmt: str = "table", wide: bool = False) -> str:
    """The front as ``table`` | ``csv`` | ``json`` | ``markdown`` text.

    ``table`` fits 100 columns: the numbers, then one line per trial with its architecture;
    ``wide`` puts architecture, digest and state in the table's own columns.
    """
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
    title = f"Pareto front of {frame.attrs.get('study')!r}"
    if wide:
        text = shown.to_string(index=False, formatters=numeric)  # type: ignore[arg-type]
        return f"{title}\n{text}\n{_describe(frame)}"
    narrow = shown.drop(columns=["arch", "digest", "state"])
    text = narrow.to_string(index=False, formatters=numeric)  # type: ignore[arg-type]
    width = len(str(int(frame["trial"].max())))
    archs = [
        f"  #{t:<{width}} {_cut(str(a), 96 - width)}"
        for t, a in zip(frame["trial"], frame["arch"], strict=True)
    ]
    return "\n".join([title, text, "architectures (--wide: one table with digests):", *archs,
                      _describe(frame)])  # fmt: skip


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_plot_path(path: str | Path) -> Path:
    """``path`` as a plot file matplotlib can write, checked before any work (the CLI's
    ``--plot``). Why a suffix is required: matplotlib writes a path without one as
    ``path.png``, and the command would then name a file that does not exist.

    Raises:
        ConfigError: not a writable file path, or a suffix matplotlib has no writer for.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    suffixes = {f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes()}
    return output_file(path, option="--plot", suffixes=suffixes)


def plot_pareto(frame: pd.DataFrame, study: optuna.Study, path: str | Path) -> Path:
    """Scatter every completed feasible trial, the front highlighted; written at ``path`` in
    the format its suffix names (``.png``, ``.pdf``, ``.svg``, ...).

    Drawn on a bare matplotlib ``Figure`` (no pyplot), so the caller's backend and open
    figures are left as they are.

    Raises:
        ConfigError: ``path`` is not a plot file (:func:`check_plot_path`), or the front is
            empty (nothing is written).
    """
    from matplotlib.figure import Figure
    from optuna.trial import TrialState

    out = check_plot_path(path)
    if not len(frame):
        raise ConfigError(
            f"--plot: study {frame.attrs.get('study')!r} has no completed feasible trial yet; "
            "nothing to plot"
        )
    objectives = frame.attrs["objectives"]
    names = StudyRecord(study).recorded_objectives or list(objectives)
    # NOTE: one objective has no trade-off to draw: its trials by number, the best marked
    single = len(objectives) == 1
    x_name = "trial" if single else objectives[1]
    y_name = objectives[0]
    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if is_feasible(t)
    ]
    fig = Figure(figsize=(7, 5), dpi=120)
    ax = fig.subplots()
    ax.scatter(
        [t.number if single else t.values[names.index(x_name)] for t in trials],
        [t.values[names.index(y_name)] for t in trials],
        c="#bbbbbb",
        label="completed trials",
    )
    front_label = "best" if single else "Pareto front"
    if len(objectives) > 2:
        color = frame[objectives[2]]
        # NOTE: one outlier must not squeeze every other colour together: the scale ends at
        # the far-out fence, beyond it the colour saturates (the colour bar's arrow).
        vmax = robust_max([float(v) for v in color])
        points = ax.scatter(frame[x_name], frame[y_name], c=color, cmap="viridis", vmax=vmax,
                            s=60, edgecolors="black", label=front_label)  # fmt: skip
        extend = "max" if vmax < float(color.max()) else "neither"
        fig.colorbar(points, ax=ax, label=objectives[2], extend=extend)
    else:  # NOTE: no colour map without a third objective (matplotlib warns of an unused one)
        ax.scatter(frame[x_name], frame[y_name], s=60, edgecolors="black", label=front_label)
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    what = "best trial" if single else f"Pareto front (HV {frame.attrs['hypervolume']:.4g})"
    ax.set_title(f"{study.study_name}: {what}")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()  # NOTE: before the labels, which are placed in final pixel positions
    place_labels(
        ax,
        [(float(x), float(y)) for x, y in zip(frame[x_name], frame[y_name], strict=True)],
        [f"#{t}" for t in frame["trial"]],
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


# Label positions tried in turn (offset points from the marker), nearest first.
_OFFSETS = ((5, 5), (5, -13), (-9, 9), (-9, -17), (7, -4), (-17, -4), (5, 15), (5, -23),
            (-9, 19), (-9, -27), (15, 5), (-27, 5))  # fmt: skip


def place_labels(ax: Any, points: list[tuple[float, float]], labels: list[str]) -> list[Any]:
    """Annotate each point with its label where it overlaps no label already placed (the
    first free position of :data:`_OFFSETS`; the nearest one when none is free); returns the
    text artists. Why: the README's plot had #7/#10 and #11/#12 printed over each other."""
    fig = ax.figure
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure: give it the PNG canvas
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    texts = []
    for (x, y), label in zip(points, labels, strict=True):
        chosen = None
        for dx, dy in _OFFSETS:
            text = ax.annotate(label, (x, y), fontsize=8, xytext=(dx, dy),
                               textcoords="offset points")  # fmt: skip
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed):
                chosen = (text, box)
                break
            text.remove()
        if chosen is None:
            text = ax.annotate(label, (x, y), fontsize=8, xytext=_OFFSETS[0],
                               textcoords="offset points")  # fmt: skip
            chosen = (text, text.get_window_extent(renderer))
        placed.append(chosen[1])
        texts.append(chosen[0])
    return texts


# ---------------------------------------------------------------------- picking a trial
class TrialChoice(TypedDict, total=False):
    """Which trial of which study: the keywords ``select_trial``, ``export`` and ``reproduce``
    share (the CLI's ``--storage``, ``--runs-dir``, ``--trial``, ``--pick``).

    ``runs_dir`` None means the default ``runs`` folder for finding the study; ``trial`` None
    picks by ``pick`` (default ``knee``, see :func:`selected_trial`)."""

    storage: str | None
    runs_dir: str | Path | None
    trial: int | None
    pick: str | None


def choose_trial(
    study: optuna.Study | str | None = None, **choice: Unpack[TrialChoice]
) -> tuple[optuna.Study, FrozenTrial]:
    """The study (found by name in its storage or runs folder) and the trial ``choice`` names."""
    from studies.study.storage import resolve_study

    runs_dir = choice.get("runs_dir")
    study = resolve_study(
        study,
        storage=choice.get("storage"),
        runs_dir=RUNS_DIR if runs_dir is None else runs_dir,
    )
    return study, selected_trial(study, trial=choice.get("trial"), pick=choice.get("pick"))


def select_trial(
    study: optuna.Study | str | None = None, **choice: Unpack[TrialChoice]
) -> pd.Series:
    """The trial asked for by number, or picked from the front, as a row of
    :func:`studies.trials` (the same columns; ``row["trial"]`` is its number).

    The Python API has one shape: ``pareto()`` and ``trials()`` return rows, and so does this.
    See :func:`selected_trial` for the rules.
    """
    import pandas as pd

    from studies.results.frames import trial_rows

    study, chosen = choose_trial(study, **choice)
    every = study.get_trials(deepcopy=False)
    (row,) = trial_rows([chosen], every, StudyRecord(study).objectives)
    return pd.Series(row, name=chosen.number)


def selected_trial(
    study: optuna.Study | str | None,
    *,
    storage: str | None = None,
    trial: int | None = None,
    pick: str | None = None,
    runs_dir: str | Path = RUNS_DIR,
) -> FrozenTrial:
    """The Optuna trial asked for by number, or picked from the Pareto front (for ``export``
    and ``reproduce``, which read its attributes). A reused trial resolves to the trial whose
    measurement (and weights) it reused.

    ``top1``: the highest top-1 among completed feasible trials; ``min-latency``: the lowest
    latency; ``knee``: the front trial closest (Euclidean, after scaling each objective to
    [0, 1]) to the ideal point of the front.
    """
    from optuna.trial import TrialState

    from studies.study.storage import resolve_study

    study = resolve_study(study, storage=storage, runs_dir=runs_dir)
    if trial is not None:
        numbers = {t.number: t for t in study.get_trials(deepcopy=False)}
        if trial not in numbers:
            raise ConfigError(
                f"study {study.study_name!r} has no trial {trial} (trials 0..{len(numbers) - 1})"
            )
        chosen = numbers[trial]
        if (
            chosen.user_attrs.get("state") == "reused"
            and chosen.user_attrs.get("reused_from") in numbers
        ):
            chosen = numbers[chosen.user_attrs["reused_from"]]
        if chosen.state != TrialState.COMPLETE or "config" not in chosen.user_attrs:
            reason = chosen.user_attrs.get("fail_reason", chosen.state.name.lower())
            raise ConfigError(f"trial {trial} did not complete ({reason}); pick a completed one")
        return chosen
    pick = pick or "knee"
    if pick not in PICKS:
        raise ConfigError(f"--pick must be one of {', '.join(PICKS)}; got {pick!r}")
    front = pareto(study)
    if not len(front):
        raise ConfigError(f"study {study.study_name!r} has no completed feasible trial yet")
    if pick == "top1":
        column, best = _metric_column(front, "top1"), "max"
    elif pick == "min-latency":
        column, best = _metric_column(front, "latency_ms"), "min"
    else:
        return study.trials[_knee(front)]
    values = front[column]
    row = values.idxmax() if best == "max" else values.idxmin()
    return study.trials[int(front.loc[row, "trial"])]


def _metric_column(front: pd.DataFrame, name: str) -> str:
    if name not in front.columns:
        raise ConfigError(f"the study's trials have no {name!r} metric to pick by")
    return name


def _knee(front: pd.DataFrame) -> int:
    scaled = []
    for name, direction in zip(front.attrs["objectives"], front.attrs["directions"], strict=True):
        column = front[name].astype(float)
        span = column.max() - column.min()
        norm = (column - column.min()) / span if span > 0 else column * 0.0
        scaled.append(1.0 - norm if direction == "maximize" else norm)
    distance = sum(s**2 for s in scaled) ** 0.5
    return int(front.loc[distance.idxmin(), "trial"])
