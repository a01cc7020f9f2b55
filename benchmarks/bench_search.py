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
mean, std and 95% interval of the mean (Student t) after 10, 25, 50 and 100 networks
trained, the share of the exact front's networks found after 25, 50 and 100, and the trainings
needed to reach 95% of the exact hypervolume (mean over the repetitions that reached it).
Writes ``--out``/curves_SAMPLER.npy, ``--out``/summary.json and a plot (``search.png``).

Samplers: the spec's (``random``, ``tpe`` as shipped, ``nsga2``, ``gp``, ``grid``,
``cost_aware``), and for comparison ``tpe_default`` (Optuna's ``TPESampler(seed=...)``),
``gp_distinct`` (Optuna's GP inside :class:`studies.sampling.DistinctNetworks`), ``botorch``
(optuna-integration's ``BoTorchSampler``, qLogNEHVI, every objective a black box) and
``cost_aware_nolat`` (``cost_aware`` blind to the table's latency until trials measure it, as
in a study without a latency source) and ``oracle`` (the exact front's networks first,
largest hypervolume gain first: the ceiling; no study is run).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.scores.tabular import BenchmarkTable  # noqa: E402
from studies.core.dominance import hypervolume, non_dominated  # noqa: E402

SPEC_SAMPLERS = ("random", "tpe", "nsga2", "gp", "grid", "cost_aware")
EXTRA_SAMPLERS = ("tpe_default", "gp_distinct", "botorch", "cost_aware_nolat", "oracle")
SAMPLERS = ("cost_aware", "random", "tpe", "tpe_default", "gp_distinct", "nsga2", "botorch",
            "oracle")  # fmt: skip
CHECKPOINTS = (10, 25, 50, 100)
SHARE_AT = (25, 50, 100)


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
    from studies.run.budget import is_completed
    from studies.run.launch import prepare_study
    from studies.run.loop import make_objective, quiet_optuna
    from studies.run.objective import TrialRunner
    from studies.study.spec import load_spec

    spec_path = table_path.with_suffix(".toml")
    in_spec = sampler if sampler in SPEC_SAMPLERS else "random"
    overrides = [
        f"study.sampler={in_spec!r}".replace("'", '"'),
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
        if sampler not in SPEC_SAMPLERS:
            study.sampler = _extra_sampler(sampler, spec)
        objective = make_objective(study, TrialRunner(spec, runs_dir=folder), n_trials=budget)
        study.optimize(objective, n_trials=budget, catch=(TrialFailure,),
                       callbacks=[stop_when_trained])  # fmt: skip
        done = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        trained = [str(t.user_attrs["digest"]) for t in done if t.state == complete]
        return trained, sum(is_completed(t) for t in done)


def _extra_sampler(name: str, spec: Any) -> Any:
    """The comparison samplers that no spec names (see the module docstring)."""
    import warnings

    import optuna

    from studies.sampling import DistinctNetworks

    seed = spec.study.seed
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    if name == "tpe_default":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "gp_distinct":
        inner = optuna.samplers.GPSampler(seed=seed, n_startup_trials=spec.study.n_startup_trials)
        return DistinctNetworks(inner, spec)
    if name == "cost_aware_nolat":
        from studies.sampling import CostAwareSampler

        return CostAwareSampler(spec, use_latency=False)
    if name == "botorch":
        from optuna_integration import BoTorchSampler

        return BoTorchSampler(seed=seed, n_startup_trials=spec.study.n_startup_trials)
    raise ValueError(f"unknown sampler {name!r}")  # pragma: no cover - checked in main()


def oracle_order(points: dict[str, list[float]]) -> list[str]:
    """The exact front's networks, each next the one adding the most hypervolume; then the
    rest (they add nothing)."""
    reference = [1.0] * len(next(iter(points.values())))
    digests = list(points)
    front = [digests[i] for i in non_dominated([points[d] for d in digests])]
    order: list[str] = []
    while front:
        seen = [points[d] for d in order]
        best = max(front, key=lambda d: hypervolume([*seen, points[d]], reference))
        order.append(best)
        front.remove(best)
    return order + [d for d in digests if d not in order]


def front_share(digests: list[str], front: set[str], k: int) -> float:
    """Share of the exact front's networks among the first ``k`` trained."""
    return len(front & set(digests[:k])) / len(front)


def interval(values: list[float]) -> float:
    """Half-width of the 95% interval of the mean (Student t)."""
    from scipy.stats import t

    if len(values) < 2:
        return math.nan
    return float(t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)))


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
    parser.add_argument("--report", action="store_true",
                        help="print the tables from --out's saved runs; run nothing")  # fmt: skip
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
    samplers = args.samplers.split(",")
    unknown = [name for name in samplers if name not in SPEC_SAMPLERS + EXTRA_SAMPLERS]
    if unknown:
        parser.error(f"--samplers: unknown {', '.join(unknown)}; choose from "
                     f"{', '.join(SPEC_SAMPLERS + EXTRA_SAMPLERS)}")  # fmt: skip
    missing = [name for name in samplers if not (out / f"runs_{name}.json").is_file()]
    if args.report and missing:
        parser.error(f"--report: {out} has no saved runs of {', '.join(missing)}")
    for sampler in samplers:
        if args.report:
            continue
        _run_sampler(sampler, args, table, table_path, objectives, points, out)
    front = {d for i, d in enumerate(points) if i in set(non_dominated(list(points.values())))}
    rows = [_summarise(sampler, out, points, exact, front, args.trials) for sampler in samplers]
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    _print_tables(rows, args.trials, len(front))
    _plot(out, samplers, args.trials)
    return 0


def _run_sampler(sampler: str, args: argparse.Namespace, table: BenchmarkTable,
                 table_path: Path, objectives: tuple[str, ...], points: dict[str, list[float]],
                 out: Path) -> None:  # fmt: skip
    """Run ``--reps`` studies of ``sampler``; save the networks each trained, in order."""
    t0 = time.perf_counter()
    runs = []
    for rep in range(args.reps):
        if sampler == "oracle":
            digests, used = oracle_order(points)[: args.trials], args.trials
        else:
            digests, used = run_study(table_path, sampler, rep, args.trials, objectives,
                                      table_seed=table.full_seeds[rep % len(table.full_seeds)],
                                      attempts=args.attempts)  # fmt: skip
        runs.append({"digests": digests, "trials": used})
        print(f"\r{sampler}: {rep + 1}/{args.reps}", end="", file=sys.stderr)
    print(file=sys.stderr)
    record = {"s_per_study": (time.perf_counter() - t0) / args.reps, "runs": runs}
    (out / f"runs_{sampler}.json").write_text(json.dumps(record))


def _summarise(sampler: str, out: Path, points: dict[str, list[float]], exact: float,
               front: set[str], trials: int) -> dict[str, Any]:  # fmt: skip
    """The numbers of one sampler's saved runs (and its curves as .npy for the plot)."""
    record = json.loads((out / f"runs_{sampler}.json").read_text())
    runs = record["runs"]
    # NOTE: runs of a longer study are read up to ``trials`` (one report over several runs)
    curves = [curve(r["digests"][:trials], points, exact) for r in runs]
    np.save(out / f"curves_{sampler}.npy", np.array([c + [c[-1]] * (trials - len(c))
                                                     for c in curves]))  # fmt: skip
    reached = [next((i + 1 for i, v in enumerate(c) if v >= 0.95), None) for c in curves]
    row: dict[str, Any] = {"sampler": sampler, "reps": len(runs),
                           "s_per_study": record["s_per_study"]}  # fmt: skip
    for k in (k for k in CHECKPOINTS if k <= trials):
        at = [c[min(k, len(c)) - 1] for c in curves]
        row[f"hv@{k}"], row[f"hv@{k}_std"] = float(np.mean(at)), float(np.std(at))
        row[f"hv@{k}_ci"] = interval(at)
    for k in (k for k in SHARE_AT if k <= trials):
        shares = [front_share(r["digests"], front, k) for r in runs]
        row[f"front@{k}"], row[f"front@{k}_ci"] = float(np.mean(shares)), interval(shares)
    hits = [r for r in reached if r is not None]
    row["reached_95"] = f"{len(hits)}/{len(reached)}"
    row["trials_to_95"] = float(np.mean(hits)) if hits else math.nan
    row["trials_used"] = float(np.mean([r["trials"] for r in runs]))
    row["trained"] = float(np.mean([len(c) for c in curves]))
    return row


def _print_tables(rows: list[dict[str, Any]], trials: int, front_size: int) -> None:
    checkpoints = [k for k in CHECKPOINTS if k <= trials]
    header = ["sampler", "reps"] + [f"hv@{k}" for k in checkpoints]
    header += ["trainings to 95%", f"trials for {trials} trainings", "s/study"]
    print("\nnormalised hypervolume, mean ± 95% interval of the mean (std in summary.json)")
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        cells = [str(r["sampler"]), str(r["reps"])]
        cells += [f"{r[f'hv@{k}']:.3f} ± {r[f'hv@{k}_ci']:.3f}" for k in checkpoints]
        reached = "never" if math.isnan(r["trials_to_95"]) else f"{r['trials_to_95']:.0f}"
        cells += [f"{reached} ({r['reached_95']})",
                  f"{r['trials_used']:.0f} ({r['trained']:.0f} trained)",
                  f"{r['s_per_study']:.1f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    shares = [k for k in SHARE_AT if k <= trials]
    if not shares:
        return
    print(f"\nshare of the exact front's {front_size} networks found, mean ± 95% interval")
    header = ["sampler"] + [f"front@{k}" for k in shares]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        cells = [str(r["sampler"])] + [f"{r[f'front@{k}']:.2f} ± {r[f'front@{k}_ci']:.2f}"
                                       for k in shares]  # fmt: skip
        print("| " + " | ".join(cells) + " |")


def _plot(out: Path, samplers: list[str], trials: int) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a script, not a library: no caller's backend to keep
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(1, trials + 1)
    for sampler in samplers:
        curves = np.load(out / f"curves_{sampler}.npy")
        mean = curves.mean(0)
        half = np.array([interval(list(column)) for column in curves.T]) if len(curves) > 1 \
            else np.zeros_like(mean)  # fmt: skip
        ax.plot(x, mean, label=sampler)
        ax.fill_between(x, mean - half, mean + half, alpha=0.15)
    ax.set_xlabel("networks trained")
    ax.set_ylabel("normalised hypervolume (mean, 95% interval)")
    ax.axhline(0.95, color="grey", lw=0.5, ls="--")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "search.png", dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
