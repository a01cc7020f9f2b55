"""A made-up landscape over a real table's networks: same space, costs and latency, new top-1.

    python benchmarks/synthetic_landscape.py benchmarks/tables/bench_table.csv --seed 1 \
        --out runs/synth1/synth.csv
    python benchmarks/bench_search.py runs/synth1/synth.csv --reps 4 --trials 25 \
        --samplers cost_aware,tpe,random

Why: a sampler tuned to one table can fail on the next one. The landscape keeps the table's
networks, GFLOPs and latency, and draws their top-1 anew: a random main effect per factor value
(sd 8 points), a random interaction per pair of factors (sd 3), a random dependence on log
GFLOPs, and for each of two seeds Gaussian noise of sd ``--noise`` (default 9.5, the v1 table's
between-seed sd), clipped to [0, 100]. The spec beside the source table is copied beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.scores.tabular import BenchmarkTable  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=9.5)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    source = BenchmarkTable.load(args.table)
    rng = np.random.default_rng(args.seed)
    first = {}
    for row in source.rows:
        first.setdefault(row.digest, row)
    names = sorted({k for r in first.values() for k in r.factors})
    levels = {n: sorted({json.dumps(r.factors.get(n)) for r in first.values()}) for n in names}
    main_effect = {(n, v): rng.normal(0, 8) for n in names for v in levels[n]}
    pairs = {(a, va, b, vb): rng.normal(0, 3)
             for a, b in itertools.combinations(names, 2)
             for va in levels[a] for vb in levels[b]}  # fmt: skip
    slope = rng.normal(0, 6)
    low = min(math.log(r.gflops) for r in first.values())
    truth = {}
    for digest, row in first.items():
        f = {n: json.dumps(row.factors.get(n)) for n in names}
        value = 60.0 + sum(main_effect[(n, f[n])] for n in names)
        value += sum(pairs[(a, f[a], b, f[b])] for a, b in itertools.combinations(names, 2))
        truth[digest] = value + slope * (math.log(row.gflops) - low)
    rows = []
    for seed in (0, 1):
        for digest, row in first.items():
            top1 = float(np.clip(truth[digest] + rng.normal(0, args.noise), 0.0, 100.0))
            curve = (*row.val_top1[:-1], top1)
            rows.append(dataclasses.replace(row, seed=seed, top1=top1, val_top1=curve))
    out = Path(args.out)
    BenchmarkTable(rows, source=str(out)).write(out)
    shutil.copy(Path(args.table).with_suffix(".toml"), out.with_suffix(".toml"))
    print(f"{out}: {len(first)} networks x 2 seeds, noise sd {args.noise}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
