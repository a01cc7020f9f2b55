"""Multi-objective early stopping on a tabular benchmark: no pruning, MOASHA, and ``pareto``.

    python benchmarks/bench_early_stopping.py benchmarks/tables/bench_table.csv --reps 20

Each repetition is a real tabular study (the spec beside the table, ``[study] table`` set, a
temporary journal storage; the same :class:`~studies.run.objective.TrialRunner`, epoch hook and
pruner code a user runs) with the same sampler and seed for every pruner, run until
``--long`` trials are *complete or pruned* (the study's own budget counts complete trials
only, which would hand the pruned studies more trials). ``--pruners`` names each as ``none``,
``moasha``, ``pareto`` (margin ``--margin``) or ``pareto:M`` (margin M).

**At equal trials** (the first ``--trials`` complete-or-pruned trials of each study):

* **epochs**: training epochs spent (a pruned trial's curve length; a reused trial and a trial
  stopped before training spend 0);
* **hv**: normalised hypervolume of the complete trials' architectures at their mean top-1 over
  the table's seeds, over the exact front of the whole table (``bench_search.py``'s convention);
* **wrong**: of the exact front's architectures the study sampled, the share it stopped.

**At equal hypervolume** (the whole ``--long`` run of each study): the epochs each pruner spends
until its hypervolume first reaches a level, for the levels 98% of no pruning's hypervolume at
``--trials`` trials and a few fixed ones; mean over the repetitions that reach it (and how many
did). Pruners differ in how much hypervolume a trial buys, so this is the fair comparison of
their cost. Writes ``--out``/results.json and ``--out``/hv_vs_epochs.png (mean hypervolume
against epochs spent).

Also printed, from the table alone: how often ``pareto``'s bound was not optimistic enough
(leave-one-out: a row's final top-1 above the bound computed at an earlier epoch from every
other row's curve plus the margin).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_search import normalised_points  # noqa: E402

from runners.scores.tabular import BenchmarkTable  # noqa: E402
from studies.core.dominance import hypervolume, non_dominated  # noqa: E402

PRUNERS = ("none", "moasha", "pareto")


def run_study(table_path: Path, *, pruner: str, sampler: str, seed: int, trials: int,
              objectives: tuple[str, ...], table_seed: int, margin: float,
              startup: int) -> list[dict[str, object]]:  # fmt: skip
    """One tabular study until ``trials`` trials are complete or pruned; per trial: digest,
    state, epochs run."""
    import optuna

    from search_space.errors import TrialFailure
    from studies.run.launch import prepare_study
    from studies.run.loop import make_objective, quiet_optuna
    from studies.run.objective import TrialRunner
    from studies.study.spec import load_spec

    overrides = [
        f'study.sampler="{sampler}"',
        f"study.seed={seed}",
        f'study.table="{table_path.resolve()}"',
        f'study.pruner="{pruner}"',
        f"study.pruner_margin={margin}",
        f"study.n_startup_trials={startup}",
        f"train.seed={table_seed}",
        "study.objectives=" + json.dumps([f"{o}:{'max' if 'top' in o else 'min'}"
                                          for o in objectives]),
    ]  # fmt: skip
    spec = load_spec(table_path.with_suffix(".toml"), overrides=overrides)
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

    def stop_at_budget(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if len(study.get_trials(deepcopy=False, states=done)) >= trials:
            study.stop()

    with tempfile.TemporaryDirectory() as folder, quiet_optuna():
        url = f"journal:///{folder}/bench.log"  # NOTE: 5x faster than SQLite here
        study = prepare_study(spec, study_name="bench", storage_url=url, n_trials=trials,
                              runs_dir=folder)  # fmt: skip
        objective = make_objective(study, TrialRunner(spec, runs_dir=folder), n_trials=trials)
        study.optimize(objective, n_trials=20 * trials, catch=(TrialFailure,),
                       callbacks=[stop_at_budget])  # fmt: skip
        out = []
        for t in sorted(study.get_trials(deepcopy=False, states=done), key=lambda t: t.number):
            attrs = t.user_attrs
            # NOTE: Optuna's state is PRUNED for a reused trial too; r3dnas's says which
            state = "complete" if t.state == optuna.trial.TrialState.COMPLETE else attrs["state"]
            epochs = 0 if state == "reused" else len(attrs.get("history", ()))
            out.append({"digest": attrs["digest"], "state": state, "epochs": epochs,
                        "again": "stopped_from" in attrs})  # fmt: skip
        return out


def score(
    rows: list[dict[str, object]],
    points: dict[str, list[float]],
    exact: float,
    front: set[str],
) -> dict[str, float]:
    complete = {str(r["digest"]) for r in rows if r["state"] == "complete"}
    pruned = {str(r["digest"]) for r in rows if r["state"] == "pruned"} - complete
    reference = [1.0] * len(next(iter(points.values())))
    hv = hypervolume([points[d] for d in complete if d in points], reference) / exact
    sampled = (complete | pruned) & front
    wrong = len(pruned & front)
    return {
        "epochs": float(sum(int(r["epochs"]) for r in rows)),  # type: ignore[call-overload]
        "hv": hv,
        "pruned": float(sum(r["state"] == "pruned" for r in rows)),
        "pruned_again": float(sum(bool(r.get("again")) for r in rows)),
        "reused": float(sum(r["state"] == "reused" for r in rows)),
        "wrong": wrong / len(sampled) if sampled else 0.0,
        "front_sampled": float(len(sampled)),
    }


def bound_misses(table: BenchmarkTable, margin: float) -> float:
    """Share of (row, epoch < last) where the row's final top-1 exceeds the pareto bound
    computed from every other row's curve (leave-one-out)."""
    from studies.run.pruning import optimistic_top1

    curves = [list(r.val_top1) for r in table.rows]
    misses = total = 0
    for i, curve in enumerate(curves):
        others = curves[:i] + curves[i + 1 :]
        for epoch in range(1, len(curve)):
            bound, _ = optimistic_top1(curve[:epoch], others, margin=margin)
            misses += curve[-1] > bound
            total += 1
    return misses / max(total, 1)


def hv_by_epochs(
    rows: list[dict[str, object]], points: dict[str, list[float]], exact: float
) -> tuple[list[float], list[float]]:
    """``(cumulative epochs, normalised hypervolume)`` after each trial, in trial order."""
    reference = [1.0] * len(next(iter(points.values())))
    seen: list[list[float]] = []
    epochs, hvs, total = [], [], 0
    for r in rows:
        total += int(r["epochs"])  # type: ignore[call-overload]
        if r["state"] == "complete":
            seen.append(points[str(r["digest"])])
        epochs.append(float(total))
        hvs.append(hypervolume(seen, reference) / exact if seen else 0.0)
    return epochs, hvs


def epochs_to_reach(curve: tuple[list[float], list[float]], level: float) -> float | None:
    """Epochs spent when the hypervolume first reached ``level`` (None: never)."""
    return next((e for e, h in zip(*curve, strict=True) if h >= level), None)


def parse_pruner(name: str, default_margin: float) -> tuple[str, float]:
    """``pareto:0.5`` -> ("pareto", 0.5); other names keep the default margin."""
    kind, _, margin = name.partition(":")
    if kind not in PRUNERS:
        raise SystemExit(f"--pruners: unknown {kind!r}; allowed: {', '.join(PRUNERS)}")
    if not margin:
        return kind, default_margin
    try:
        value = float(margin)
    except ValueError:
        value = -1.0
    if kind != "pareto" or not value >= 0:
        raise SystemExit(f"--pruners: {name!r}: only pareto takes a margin, a number >= 0 "
                         "(e.g. pareto:0)")  # fmt: skip
    return kind, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100, help="complete or pruned trials")
    parser.add_argument(
        "--long",
        type=int,
        default=300,
        help="complete or pruned trials of each study (equal hypervolume)",
    )
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--pruners", default=",".join(PRUNERS))
    parser.add_argument("--margin", type=float, default=2.0, help="[study] pruner_margin")
    parser.add_argument("--startup", type=int, default=4, help="[study] n_startup_trials")
    parser.add_argument("--out", default="runs/bench_early_stopping")
    parser.add_argument(
        "--report",
        metavar="RESULTS_JSON",
        help="print the tables and plot of an earlier run's results.json only",
    )
    args = parser.parse_args()
    if args.report:
        if not Path(args.report).is_file():
            parser.error(f"--report: no file {args.report}")
        saved = json.loads(Path(args.report).read_text())
        _print_equal_trials(saved["trials"], args.trials)
        _print_equal_hv(saved["trials"], saved["curves"])
        _plot(Path(args.report).with_name("hv_vs_epochs.png"), saved["curves"], args.sampler,
              args.trials)  # fmt: skip
        return 0
    for name in args.pruners.split(","):
        parse_pruner(name, args.margin)  # a bad name stops here, before any study runs
    if args.long < args.trials:
        parser.error(f"--long: {args.long} is below --trials {args.trials}")
    table_path = Path(args.table)
    table = BenchmarkTable.load(table_path)
    has_latency = all(not math.isnan(r.latency_ms) for r in table.rows)
    objectives = ("top1", "gflops", "latency_ms") if has_latency else ("top1", "gflops")
    points = normalised_points(table, objectives)
    digests = list(points)
    front = {digests[i] for i in non_dominated([points[d] for d in digests])}
    exact = hypervolume(list(points.values()), [1.0] * len(objectives))
    print(f"table {table_path}: {len(points)} architectures x {len(table.seeds)} seeds, "
          f"objectives {objectives}, exact front {len(front)} architectures; sampler "
          f"{args.sampler}, {args.trials} trials done ({args.long} for equal hypervolume), "
          f"reps {args.reps}")  # fmt: skip
    print(f"pareto bound (margin {args.margin:g}) below the final top-1, leave-one-out: "
          f"{100 * bound_misses(table, args.margin):.2f}% of (row, epoch)")  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, float]]] = {}
    curves: dict[str, list[tuple[list[float], list[float]]]] = {}
    for name in args.pruners.split(","):
        pruner, margin = parse_pruner(name, args.margin)
        t0 = time.perf_counter()
        results[name], curves[name] = [], []
        for rep in range(args.reps):
            table_seed = table.full_seeds[rep % len(table.full_seeds)]
            rows = run_study(table_path, pruner=pruner, sampler=args.sampler, seed=rep,
                             trials=args.long, objectives=objectives, table_seed=table_seed,
                             margin=margin, startup=args.startup)  # fmt: skip
            results[name].append(score(rows[: args.trials], points, exact, front))
            curves[name].append(hv_by_epochs(rows, points, exact))
            print(f"\r{name}: {rep + 1}/{args.reps}", end="", file=sys.stderr)
        print(f" ({(time.perf_counter() - t0) / args.reps:.1f} s/study)", file=sys.stderr)
    (out / "results.json").write_text(json.dumps({"trials": results, "curves": curves}))
    _print_equal_trials(results, args.trials)
    _print_equal_hv(results, curves)
    _plot(out / "hv_vs_epochs.png", curves, args.sampler, args.trials)
    return 0


def _print_equal_trials(results: dict[str, list[dict[str, float]]], trials: int) -> None:
    base = results.get("none")
    header = ["pruner", "epochs", "epochs vs none", "hv", "hv vs none",
              "pruned (before training)", "reused", "wrongly stopped"]  # fmt: skip
    print(f"\nAt equal trials ({trials} complete or pruned):\n")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, reps in results.items():
        mean = {k: float(np.mean([r[k] for r in reps])) for k in reps[0]}
        std = {k: float(np.std([r[k] for r in reps])) for k in reps[0]}
        ratio_e = mean["epochs"] / np.mean([r["epochs"] for r in base]) if base else math.nan
        ratio_h = mean["hv"] / np.mean([r["hv"] for r in base]) if base else math.nan
        cells = [name, f"{mean['epochs']:.0f} ± {std['epochs']:.0f}", f"{ratio_e:.2f}x",
                 f"{mean['hv']:.3f} ± {std['hv']:.3f}", f"{100 * ratio_h:.1f}%",
                 f"{mean['pruned']:.1f} ({mean['pruned_again']:.1f})", f"{mean['reused']:.1f}",
                 f"{100 * mean['wrong']:.1f}% of {mean['front_sampled']:.1f} sampled"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")


def _print_equal_hv(
    results: dict[str, list[dict[str, float]]],
    curves: dict[str, list[tuple[list[float], list[float]]]],
) -> None:
    levels = [0.75, 0.80]
    target = None
    if "none" in results:
        target = round(0.98 * float(np.mean([r["hv"] for r in results["none"]])), 3)
        levels = sorted({*levels, target})
    print("\nAt equal hypervolume: epochs until the hypervolume first reaches a level, median "
          "over the repetitions (one that never reaches it counts as infinite; how many "
          "reached it):\n")  # fmt: skip
    header = ["pruner", *[f"hv {level:.3f}" for level in levels]]
    if target is not None:
        header.append(f"vs none at {target:.3f}")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    medians: dict[str, dict[float, float]] = {}
    for name, reps in curves.items():
        medians[name] = {}
        cells = [name]
        for level in levels:
            spent = [epochs_to_reach(c, level) for c in reps]
            median = float(np.median([math.inf if e is None else e for e in spent]))
            medians[name][level] = median
            hits = sum(e is not None for e in spent)
            shown = "never" if math.isinf(median) else f"{median:.0f}"
            cells.append(f"{shown} ({hits}/{len(reps)})")
        if target is not None:
            ratio = medians[name][target] / medians["none"][target]
            cells.append("-" if math.isinf(ratio) else f"{ratio:.2f}x")
        print("| " + " | ".join(cells) + " |")


def _plot(
    path: Path,
    curves: dict[str, list[tuple[list[float], list[float]]]],
    sampler: str,
    trials: int,
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a script, not a library: no caller's backend to keep
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    last = max(c[0][-1] for reps in curves.values() for c in reps)
    grid = np.linspace(0, last, 200)
    for name, reps in curves.items():
        # NOTE: a study's hypervolume holds after its last trial (its curve ends there)
        at = np.array([np.interp(grid, e, h, right=np.nan) for e, h in reps])
        alive = np.isfinite(at).sum(0) >= len(reps) / 2  # drawn while half the studies run
        mean = np.nansum(at, 0) / np.maximum(np.isfinite(at).sum(0), 1)
        ax.plot(grid[alive], mean[alive], label=name)
    ax.set_xlabel("training epochs spent")
    ax.set_ylabel("normalised hypervolume")
    ax.set_title(f"{sampler} sampler, mean over repetitions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
