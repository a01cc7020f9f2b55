"""Analytic cost model against build + fvcore, and a sweep of 100,000 random configurations.

Run from the repository root::

    .venv/bin/python benchmarks/bench_cost.py [--sweep 100000] [--seed 0] [--threads 1]

Prints, for a few configurations, the time of :func:`search_space.cost.cost` (cold: its block
and stage memos cleared before every call; warm: memos filled) beside the time to build the
network and count it with fvcore (through :func:`runners.scores.flops.measure_flops`, which also
checks the two agree), and their ratio, all measured in this run. Then it sweeps random
configurations of an I3D R50 space and reports the time to build the configs and to cost them.
Numbers only: no thresholds (speed is not a unit test).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from runners.scores.flops import measure_flops  # noqa: E402
from search_space import ConfigError, ResNet3dConfig, preset  # noqa: E402
from search_space.cost import _clear_caches, cost  # noqa: E402

SMALL = (1, 3, 8, 224, 224)
ZOO = (1, 3, 32, 256, 256)


def i3d_r50_non_local() -> ResNet3dConfig:
    """mmaction2's ``i3d_imagenet-pretrained-r50-nl-embedded-gaussian`` backbone."""
    return preset("i3d_r50").replace(
        non_local=((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0)),
        non_local_cfg={
            "sub_sample": True,
            "use_scale": False,
            "norm_cfg": {"type": "BN3d", "requires_grad": True},
            "mode": "embedded_gaussian",
        },
    )


CASES: list[tuple[str, Callable[[], ResNet3dConfig], tuple[int, ...]]] = [
    ("i3d_r50", lambda: preset("i3d_r50"), SMALL),
    ("i3d_r50", lambda: preset("i3d_r50"), ZOO),
    ("i3d_r50_nonlocal", i3d_r50_non_local, SMALL),
    ("slowonly_r50", lambda: preset("slowonly_r50"), SMALL),
    ("i3d_r50_heavy", lambda: preset("i3d_r50_heavy"), SMALL),
]


def _median_seconds(fn: Callable[[], object], repeats: int, *, cold: bool) -> float:
    times = []
    for _ in range(repeats):
        if cold:
            _clear_caches()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_with_fvcore(fvcore_repeats: int) -> None:
    print("analytic cost vs build + fvcore (same configuration, same run)")
    header = (
        f"{'config':<18} {'input':<16} {'gflops':>9} {'cold us':>9} {'warm us':>9} "
        f"{'fvcore s':>9} {'ratio cold':>11} {'ratio warm':>11}"
    )
    print(header)
    for name, make, shape in CASES:
        config = make()
        cold = _median_seconds(lambda: cost(config, shape), 300, cold=True)  # noqa: B023
        warm = _median_seconds(lambda: cost(config, shape), 3000, cold=False)  # noqa: B023
        fvcore_seconds = statistics.median(
            measure_flops(config, shape).seconds for _ in range(fvcore_repeats)
        )
        print(
            f"{name:<18} {'x'.join(map(str, shape)):<16} {cost(config, shape).gflops:>9.3f} "
            f"{cold * 1e6:>9.1f} {warm * 1e6:>9.1f} {fvcore_seconds:>9.2f} "
            f"{fvcore_seconds / cold:>10,.0f}x {fvcore_seconds / warm:>10,.0f}x"
        )


def random_config(rng: random.Random, base: ResNet3dConfig) -> ResNet3dConfig:
    """One point of an I3D R50 space: per-block inflate bits, inflate style, strides of
    layers 2-4, temporal strides, dilations and pool2."""
    return base.replace(
        inflate=tuple(tuple(rng.randint(0, 1) for _ in range(b)) for b in base.blocks_per_stage),
        inflate_style=rng.choice(("3x1x1", "3x3x3")),
        spatial_strides=(1, *(rng.choice((1, 2)) for _ in range(3))),
        temporal_strides=tuple(rng.choice((1, 1, 2)) for _ in range(4)),
        dilations=tuple(rng.choice((1, 1, 2)) for _ in range(4)),
        with_pool2=rng.random() < 0.5,
    )


def sweep(count: int, seed: int, shape: tuple[int, ...], batch: int = 10_000) -> None:
    """Generate and cost ``count`` configurations in batches (bounded memory), timing each
    phase separately."""
    rng = random.Random(seed)
    base = preset("i3d_r50")
    _clear_caches()
    generate_seconds = cost_seconds = 0.0
    done = infeasible = invalid = 0
    gflops: list[float] = []
    while done < count:
        start = time.perf_counter()
        configs: list[ResNet3dConfig] = []
        while len(configs) < min(batch, count - done):
            try:
                configs.append(random_config(rng, base))
            except ConfigError:
                invalid += 1
        generate_seconds += time.perf_counter() - start
        start = time.perf_counter()
        for config in configs:
            try:
                gflops.append(cost(config, shape).gflops)
            except ConfigError:
                infeasible += 1
        cost_seconds += time.perf_counter() - start
        done += len(configs)
    print(
        f"\nsweep of {done:,} random I3D R50 configurations at {'x'.join(map(str, shape))} "
        f"(seed {seed})"
    )
    print(
        f"  cost():            {cost_seconds:6.2f} s  ({cost_seconds / done * 1e6:.1f} us each, "
        f"{done / cost_seconds:,.0f} configs/s; memos start empty)"
    )
    print(
        f"  ResNet3dConfig():  {generate_seconds:6.2f} s  "
        f"({generate_seconds / done * 1e6:.1f} us each, validation included)"
    )
    print(
        f"  gflops {min(gflops):.2f} .. {max(gflops):.2f}; {infeasible} infeasible for the "
        f"input, {invalid} rejected by validation"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=int, default=100_000, help="configurations to sweep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fvcore-repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    compare_with_fvcore(args.fvcore_repeats)
    sweep(args.sweep, args.seed, SMALL)


if __name__ == "__main__":
    main()
