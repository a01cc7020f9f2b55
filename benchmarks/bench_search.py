"""Search efficiency of r3dnas's samplers on a tabular benchmark, through the real study code.

    python benchmarks/bench_search.py benchmarks/tables/bench_table.csv --reps 20 --trials 100

Each repetition is a real study (``r3dnas launch``'s pieces: ``prepare_study``, the objective
of the run loop, ``TrialRunner``, samplers, constraints, storage in a temporary journal file) in
tabular mode: trials read their measurements from the table instead of training. A study runs
until ``--trials`` networks are *trained*: a network the sampler proposes again is reused (no
training, as in a user's study) and does not count, so every sampler is compared at the same
training cost; how many trials each needed for that is printed too. The found front is scored
by the normalised hypervolume of the *architectures* it holds, each at its mean top-1 over the
table's seeds (so seed luck in the row a trial read does not count), over the exact front of
the whole table: objectives top-1 up, GFLOPs and latency down (latency where the table has
it), each scaled to [0, 1] by the table's range, reference point the worst corner. Printed:
mean and std after 10, 25, 50 and 100 networks trained, and the trainings needed to reach 95%
of the exact hypervolume (mean over the repetitions that reached it). Writes
``--out``/curves_SAMPLER.npy and a plot (``search.png``).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.scores.tabular import BenchmarkTable  # noqa: E402
from studies.core.dominance import hypervolume  # noqa: E402

SAMPLERS = ("random", "tpe", "nsga2", "gp", "grid")
CHECKPOINTS = (10, 25, 50, 100)


def normalised_points(
    table: BenchmarkTable, objectives: tuple[str, ...]
) -> dict[str, list[float]]:
    """digest -> objectives as minimisation values scaled to [0, 1] by the table's range."""
    means = table.mean_top1()
    raw: dict[str, list[float]] = {}
    for row in table.rows:
        if row.digest in raw:
            continue
        values = {"top1": -means[row.digest], "gflops": row.gflops, "latency_ms": row.latency_ms}
        raw[row.digest] = [values[o] for o in objectives]
    columns = np.array(list(raw.values()))
    low, high = columns.min(0), columns.max(0)
    span = np.where(high > low, high - low, 1.0)
    return {d: list((np.array(v) - low) / span) for d, v in raw.items()}


def run_study(table_path: Path, sampler: str, seed: int, trials: int, objectives: tuple[str, ...],
              table_seed: int, attempts: int = 20) -> tuple[list[str], int]:  # fmt: skip
    """One tabular study until ``trials`` networks are trained (a network proposed again is
    reused, which trains nothing and does not count) or ``attempts`` x as many trials were
    tried: the digests trained, in trial order, and the trials the study used for them."""
    import optuna

    from search_space.errors import TrialFailure
    from studies.run.launch import prepare_study
    from studies.run.loop import is_completed, make_objective, quiet_optuna
    from studies.run.objective import TrialRunner
    from studies.study.spec import load_spec

    spec_path = table_path.with_suffix(".toml")
    overrides = [
        f"study.sampler={sampler!r}".replace("'", '"'),
        f"study.seed={seed}",
        f'study.table="{table_path.resolve()}"',
        f"train.seed={table_seed}",
        'study.pruner="none"',  # the samplers are compared, not a pruner the spec may name
        "study.objectives=[" + ", ".join(f'"{o}"' for o in objectives) + "]",
    ]
    spec = load_spec(spec_path, overrides=overrides)
    complete = optuna.trial.TrialState.COMPLETE
    budget = attempts * trials

    def stop_when_trained(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if len(study.get_trials(deepcopy=False, states=(complete,))) >= trials:
            study.stop()

    with tempfile.TemporaryDirectory() as folder, quiet_optuna():
        url = f"journal:///{folder}/search.log"  # NOTE: 5x faster than SQLite here
        study = prepare_study(spec, study_name="search", storage_url=url, n_trials=budget,
                              runs_dir=folder)  # fmt: skip
        objective = make_objective(study, TrialRunner(spec, runs_dir=folder), n_trials=budget)
        study.optimize(objective, n_trials=budget, catch=(TrialFailure,),
                       callbacks=[stop_when_trained])  # fmt: skip
        done = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        trained = [str(t.user_attrs["digest"]) for t in done if t.state == complete]
        return trained, sum(is_completed(t) for t in done)


def curve(digests: list[str], points: dict[str, list[float]], exact: float) -> list[float]:
    """Normalised hypervolume after each trial."""
    reference = [1.0] * len(next(iter(points.values())))
    seen: list[list[float]] = []
    out = []
    for digest in digests:
        seen.append(points[digest])
        out.append(hypervolume(seen, reference) / exact)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument(
        "--attempts",
        type=int,
        default=20,
        help="stop a study after this many times --trials trials (1: a user's "
        "study of --trials trials, reused ones included)",
    )
    parser.add_argument("--out", default="runs/bench_search")
    args = parser.parse_args()
    if args.attempts < 1 or args.trials < 1:
        parser.error(f"--trials and --attempts must be >= 1 (got {args.trials}, {args.attempts})")
    table_path = Path(args.table)
    table = BenchmarkTable.load(table_path)
    has_latency = all(not math.isnan(r.latency_ms) for r in table.rows)
    objectives = ("top1", "gflops", "latency_ms") if has_latency else ("top1", "gflops")
    points = normalised_points(table, objectives)
    exact = hypervolume(list(points.values()), [1.0] * len(objectives))
    print(f"table {table_path}: {len(points)} architectures, objectives {objectives}, "
          f"exact normalised hypervolume {exact:.4f}")  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = [k for k in CHECKPOINTS if k <= args.trials]
    rows = []
    for sampler in args.samplers.split(","):
        t0 = time.perf_counter()
        curves, trials_used = [], []
        for rep in range(args.reps):
            digests, used = run_study(table_path, sampler, rep, args.trials, objectives,
                                      table_seed=table.seeds[rep % len(table.seeds)],
                                      attempts=args.attempts)  # fmt: skip
            curves.append(curve(digests, points, exact))
            trials_used.append(used)
            print(f"\r{sampler}: {rep + 1}/{args.reps}", end="", file=sys.stderr)
        print(file=sys.stderr)
        elapsed = (time.perf_counter() - t0) / args.reps
        reached = [next((i + 1 for i, v in enumerate(c) if v >= 0.95), None) for c in curves]
        row = {"sampler": sampler, "s_per_study": elapsed}
        for k in checkpoints:
            at = [c[min(k, len(c)) - 1] for c in curves]
            row[f"hv@{k}"] = float(np.mean(at))
            row[f"hv@{k}_std"] = float(np.std(at))
        hits = [r for r in reached if r is not None]
        row["reached_95"] = f"{len(hits)}/{len(reached)}"
        row["trials_to_95"] = float(np.mean(hits)) if hits else math.nan
        row["trials_used"] = float(np.mean(trials_used))
        row["trained"] = float(np.mean([len(c) for c in curves]))
        rows.append(row)
        np.save(out / f"curves_{sampler}.npy", np.array([c + [c[-1]] * (args.trials - len(c))
                                                         for c in curves]))  # fmt: skip
    header = ["sampler"] + [f"hv@{k}" for k in checkpoints]
    header += ["trainings to 95%", f"trials for {args.trials} trainings", "s/study"]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        cells = [str(r["sampler"])]
        cells += [f"{r[f'hv@{k}']:.3f} ± {r[f'hv@{k}_std']:.3f}" for k in checkpoints]
        reached = "never" if math.isnan(r["trials_to_95"]) else f"{r['trials_to_95']:.0f}"
        cells += [f"{reached} ({r['reached_95']})",
                  f"{r['trials_used']:.0f} ({r['trained']:.0f} trained)",
                  f"{r['s_per_study']:.1f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    _plot(out, args.samplers.split(","), args.trials)
    return 0


def _plot(out: Path, samplers: list[str], trials: int) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a script, not a library: no caller's backend to keep
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(1, trials + 1)
    for sampler in samplers:
        curves = np.load(out / f"curves_{sampler}.npy")
        mean, std = curves.mean(0), curves.std(0)
        ax.plot(x, mean, label=sampler)
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("networks trained")
    ax.set_ylabel("normalised hypervolume")
    ax.axhline(0.95, color="grey", lw=0.5, ls="--")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "search.png", dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
