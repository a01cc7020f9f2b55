"""A synthetic benchmark table over a tiny space, for tests of what reads tables (tabular
studies, pruners, the benchmark scripts) without hours of training."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from study_specs import TABLE_SPACE, spec_toml

from runners.scores.tabular import BenchmarkTable, TableRow
from search_space.cost import cost
from studies.benchmark.table import space_architectures
from studies.study.spec import load_spec

SPACE = spec_toml(
    TABLE_SPACE,
    study={"name": "prune", "n_startup_trials": 2, "pruner": "pareto"},
    space={
        "dimensions": {
            "conv1_kernel_t": [1, 3],
            "layer4": {"inflate": ["none", "all"]},
            "inflate_style": ["3x1x1", "3x3x3"],
            "with_pool2": [True, False],
        }
    },
    data={"num_classes": 4, "num_train_clips": 8, "num_val_clips": 8},
    train={"epochs": 4, "batch_size": None, "num_threads": None},
)


def synthetic_table(folder: Path, seeds: Sequence[int] = (0,), latency: bool = False) -> Path:
    """A table of every network of SPACE, with made-up curves where cheaper is more accurate
    (so that expensive networks are dominated and worth stopping); seed ``s`` adds ``s``
    points to every value. The spec is written beside it (``prune.toml``)."""
    spec_path = folder / "prune.toml"
    spec_path.write_text(SPACE)
    spec = load_spec(spec_path)
    archs = space_architectures(spec)
    by_cost = sorted(archs, key=lambda d: cost(archs[d], spec.measure.input_shape).gflops)
    rows = []
    for seed in seeds:
        for rank, digest in enumerate(by_cost):
            config = archs[digest]
            analytic = cost(config, spec.measure.input_shape)
            final = 90.0 - 6.0 * rank + seed
            curve = tuple(round(final * f, 2) for f in (0.5, 0.8, 0.95, 1.0))
            rows.append(TableRow(
                digest=digest, seed=seed, arch="", config=config.to_dict(), factors={},
                params=float(analytic.params), params_m=analytic.params_m,
                gflops=analytic.gflops, top1=curve[-1], top5=100.0, val_top1=curve,
                train_loss=(1.0, 0.8, 0.6, 0.5), epochs=4, train_s=40.0,
                latency_ms=1.0 + 100.0 * analytic.gflops if latency else math.nan,
                latency_cv=0.01 if latency else math.nan, latency_threads=1 if latency else 0,
                latency_mode="eager" if latency else "", machine="", versions={}, trial=rank,
            ))  # fmt: skip
    return BenchmarkTable(rows).write(folder / "prune.csv")
