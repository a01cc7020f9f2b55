"""Early stopping live: a real study on the graded task with 2 workers, with and without pruning.

    python benchmarks/bench_live_pruning.py --trials 24 --workers 2

The tabular benchmark (``bench_early_stopping.py``) measures the pruner on stored curves; this
runs it as a user does: ``r3dnas launch bench_table`` (the table's own training recipe on the
``motion_events`` task), ``--workers 2`` local processes sharing one journal storage, objectives
top-1 and GFLOPs, the random sampler with one seed, once with ``[study] pruner = "none"`` and
once with ``"pareto"`` (or ``--pruners``), each until ``--trials`` trials are *complete* (the
study's own budget: a pruned trial does not count, so the pruned study looks at more
architectures). Printed per pruner: wall seconds, trials sampled / complete / pruned, training
epochs run, and the normalised hypervolume of the complete trials (their architectures' mean
top-1 over the table's seeds and GFLOPs, over the exact front of the whole table:
``bench_search.py``'s convention). Run it on a quiet machine: wall time is the point.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_search import normalised_points  # noqa: E402

from runners.scores.tabular import BenchmarkTable  # noqa: E402
from studies.core.dominance import hypervolume  # noqa: E402

OBJECTIVES = ("top1", "gflops")


def run_live(
    pruner: str, *, trials: int, workers: int, seed: int, folder: Path, extra: list[str]
) -> dict:
    """One real study through the CLI; its wall time and trials."""
    import optuna

    storage = f"journal:///{folder / f'live-{pruner}.log'}"
    command = [
        sys.executable, "-m", "studies.cli", "launch", "bench_table",
        "--study", f"live-{pruner}", "--storage", storage, "--runs-dir", str(folder),
        "--workers", str(workers), "--n-trials", str(trials), "--wandb", "disabled", "-q",
        "--set", f'study.pruner="{pruner}"', "--set", 'study.sampler="random"',
        "--set", f"study.seed={seed}",
        "--set", 'study.objectives=["top1:max", "gflops:min"]',
        *[arg for item in extra for arg in ("--set", item)],
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=Path(__file__).resolve().parents[1])
    wall = time.perf_counter() - start
    from studies.study.storage import open_storage

    study = optuna.load_study(study_name=f"live-{pruner}", storage=open_storage(storage))
    rows = []
    for t in study.trials:
        attrs = t.user_attrs
        if "digest" not in attrs or t.state.name not in ("COMPLETE", "PRUNED"):
            continue
        reused = attrs.get("state") == "reused"
        rows.append({"digest": attrs["digest"], "state": t.state.name.lower(),
                     "epochs": 0 if reused else len(attrs.get("history", ()))})  # fmt: skip
    return {"pruner": pruner, "wall_s": wall, "rows": rows}


def summarise(run: dict, points: dict[str, list[float]], exact: float) -> dict:
    rows = run["rows"]
    complete = {r["digest"] for r in rows if r["state"] == "complete"}
    hv = hypervolume([points[d] for d in complete if d in points], [1.0, 1.0]) / exact
    return {
        "pruner": run["pruner"],
        "wall_s": round(run["wall_s"], 1),
        "sampled": len(rows),
        "complete": sum(r["state"] == "complete" for r in rows),
        "pruned": sum(r["state"] == "pruned" for r in rows),
        "epochs": sum(int(r["epochs"]) for r in rows),
        "hv": round(hv, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="benchmarks/tables/bench_table.csv",
                        help="the table that scores the fronts (its exact front)")  # fmt: skip
    parser.add_argument("--trials", type=int, default=24, help="complete trials per study")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    parser.add_argument("--pruners", default="none,pareto", help="comma list")
    parser.add_argument("--out", help="also write the summary rows here (JSON)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="more spec overrides for both studies (e.g. a shorter smoke run)",
    )
    args = parser.parse_args(argv)

    table = BenchmarkTable.load(args.table)
    points = normalised_points(table, OBJECTIVES)
    exact = hypervolume(list(points.values()), [1.0, 1.0])
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for pruner in [p.strip() for p in args.pruners.split(",") if p.strip()]:
            run = run_live(pruner, trials=args.trials, workers=args.workers, seed=args.seed,
                           folder=Path(folder), extra=args.set)  # fmt: skip
            results.append(summarise(run, points, exact))
            print(json.dumps(results[-1]), flush=True)
    print("\n| pruner | wall s | sampled | complete | pruned | epochs | normalised HV |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['pruner']} | {r['wall_s']} | {r['sampled']} | {r['complete']} | "
              f"{r['pruned']} | {r['epochs']} | {r['hv']:.3f} |")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
