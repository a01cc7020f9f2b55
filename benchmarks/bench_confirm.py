"""How often the reported front's networks are truly on the front, with and without
``[study] confirm_seeds``, on a tabular benchmark with two seeds per network.

    python benchmarks/bench_confirm.py benchmarks/tables/bench_table.csv --reps 20 --trials 25,50

Each repetition is a real tabular study (``r3dnas launch``'s pieces: ``prepare_study``, the run
loop, ``TrialRunner`` reading the table, the shipped TPE sampler, a journal file) of
``--trials`` trainings with ``[train] seed = 0``, then its confirmation rounds with
``confirm_seeds = 1`` (the table's seed 1). The front is read twice from the same study with
``studies.pareto``: right after the budget ("without": one seed per network) and after the
confirmation ("with": confirmed networks at their mean over seeds 0 and 1). The truth is each
network's mean over the table's seeds. Printed per budget, mean ± std over repetitions:

* precision (table): the share of the reported front's networks that are on the mean front of
  the whole table;
* precision (trained): the share that are on the mean front of the networks the study trained
  (what noise alone gets wrong: the search found the same networks either way);
* recall (trained): the share of that front the reported front holds;
* extra trainings: confirmation trials run;
* a control: the same sampler and seed given the extra trainings as more search
  (``--trials`` + extra, no confirmation), its precision (table).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.scores.tabular import BenchmarkTable  # noqa: E402
from studies.core.dominance import non_dominated  # noqa: E402


def mean_points(table: BenchmarkTable, objectives: tuple[str, ...]) -> dict[str, list[float]]:
    """digest -> its objectives (minimised) at the mean over the table's seeds."""
    sums: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    sign = {"top1": -1.0, "gflops": 1.0, "latency_ms": 1.0}
    for row in table.rows:
        values = {"top1": row.top1, "gflops": row.gflops, "latency_ms": row.latency_ms}
        point = [sign[o] * values[o] for o in objectives]
        if row.digest in sums:
            sums[row.digest] = [a + b for a, b in zip(sums[row.digest], point, strict=True)]
        else:
            sums[row.digest] = point
        counts[row.digest] = counts.get(row.digest, 0) + 1
    return {d: [v / counts[d] for v in s] for d, s in sums.items()}


def front_of(points: dict[str, list[float]], digests: set[str] | None = None) -> set[str]:
    chosen = sorted(points if digests is None else digests)
    ids = non_dominated([points[d] for d in chosen])
    return {chosen[i] for i in ids}


def run_study(table_path: Path, seed: int, trials: int, objectives: tuple[str, ...],
              confirm: bool) -> dict[str, object]:  # fmt: skip
    """One tabular study: the fronts before and after confirmation, the networks trained."""
    from optuna.trial import TrialState

    from studies.results.pareto import pareto
    from studies.run.confirm import confirm_networks
    from studies.run.launch import prepare_study
    from studies.run.loop import quiet_optuna, run_local
    from studies.run.objective import TrialRunner
    from studies.run.run_study import RunOutcome
    from studies.study.spec import load_spec
    from studies.study.storage import storage_settings

    overrides = [
        'study.sampler="tpe"',
        f"study.seed={seed}",
        f'study.table="{table_path.resolve()}"',
        "train.seed=0",
        'study.pruner="none"',
        f"study.confirm_seeds={1 if confirm else 0}",
        "study.objectives=[" + ", ".join(f'"{o}"' for o in objectives) + "]",
    ]
    spec = load_spec(table_path.with_suffix(".toml"), overrides=overrides)
    with tempfile.TemporaryDirectory() as folder, quiet_optuna():
        url = f"journal:///{folder}/confirm.log"
        study = prepare_study(spec, study_name="confirm", storage_url=url, n_trials=trials,
                              runs_dir=folder)  # fmt: skip
        runner = TrialRunner(spec, runs_dir=folder)

        settings = storage_settings()

        def run(n: int) -> RunOutcome:
            return RunOutcome(stopped=run_local(study, runner, n_trials=n, timeout_s=None,
                                                settings=settings, progress=False,
                                                label="confirm"))  # fmt: skip

        searched = run(trials)
        before = set(pareto(study)["digest"])
        if confirm:
            confirm_networks(study, spec, n_trials=trials, run=run, searched=searched)
        after = set(pareto(study)["digest"])
        every = study.get_trials(deepcopy=False)
        complete = [t for t in every if t.state == TrialState.COMPLETE]
        search = [t for t in complete if "confirm_of" not in t.user_attrs]
        trained = {str(t.user_attrs["digest"]) for t in search}
        extra = len(complete) - len(search)
    return {"before": before, "after": after, "trained": trained, "extra": extra}


def _share(part: set[str], whole: set[str]) -> float:
    return len(part & whole) / len(part) if part else math.nan


def _fmt(values: list[float]) -> str:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return "-"
    spread = statistics.stdev(clean) if len(clean) > 1 else 0.0
    return f"{statistics.fmean(clean):.3f} ± {spread:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--trials", default="25,50")
    parser.add_argument("--no-control", action="store_true", help="skip the more-search control")
    args = parser.parse_args()
    budgets = [int(b) for b in args.trials.split(",")]
    if args.reps < 1 or min(budgets) < 1:
        parser.error(f"--reps and --trials must be >= 1 (got {args.reps}, {args.trials})")
    table_path = Path(args.table)
    table = BenchmarkTable.load(table_path)
    if len(table.seeds) < 2:
        parser.error(f"{table_path} has seeds {list(table.seeds)}; confirmation needs two")
    has_latency = all(not math.isnan(r.latency_ms) for r in table.rows)
    objectives = ("top1", "gflops", "latency_ms") if has_latency else ("top1", "gflops")
    points = mean_points(table, objectives)
    true_front = front_of(points)
    print(f"table {table_path}: {len(points)} networks, seeds {list(table.seeds)}, objectives "
          f"{objectives}; mean front {len(true_front)} networks; sampler tpe, "
          f"{args.reps} repetitions")  # fmt: skip
    print("| trainings | front | precision (table) | precision (trained) | recall (trained) "
          "| front size | extra trainings | wall s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for budget in budgets:
        rows: dict[str, dict[str, list[float]]] = {"without": {}, "with": {}, "more search": {}}
        t0 = time.perf_counter()
        for rep in range(args.reps):
            result = run_study(table_path, rep, budget, objectives, confirm=True)
            trained = result["trained"]
            assert isinstance(trained, set)
            truth = front_of(points, trained)
            extra = int(result["extra"])  # type: ignore[call-overload]
            for label, front in (("without", result["before"]), ("with", result["after"])):
                assert isinstance(front, set)
                stats = rows[label]
                stats.setdefault("table", []).append(_share(front, true_front))
                stats.setdefault("trained", []).append(_share(front, truth))
                stats.setdefault("recall", []).append(len(front & truth) / len(truth))
                stats.setdefault("size", []).append(float(len(front)))
                stats.setdefault("extra", []).append(float(extra if label == "with" else 0))
            if not args.no_control:
                control = run_study(table_path, rep, budget + extra, objectives, confirm=False)
                front = control["before"]
                assert isinstance(front, set)
                stats = rows["more search"]
                stats.setdefault("table", []).append(_share(front, true_front))
                stats.setdefault("size", []).append(float(len(front)))
                stats.setdefault("extra", []).append(float(extra))
        wall = time.perf_counter() - t0
        for label, stats in rows.items():
            if not stats:
                continue
            print(f"| {budget} | {label} | {_fmt(stats['table'])} | "
                  f"{_fmt(stats.get('trained', [math.nan]))} | "
                  f"{_fmt(stats.get('recall', [math.nan]))} | {_fmt(stats['size'])} | "
                  f"{_fmt(stats['extra'])} | {wall:.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
