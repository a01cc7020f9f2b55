"""Is a benchmark table good ground truth? Prints the quality numbers of issues #11 and #23.

    python benchmarks/bench_table_quality.py benchmarks/tables/bench_v2.csv --plot v2.png

* not saturated: the best architecture's mean top-1 (target <= 95%);
* graded, not split: the span of mean top-1 over architectures (target >= 30 points) and the
  largest gap between neighbours sorted by mean top-1 (target <= 5 points);
* reproducible: Spearman between the seed rankings over all architectures (target >= 0.85;
  issue #11 asked 0.8) and within the better half (target >= 0.6), and the between-seed std of
  one run's top-1, sqrt(mean((a - b)^2) / 2) (target <= 3 points);
* not memorised: rows whose last epoch's training top-1 exceeds their validation top-1 by more
  than 10 points (target: none; tables exported before ``train_top1`` existed say n/a);
* informative: each dimension's marginal effect on mean top-1 (largest minus smallest level
  mean, with a 95% bootstrap CI) against twice the between-seed std (target: >= 4 dimensions
  above), and its eta squared (share of the variance of mean top-1 it explains; target: none
  above 0.6).

Architectures with fewer than two seeds in the table are left out of the seed comparisons.
``--plot FILE`` draws the two pictures behind the numbers: seed against seed per architecture
(with the +-2 between-seed std band), and the architectures sorted by mean top-1 with each
seed's value (the grading and its gaps).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.scores.tabular import BenchmarkTable  # noqa: E402

MEMORISED = 10.0  # points of training top-1 above validation top-1 that count as memorised
LAGGING = 10.0  # points between two seeds of one network that say one run lagged behind


def _levels(table: BenchmarkTable) -> tuple[list[str], dict[str, float], dict[str, dict]]:
    """Digests, their mean top-1 and their factors (of the first row)."""
    means = table.mean_top1()
    factors: dict[str, dict] = {}
    for row in table.rows:
        factors.setdefault(row.digest, row.factors)
    digests = sorted(means)
    return digests, means, factors


def _seed_pairs(table: BenchmarkTable) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 of the first two seeds, over the architectures that have both."""
    a, b = table.seeds[:2]
    pairs = [
        (ra.top1, rb.top1)
        for d in table.digests
        if (ra := table.lookup(d, a)) is not None and (rb := table.lookup(d, b)) is not None
    ]
    x, y = np.array(pairs).T
    return x, y


def seed_agreement(table: BenchmarkTable) -> dict[str, float]:
    """Spearman of seed a vs seed b (first two seeds) over all and the better half."""
    x, y = _seed_pairs(table)
    mean = (x + y) / 2
    better = mean >= np.median(mean)
    return {
        "architectures_with_2_seeds": float(len(x)),
        "spearman_all": float(stats.spearmanr(x, y).statistic),
        "spearman_better_half": float(stats.spearmanr(x[better], y[better]).statistic),
        # std of one run's top-1 around its architecture's mean: |a - b| / sqrt(2) on average
        "between_seed_std": float(np.sqrt(np.mean((x - y) ** 2) / 2)),
    }


def expected_agreement(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """What seed noise alone lets two seed rankings agree to, and why (the "why" of a miss).

    With top-1 = true mean + independent seed noise, the covariance of the two seeds estimates
    the variance of the true means (signal) and half the mean squared difference the noise;
    two noisy rankings then correlate by about signal / (signal + noise) (Pearson; Spearman
    is close). So a missed Spearman target is either too little spread between architectures
    or too much seed noise, and this says which amount of noise would meet a target.
    """
    signal = max(float(np.cov(x, y)[0, 1]), 0.0)
    noise = float(np.mean((x - y) ** 2) / 2)
    return {
        "spread_std": math.sqrt(signal),
        "seed_std": math.sqrt(noise),
        "expected": signal / (signal + noise) if signal + noise > 0 else math.nan,
    }


def _why_rankings_disagree(table: BenchmarkTable) -> list[str]:
    """Per ranking check: spread vs noise, the expected correlation, the noise it needs."""
    x, y = _seed_pairs(table)
    better = (x + y) / 2 >= np.median((x + y) / 2)
    lines = []
    for name, keep, target in (("all", slice(None), 0.85), ("better half", better, 0.6)):
        e = expected_agreement(x[keep], y[keep])
        needed = e["spread_std"] * math.sqrt((1 - target) / target)
        lines.append(
            f"rankings ({name}): true means spread with sd {e['spread_std']:.2f} against seed "
            f"noise sd {e['seed_std']:.2f}, so two seeds agree to about {e['expected']:.2f}; "
            f"{target:g} needs seed noise <= {needed:.2f} at this spread"
        )
    return lines


def plot_quality(table: BenchmarkTable, path: str) -> None:
    """Seed a vs seed b, and the architectures sorted by mean top-1 (see the docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = table.seeds[:2]
    x, y = _seed_pairs(table)
    sd = float(np.sqrt(np.mean((x - y) ** 2) / 2))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    low, high = min(x.min(), y.min()) - 2, max(x.max(), y.max()) + 2
    line = np.array([low, high])
    left.fill_between(line, line - 2 * sd, line + 2 * sd, color="0.9", label="+-2 seed std")
    left.plot(line, line, color="0.5", lw=1)
    left.scatter(x, y, s=14)
    left.set_xlim(low, high)
    left.set_ylim(low, high)
    left.set(xlabel=f"top-1, seed {a}", ylabel=f"top-1, seed {b}",
             title=f"{len(x)} architectures, between-seed std {sd:.2f}")  # fmt: skip
    left.legend(loc="upper left")
    per_arch = [[r.top1 for r in table.rows if r.digest == d] for d in table.digests]
    ordered = sorted(per_arch, key=lambda v: float(np.mean(v)))
    for rank, values in enumerate(ordered):
        right.scatter([rank] * len(values), values, s=8, color="tab:blue", alpha=0.6)
    right.plot([float(np.mean(v)) for v in ordered], color="tab:orange", label="mean")
    right.set(xlabel="architecture (sorted by mean top-1)", ylabel="top-1",
              title="grading: every seed's top-1")  # fmt: skip
    right.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def dimension_effects(
    digests: list[str], means: dict[str, float], factors: dict[str, dict], *, seed: int = 0
) -> list[dict[str, float | str]]:
    """Marginal effect (max - min level mean, 95% bootstrap CI) and eta^2 per dimension."""
    rng = np.random.default_rng(seed)
    y = np.array([means[d] for d in digests])
    total = float(((y - y.mean()) ** 2).sum())
    out: list[dict[str, float | str]] = []
    names = sorted({k for d in digests for k in factors[d]})
    for name in names:
        values = np.array([json.dumps(factors[d].get(name)) for d in digests])
        levels = sorted(set(values))
        if len(levels) < 2:
            continue
        groups = [y[values == level] for level in levels]
        level_means = [g.mean() for g in groups]
        effect = max(level_means) - min(level_means)
        boot = []
        for _ in range(1000):
            resampled = [rng.choice(g, size=len(g)).mean() for g in groups]
            boot.append(max(resampled) - min(resampled))
        between = sum(len(g) * (g.mean() - y.mean()) ** 2 for g in groups)
        out.append(
            {
                "dimension": name,
                "levels": " / ".join(
                    f"{json.loads(lv)}: {m:.1f}" for lv, m in zip(levels, level_means, strict=True)
                ),
                "effect": float(effect),
                "ci_low": float(np.percentile(boot, 2.5)),
                "ci_high": float(np.percentile(boot, 97.5)),
                "eta2": float(between / total) if total > 0 else math.nan,
            }
        )
    return sorted(out, key=lambda r: -float(r["effect"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", help="a table CSV written by r3dnas table export")
    parser.add_argument("--plot", metavar="FILE.png", help="draw seed agreement and grading")
    args = parser.parse_args()
    table = BenchmarkTable.load(args.table)
    digests, means, factors = _levels(table)
    if len(digests) < 3:  # a table just started: rankings and neighbours need a few networks
        parser.error(f"table {args.table}: {len(digests)} architecture(s); the checks need >= 3")
    y = np.sort(np.array([means[d] for d in digests]))
    agreement = seed_agreement(table) if len(table.seeds) >= 2 else {}
    effects = dimension_effects(digests, means, factors)
    twice_std = 2 * agreement.get("between_seed_std", math.nan)
    print(f"table {args.table}: {len(table)} rows, {len(digests)} architectures, "
          f"seeds {list(table.seeds)}")  # fmt: skip
    checks = [
        ("best mean top-1", y.max(), "<= 95", y.max() <= 95),
        ("span of mean top-1", y.max() - y.min(), ">= 30", y.max() - y.min() >= 30),
        ("largest neighbour gap", np.diff(y).max(), "<= 5", np.diff(y).max() <= 5),
    ]
    if agreement:
        s_all, s_half = agreement["spearman_all"], agreement["spearman_better_half"]
        checks += [
            ("Spearman seed rankings, all", s_all, ">= 0.85", s_all >= 0.85),
            ("Spearman seed rankings, better half", s_half, ">= 0.6", s_half >= 0.6),
            ("between-seed std (points)", twice_std / 2, "<= 3", twice_std / 2 <= 3),
        ]
    gaps = [r.train_top1[-1] - r.top1 for r in table.rows if r.train_top1]
    if gaps:
        memorised = sum(g > MEMORISED for g in gaps)
        checks.append((f"rows with train top-1 > val + {MEMORISED:g}", memorised, "0",
                       memorised == 0))  # fmt: skip
    above = [e for e in effects if float(e["effect"]) > twice_std]
    max_eta = max((float(e["eta2"]) for e in effects), default=math.nan)
    checks += [
        ("dimensions with effect > 2x seed std", len(above), ">= 4", len(above) >= 4),
        ("largest eta squared", max_eta, "<= 0.6", max_eta <= 0.6),
    ]
    print("\n| check | value | target | met |\n|---|---|---|---|")
    for name, value, target, met in checks:
        print(f"| {name} | {value:.3g} | {target} | {'yes' if met else 'NO'} |")
    if gaps:
        print(f"\nlast epoch's training top-1 minus validation top-1 over {len(gaps)} rows: "
              f"median {np.median(gaps):+.1f}, max {max(gaps):+.1f} points")  # fmt: skip
    else:
        print("\nnot memorised: n/a (the table has no train_top1 column)")
    if agreement:
        print(f"\nbetween-seed std of one run's top-1: {agreement['between_seed_std']:.2f} "
              f"points ({int(agreement['architectures_with_2_seeds'])} architectures with 2 "
              "seeds)")  # fmt: skip
    print("\n| dimension | effect (points) | 95% CI | eta^2 | level means |")
    print("|---|---|---|---|---|")
    for e in effects:
        print(f"| {e['dimension']} | {float(e['effect']):.1f} | "
              f"[{float(e['ci_low']):.1f}, {float(e['ci_high']):.1f}] | "
              f"{float(e['eta2']):.2f} | {e['levels']} |")  # fmt: skip
    if agreement:
        print("\nwhy (seed noise against the spread between architectures):")
        for line in _why_rankings_disagree(table):
            print(f"- {line}")
        gap_at = int(np.argmax(np.diff(y)))
        x, z = _seed_pairs(table)
        robust = 1.4826 * float(np.median(np.abs(x - z))) / math.sqrt(2)
        lagging = int(np.sum(np.abs(x - z) > LAGGING))
        print(f"- seed noise: robust sd {robust:.2f} (1.4826 x median |a - b| / sqrt 2) "
              f"against rms sd {twice_std / 2:.2f}; {lagging} of {len(x)} pairs differ by more "
              f"than {LAGGING:g} points (one run lagging behind the other)")  # fmt: skip
        low, high = y[gap_at], y[gap_at + 1]
        print(f"- largest neighbour gap: between mean top-1 {low:.1f} and {high:.1f} "
              f"({gap_at + 1} of {len(y)} architectures below it)")  # fmt: skip
        print(f"- dimensions above 2x seed std ({twice_std:.2f}): "
              f"{', '.join(str(e['dimension']) for e in above) or 'none'}")  # fmt: skip
    if args.plot and len(table.seeds) >= 2:
        plot_quality(table, args.plot)
        print(f"\nplot written to {args.plot}")
    return 0 if all(met for *_, met in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
