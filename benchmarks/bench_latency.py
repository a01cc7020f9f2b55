"""Latency of a preset ResNet3d on this machine in each mode: eager, channels_last, compile.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_latency.py        # I3D R50, 1x3x8x224x224, 2 threads
    .venv/bin/python benchmarks/bench_latency.py --modes eager,compile --repeats 100

Each mode builds a fresh network and runs :func:`runners.latency.measure.measure_latency` (batch 1;
``compile`` on CPU uses inductor freezing). The table gives the median, p90, IQR, min, the
run-to-run CV of the median (sample std / mean of the medians of ``--blocks`` consecutive blocks
of the repeats) and each mode's speed-up over eager. The 1-minute load average before and after
each mode is printed: on a shared machine, a load above the thread count inflates every number
(most of all ``compile``, whose many small OpenMP regions each wait for a preempted thread).
Set ``TORCHINDUCTOR_CACHE_DIR`` to reuse compiled kernels across runs (the compile time shown
then shrinks; the latency does not change).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from runners.latency.measure import LatencyConfig, LatencyMode, LatencyResult, measure_latency
from search_space.presets import preset, preset_names
from search_space.shapes import parse_input_shape


def _load_average() -> str:
    """The 1-minute load average: other work on the cores shows up here, not in the model."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="i3d_r50", choices=preset_names())
    parser.add_argument("--input-shape", default="1x3x8x224x224")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default=",".join(m.value for m in LatencyMode))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--json", help="also write every result to this JSON file")
    args = parser.parse_args(argv)

    config = preset(args.preset)
    shape = parse_input_shape(args.input_shape)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results: dict[str, LatencyResult] = {}
    print(
        f"{args.preset} at {'x'.join(map(str, shape))}, device {args.device}, "
        f"{args.threads} threads, {args.warmup} warm-up + {args.repeats} runs in {args.blocks} "
        f"blocks; TORCHINDUCTOR_CACHE_DIR={os.environ.get('TORCHINDUCTOR_CACHE_DIR', '(unset)')}",
        flush=True,
    )
    for mode in modes:
        cfg = LatencyConfig(
            device=args.device,
            mode=mode,
            warmup=args.warmup,
            repeats=args.repeats,
            blocks=args.blocks,
            threads=args.threads,
            isolation="none",
            reference=False,
        )
        load_before = _load_average()
        results[mode] = measure_latency(config, shape, cfg)
        r = results[mode]
        print(
            f"  {mode}: median {r.median_ms:.1f} ms, CV {100 * r.cv_of_median:.1f}% "
            f"(1-min load average before/after: {load_before}/{_load_average()})",
            flush=True,
        )

    first = next(iter(results.values()))
    print(f"\ndevice: {first.device}; threads {first.threads}; versions {first.versions}")
    header = (
        f"{'mode':<14}{'median ms':>10}{'p90 ms':>9}{'IQR ms':>9}{'min ms':>9}"
        f"{'CV median':>11}{'compile s':>11}{'vs eager':>10}"
    )
    print(header)
    print("-" * len(header))
    eager = results.get(LatencyMode.EAGER.value)
    for mode, r in results.items():
        compile_s = f"{r.compile_s:.1f}" if r.compile_s is not None else "-"
        speedup = f"{eager.median_ms / r.median_ms:.2f}x" if eager is not None else "-"
        print(
            f"{mode:<14}{r.median_ms:>10.1f}{r.p90_ms:>9.1f}{r.iqr_ms:>9.1f}{r.min_ms:>9.1f}"
            f"{100 * r.cv_of_median:>10.1f}%{compile_s:>11}{speedup:>10}"
        )
    if eager is not None and LatencyMode.COMPILE.value in results:
        compiled = results[LatencyMode.COMPILE.value]
        print(
            f"\neager / compiled latency: {eager.median_ms:.1f} / {compiled.median_ms:.1f} ms "
            f"= {eager.median_ms / compiled.median_ms:.2f}x"
            f" (inductor freezing {'on' if compiled.inductor_freezing else 'off'})"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({m: r.to_dict() for m, r in results.items()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
