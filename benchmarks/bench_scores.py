"""Do training-free scores rank the benchmark's architectures, and does guiding search by them pay?

    python benchmarks/bench_scores.py --table bench_table.csv --scores scores.csv

``--scores`` is a CSV that ``r3dnas score SPEC --out scores.csv`` writes (every architecture
of the table's space; repeat the option to merge files of different scores); without it the
scores of the table's architectures are computed here (``--spec``'s batch and seed, one
thread; about 0.6 s per network). Exit 1 when fewer than 10 table architectures have scores.

1. **Ranking** (issue #13): Spearman and Kendall tau-b of every score, and of the baselines
   params and GFLOPs, against mean top-1 over all architectures of the table, each with a
   bootstrap 95% CI (architectures resampled). A *combination* (least squares of top-1 rank on
   the normalised ranks of every score, params and GFLOPs) is fitted on a random half of the
   architectures and reported on the other half only (and the halves swapped).
2. **Search**: score-guided picks (:func:`studies.benchmark.score.guided_picks`: draw ``pool``
   untried architectures, train one on their (score max, GFLOPs min) front) against plain
   random sampling (pool 1) over the same table, ``--reps`` repetitions (seeds of the picks).
   Normalised hypervolume after 25 and 50 trained trials, with ``bench_search.py``'s
   convention: each picked architecture at its mean top-1 over the table's seeds (a lookup by
   digest), objectives top-1 up, GFLOPs down (and latency_ms down when every row has one),
   each scaled to [0, 1] by the table's range, reference point the worst corner; the picks'
   hypervolume over that of the whole table. Each pick list is run as a real tabular study
   (the picks enqueued, as ``studies.benchmark.score.enqueue_guided`` does; ``--lookup`` reads the
   table directly instead, same numbers). Each guide also runs "score only": the best
   score of the pool, costs ignored. The control
   "costs only" uses the same pools with a constant score: the cost front alone already
   favours cheap networks, so a score has helped only where it beats that control too.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.scores.tabular import BenchmarkTable  # noqa: E402
from studies.benchmark.score import guided_picks  # noqa: E402
from studies.core.dominance import hypervolume  # noqa: E402

BASELINES = ("params", "gflops")
MIN_ARCHITECTURES = 10


def load_scores(path: Path) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Score names and ``digest -> {score: value}`` from ``r3dnas score --out``'s CSV (the
    values also hold the row's ``params``, ``gflops`` and ``seconds``)."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or ())
        names = fields[fields.index("seconds") + 1 : fields.index("config")]
        extra = ("params", "gflops", "seconds")
        return names, {r["digest"]: {n: float(r[n]) for n in (*names, *extra)} for r in reader}


def space_summary(names: list[str], scores: dict[str, dict[str, float]]) -> None:
    """Without the table: how each score relates to size, and to the other scores."""
    digests = sorted(scores)
    cols = {n: _finite(np.array([scores[d][n] for d in digests])) for n in names}
    seconds = np.array([scores[d].get("seconds", math.nan) for d in digests])
    print(f"## The scores over {len(digests)} architectures of the space (no training)\n")
    print(f"all scores of one network: {np.nanmean(seconds):.2f} s on average, "
          f"{np.nanmax(seconds):.2f} s at most (one thread)\n")  # fmt: skip
    print("| score | Spearman with params | with GFLOPs | " + " | ".join(names) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in names) + " |")
    for n in names:
        size = [stats.spearmanr(cols[n], [scores[d][c] for d in digests]).statistic
                for c in ("params", "gflops")]  # fmt: skip
        others = [stats.spearmanr(cols[n], cols[m]).statistic for m in names]
        print(f"| {n} | {size[0]:.3f} | {size[1]:.3f} | "
              + " | ".join(f"{v:.2f}" for v in others) + " |")  # fmt: skip
    print()


def compute_scores(table: BenchmarkTable, spec_name: str) -> tuple[list[str], dict]:
    """Score the table's architectures here (the spec's batch and seed)."""
    import torch

    from runners.scores.training_free import SCORES, build_scoring_model
    from search_space.config import ResNet3dConfig
    from studies.benchmark.score import score_batch
    from studies.study.spec import load_spec

    torch.set_num_threads(1)
    spec = load_spec(spec_name)
    batch = score_batch(spec)
    configs = {}
    for row in table.rows:
        configs.setdefault(row.digest, row.config)
    out = {}
    for i, (digest, config) in enumerate(sorted(configs.items())):
        model = build_scoring_model(
            ResNet3dConfig.from_dict(config), num_classes=spec.data.num_classes,
            seed=spec.train.seed,
        )  # fmt: skip
        out[digest] = {name: fn(model, batch) for name, fn in SCORES.items()}
        print(f"\rscored {i + 1}/{len(configs)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return list(SCORES), out


def _finite(values: np.ndarray) -> np.ndarray:
    """-inf (a singular NASWOT kernel) becomes below every finite value, for ranking."""
    finite = values[np.isfinite(values)]
    low = finite.min() - 1.0 if finite.size else 0.0
    return np.where(np.isfinite(values), values, low)


def correlations(
    x: np.ndarray, y: np.ndarray, *, n_boot: int, rng: np.random.Generator
) -> dict[str, float]:
    """Spearman and Kendall tau-b with percentile bootstrap 95% CIs."""
    x = _finite(x)
    rho = stats.spearmanr(x, y).statistic
    tau = stats.kendalltau(x, y).statistic
    rhos, taus = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        rhos.append(stats.spearmanr(x[idx], y[idx]).statistic)
        taus.append(stats.kendalltau(x[idx], y[idx]).statistic)
    r_lo, r_hi = np.nanpercentile(rhos, [2.5, 97.5])
    t_lo, t_hi = np.nanpercentile(taus, [2.5, 97.5])
    return {"rho": rho, "rho_lo": r_lo, "rho_hi": r_hi, "tau": tau, "tau_lo": t_lo, "tau_hi": t_hi}


def _norm_ranks(values: np.ndarray) -> np.ndarray:
    return (stats.rankdata(_finite(values)) - 1) / max(len(values) - 1, 1)


def combination(
    features: dict[str, np.ndarray], y: np.ndarray, *, n_boot: int, seed: int
) -> list[dict[str, object]]:
    """Fit on one random half, report Spearman on the other (both ways)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    halves = (order[: len(y) // 2], order[len(y) // 2 :])
    names = list(features)
    results = []
    for fit, test in (halves, halves[::-1]):

        def design(idx: np.ndarray) -> np.ndarray:
            cols = [_norm_ranks(features[n][idx]) for n in names]
            return np.column_stack([*cols, np.ones(len(idx))])

        coef, *_ = np.linalg.lstsq(design(fit), _norm_ranks(y[fit]), rcond=None)
        predicted = design(test) @ coef
        result = correlations(predicted, y[test], n_boot=n_boot, rng=rng)
        weights = ", ".join(f"{n} {c:+.2f}" for n, c in zip(names, coef, strict=False))
        results.append({"fit": len(fit), "test": len(test), "weights": weights, **result})
    return results


def run_enqueued(table_path: Path, factors: list[dict[str, object]], seed: int) -> list[str]:
    """Train ``factors`` in order in a tabular study (``r3dnas launch``'s code, the table's
    spec): the picks enqueued as its trials, as :func:`studies.benchmark.score.enqueue_guided` does
    for a user. Returns the digests of its complete trials in trial order."""
    import tempfile

    import optuna

    from studies.run.launch import launch, prepare_study
    from studies.study.spec import load_spec
    from studies.study.storage import open_storage

    overrides = [f"study.n_trials={len(factors)}", f'study.table="{table_path.resolve()}"',
                 f"train.seed={seed}", 'study.sampler="random"']  # fmt: skip
    spec = load_spec(table_path.with_suffix(".toml"), overrides=overrides)
    with tempfile.TemporaryDirectory() as folder:
        url = f"journal:///{folder}/guided.log"
        study = prepare_study(spec, study_name="guided", storage_url=url,
                              n_trials=len(factors), runs_dir=folder)  # fmt: skip
        for params in factors:
            study.enqueue_trial(params, skip_if_exists=False)
        launch(spec, storage=url, study_name="guided", wandb_mode="disabled", progress=False,
               runs_dir=folder, print_pareto=False)  # fmt: skip
        done = optuna.load_study(study_name="guided", storage=open_storage(url)).get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
        )
        return [str(t.user_attrs["digest"]) for t in sorted(done, key=lambda t: t.number)]


def search(
    table: BenchmarkTable,
    digests: list[str],
    guides: dict[str, dict[str, float]],
    *,
    pools: list[int],
    reps: int,
    budgets: tuple[int, ...] = (25, 50),
    table_path: Path | None = None,
) -> tuple[list[dict[str, object]], list[str]]:
    """Normalised hypervolume of guided and random picks, per guide, pool and budget.

    With ``table_path`` (the default of the script) every pick list is trained by a tabular
    study (:func:`run_enqueued`) and scored by what that study completed; without it, by
    looking the picks up in the table (the same numbers, faster)."""
    first = {}
    for row in table.rows:
        first.setdefault(row.digest, row)
    with_latency = all(math.isfinite(first[d].latency_ms) for d in digests)
    objectives = ["top1:max", "gflops:min"] + (["latency_ms:min"] if with_latency else [])
    means = table.mean_top1()
    raw = np.array(
        [[-means[d], first[d].gflops, *([first[d].latency_ms] if with_latency else [])]
         for d in digests]
    )  # fmt: skip
    low, high = raw.min(axis=0), raw.max(axis=0)
    scaled = (raw - low) / np.where(high > low, high - low, 1.0)
    points = {d: scaled[i].tolist() for i, d in enumerate(digests)}
    ref = [1.0] * raw.shape[1]
    full = hypervolume(scaled.tolist(), ref)
    results: dict[tuple[str, int], dict[int, list[float]]] = {}
    for rep in range(reps):
        costs = {d: points[d][1:] for d in digests}  # known without training
        flat = {d: 0.0 for d in digests}
        # NOTE: "costs only" (a constant score) is the control: with pool > 1 the cost front
        # alone already favours cheap networks; a score helps only if it beats that.
        methods = [("random", 1, flat, True)]
        methods += [("costs only", pool, flat, True) for pool in pools]
        for name, guide in guides.items():
            for pool in pools:
                methods += [
                    (name, pool, guide, True),
                    (f"{name} (score only)", pool, guide, False),
                ]
        for name, pool, guide, with_costs in methods:
            picks = guided_picks(
                digests, score=guide, costs=costs if with_costs else None, n=max(budgets),
                pool=pool, seed=10_000 + rep,
            )  # fmt: skip
            if table_path is not None:
                seed = table.full_seeds[rep % len(table.full_seeds)]
                picks = run_enqueued(table_path, [first[d].factors for d in picks], seed)
            per_budget = results.setdefault((name, pool), {b: [] for b in budgets})
            for b in budgets:
                per_budget[b].append(hypervolume([points[d] for d in picks[:b]], ref) / full)
    rows = []
    random_hv = results[("random", 1)]
    for (name, pool), per_budget in results.items():
        row: dict[str, object] = {"guide": name, "pool": pool}
        for b in budgets:
            values = np.array(per_budget[b])
            base = np.array(random_hv[b])
            diff = values - base
            half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
            row[f"hv{b}"] = values.mean()
            row[f"hv{b}_sd"] = values.std(ddof=1)
            row[f"diff{b}"] = diff.mean()
            row[f"diff{b}_ci"] = half
            row[f"wins{b}"] = int((diff > 0).sum())
        rows.append(row)
    return rows, objectives


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="benchmark table CSV")
    parser.add_argument(
        "--scores", action="append", help="r3dnas score --out CSV (repeat; default: compute)"
    )
    parser.add_argument("--spec", default="bench_table", help="spec for computing scores")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--reps", type=int, default=20, help="search repetitions (20)")
    parser.add_argument("--pools", default="8", help="guided pool sizes (comma list; 8)")
    parser.add_argument("--budgets", default="25,50", help="trained trials (comma list)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lookup",
        action="store_true",
        help="look the picks up in the table instead of running tabular studies",
    )
    args = parser.parse_args()

    table = BenchmarkTable.load(args.table)
    if args.scores:
        names, scores = [], {}
        for path in args.scores:
            more, values = load_scores(Path(path))
            names += [n for n in more if n not in names]
            for digest, row in values.items():
                merged = scores.setdefault(digest, {})
                seconds = merged.get("seconds", 0.0) + row["seconds"]  # files add up
                merged.update(row, seconds=seconds)
        scores = {d: row for d, row in scores.items() if all(n in row for n in names)}
        space_summary(names, scores)
    else:
        names, scores = compute_scores(table, args.spec)
    means = table.mean_top1()
    digests = sorted(d for d in means if d in scores)
    if len(digests) < len(means):
        print(f"note: {len(means) - len(digests)} table architectures have no score",
              file=sys.stderr)  # fmt: skip
    if len(digests) < MIN_ARCHITECTURES:
        print(f"bench_scores: only {len(digests)} scored architectures in {args.table}; "
              f"need at least {MIN_ARCHITECTURES}", file=sys.stderr)  # fmt: skip
        return 1
    first = {}
    for row in table.rows:
        first.setdefault(row.digest, row)
    y = np.array([means[d] for d in digests])
    features = {n: np.array([scores[d][n] for d in digests]) for n in names}
    features["params"] = np.array([first[d].params for d in digests])
    features["gflops"] = np.array([first[d].gflops for d in digests])
    rng = np.random.default_rng(args.seed)
    seeds_per_arch = len(table) / max(len(means), 1)
    print(f"## Scores against mean top-1: {len(digests)} architectures "
          f"({len(table)} rows, {seeds_per_arch:.2f} seeds per architecture), "
          f"{args.bootstrap} bootstrap resamples\n")  # fmt: skip
    print("| score | Spearman [95% CI] | Kendall tau [95% CI] | Spearman with GFLOPs |")
    print("| --- | --- | --- | --- |")
    corr = {}
    for name in [*names, *BASELINES]:
        c = correlations(features[name], y, n_boot=args.bootstrap, rng=rng)
        corr[name] = c
        label = f"{name} (baseline)" if name in BASELINES else name
        size = stats.spearmanr(_finite(features[name]), features["gflops"]).statistic
        print(f"| {label} | {c['rho']:.3f} [{c['rho_lo']:.3f}, {c['rho_hi']:.3f}] | "
              f"{c['tau']:.3f} [{c['tau_lo']:.3f}, {c['tau_hi']:.3f}] | {size:.3f} |")  # fmt: skip
    if len(y) // 2 < len(features) + 2:
        print(f"| combination: skipped, {len(y) // 2} architectures per half for "
              f"{len(features)} weights | | | |")  # fmt: skip
    for c in combination(features, y, n_boot=args.bootstrap, seed=args.seed)[
        : 2 if len(y) // 2 >= len(features) + 2 else 0
    ]:
        print(f"| combination, fit on {c['fit']} / reported on {c['test']} | {c['rho']:.3f} "
              f"[{c['rho_lo']:.3f}, {c['rho_hi']:.3f}] | {c['tau']:.3f} "
              f"[{c['tau_lo']:.3f}, {c['tau_hi']:.3f}] | |")  # fmt: skip
        print(f"|  (weights on normalised ranks: {c['weights']}) | | | |")
    best_base = max(corr["params"]["rho"], corr["gflops"]["rho"])
    best = max(names, key=lambda n: corr[n]["rho"])
    print(f"\nbest score {best}: Spearman {corr[best]['rho']:.3f} (target >= 0.6 and >= "
          f"{best_base + 0.1:.3f}, the better baseline + 0.1)\n")  # fmt: skip

    pools = [int(p) for p in args.pools.split(",")]
    guides = {n: {d: float(_finite(features[n])[i]) for i, d in enumerate(digests)}
              for n in [*names, "params"]}  # fmt: skip
    budgets = tuple(int(b) for b in args.budgets.split(","))
    rows, objectives = search(table, digests, guides, pools=pools, reps=args.reps, budgets=budgets,
                              table_path=None if args.lookup else Path(args.table))  # fmt: skip
    if len(digests) <= max(budgets):
        print(f"note: {len(digests)} architectures: {max(budgets)} trials see every one\n")
    print(f"## Guided vs random search over the table: {len(digests)} architectures, "
          f"{args.reps} repetitions, objectives {', '.join(objectives)}\n")  # fmt: skip
    header = ["guide", "pool"]
    for b in budgets:
        header += [f"HV@{b} mean (sd)", "minus random [95% CI]", "wins"]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for r in rows:
        cells = [str(r["guide"]), str(r["pool"])]
        for b in budgets:
            cells += [f"{r[f'hv{b}']:.3f} ({r[f'hv{b}_sd']:.3f})",
                      f"{r[f'diff{b}']:+.3f} ± {r[f'diff{b}_ci']:.3f}",
                      f"{r[f'wins{b}']}/{args.reps}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
