"""Multi-objective early stopping on a tabular benchmark: no pruning, MOASHA, and ``pareto``.

    python benchmarks/bench_early_stopping.py benchmarks/tables/bench_table.csv --reps 20

Each repetition is a real tabular study (the spec beside the table, ``[study] table`` set, a
temporary journal storage; the same :class:`~studies.objective.TrialRunner`, epoch hook and
pruner code a user runs) with the same sampler and seed for every pruner, run until
``--trials`` trials are *complete or pruned* (the study's own budget counts complete trials
only, which would hand the pruned studies more trials). Per repetition:

* **epochs**: training epochs spent (a pruned trial's curve length; a reused trial spends 0);
* **hv**: normalised hypervolume of the complete trials' architectures at their mean top-1 over
  the table's seeds, over the exact front of the whole table (``bench_search.py``'s convention);
* **wrong**: of the exact front's architectures the study sampled, the share it stopped.

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

from runners.tabular import BenchmarkTable  # noqa: E402
from studies.pareto import hypervolume, non_dominated  # noqa: E402

PRUNERS = ("none", "moasha", "pareto")


def run_study(table_path: Path, *, pruner: str, sampler: str, seed: int, trials: int,
              objectives: tuple[str, ...], table_seed: int, margin: float,
              startup: int) -> list[dict[str, object]]:  # fmt: skip
    """One tabular study until ``trials`` trials are complete or pruned; per trial: digest,
    state, epochs run."""
    import optuna

    from search_space.errors import TrialFailure
    from studies.launch import prepare_study
    from studies.loop import make_objective, quiet_optuna
    from studies.objective import TrialRunner
    from studies.spec import load_spec

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
        for t in study.get_trials(deepcopy=False, states=done):
            attrs = t.user_attrs
            reused = attrs.get("state") == "reused"
            out.append({"digest": attrs["digest"], "state": t.state.name.lower(),
                        "epochs": 0 if reused else len(attrs.get("history", ()))})  # fmt: skip
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
        "wrong": wrong / len(sampled) if sampled else 0.0,
        "front_sampled": float(len(sampled)),
    }


def bound_misses(table: BenchmarkTable, margin: float) -> float:
    """Share of (row, epoch < last) where the row's final top-1 exceeds the pareto bound
    computed from every other row's curve (leave-one-out)."""
    from studies.pruning import optimistic_top1

    curves = [list(r.val_top1) for r in table.rows]
    misses = total = 0
    for i, curve in enumerate(curves):
        others = curves[:i] + curves[i + 1 :]
        for epoch in range(1, len(curve)):
            bound, _ = optimistic_top1(curve[:epoch], others, margin=margin)
            misses += curve[-1] > bound
            total += 1
    return misses / max(total, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100, help="complete or pruned trials")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--pruners", default=",".join(PRUNERS))
    parser.add_argument("--margin", type=float, default=2.0, help="[study] pruner_margin")
    parser.add_argument("--startup", type=int, default=4, help="[study] n_startup_trials")
    parser.add_argument("--out", default="runs/bench_early_stopping")
    args = parser.parse_args()
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
          f"{args.sampler}, {args.trials} trials done, reps {args.reps}")  # fmt: skip
    print(f"pareto bound (margin {args.margin:g}) below the final top-1, leave-one-out: "
          f"{100 * bound_misses(table, args.margin):.2f}% of (row, epoch)")  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, float]]] = {}
    for pruner in args.pruners.split(","):
        t0 = time.perf_counter()
        results[pruner] = []
        for rep in range(args.reps):
            rows = run_study(table_path, pruner=pruner, sampler=args.sampler, seed=rep,
                             trials=args.trials, objectives=objectives,
                             table_seed=table.seeds[rep % len(table.seeds)], margin=args.margin,
                             startup=args.startup)  # fmt: skip
            results[pruner].append(score(rows, points, exact, front))
            print(f"\r{pruner}: {rep + 1}/{args.reps}", end="", file=sys.stderr)
        print(f" ({(time.perf_counter() - t0) / args.reps:.1f} s/study)", file=sys.stderr)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    base = results.get("none")
    header = [
        "pruner",
        "epochs",
        "epochs vs none",
        "hv",
        "hv vs none",
        "pruned",
        "wrongly stopped",
    ]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for pruner, reps in results.items():
        mean = {k: float(np.mean([r[k] for r in reps])) for k in reps[0]}
        std = {k: float(np.std([r[k] for r in reps])) for k in reps[0]}
        ratio_e = mean["epochs"] / np.mean([r["epochs"] for r in base]) if base else math.nan
        ratio_h = mean["hv"] / np.mean([r["hv"] for r in base]) if base else math.nan
        cells = [pruner, f"{mean['epochs']:.0f} ± {std['epochs']:.0f}", f"{ratio_e:.2f}x",
                 f"{mean['hv']:.3f} ± {std['hv']:.3f}", f"{100 * ratio_h:.1f}%",
                 f"{mean['pruned']:.1f}", f"{100 * mean['wrong']:.1f}% of "
                 f"{mean['front_sampled']:.1f} sampled"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
