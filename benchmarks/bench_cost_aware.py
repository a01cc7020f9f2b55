"""Time of one ``cost_aware`` proposal on the largest shipped space, on one CPU core.

    python benchmarks/bench_cost_aware.py --spec i3d_r50_gpu --observations 100 --reps 5

The spec's space is enumerated once (printed: it is paid once per worker process); then
``--reps`` proposals are timed, each with ``--observations`` completed trials of random
networks (made-up top-1, latency from GFLOPs) and the full pick: Gaussian-process fit,
posterior over every candidate, expected hypervolume improvement, argmax. BLAS and OpenMP are
limited to one thread before numpy loads. Target (issue 22): at most about 1 s per proposal
with 24,544 candidates and 100 observations.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # NOTE: before numpy is imported, or it is too late

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import optuna

    from studies.sampling import CostAwareSampler
    from studies.study.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="i3d_r50_gpu")
    parser.add_argument("--observations", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if args.observations < 2 or args.reps < 1:
        parser.error(f"--observations must be >= 2 and --reps >= 1 (got {args.observations}, "
                     f"{args.reps})")  # fmt: skip
    spec = load_spec(args.spec, overrides=['study.sampler="cost_aware"'])
    sampler = CostAwareSampler(spec)
    t0 = time.process_time()
    candidates = sampler.candidates()
    enumerate_s = time.process_time() - t0
    print(f"spec {args.spec}: {len(candidates)} candidates (complete: {candidates.complete}), "
          f"latency source {candidates.latency_source!r}, enumerated and costed in "
          f"{enumerate_s:.1f} s CPU (once per process)")  # fmt: skip
    names = spec.objective_names
    times = []
    for rep in range(args.reps):
        rng = np.random.default_rng(rep)
        rows = rng.choice(len(candidates), args.observations, replace=False)
        trials = []
        for row in rows:
            metrics = {
                "top1": float(rng.normal(60, 15)),
                "gflops": candidates.gflops[row],
                "params_m": candidates.params_m[row],
                "latency_ms": 3.0 * candidates.gflops[row] + float(rng.normal(0, 1)),
            }
            trials.append(optuna.trial.create_trial(
                values=[metrics[n] for n in names],
                user_attrs={**metrics, "digest": candidates.digests[row], "state": "complete"},
            ))  # fmt: skip
        excluded = {candidates.digests[r] for r in rows}
        t = time.process_time()
        pick = sampler.propose(trials, excluded)
        times.append(time.process_time() - t)
        assert pick is not None and pick[1]["phase"] == "model"
    print(f"one proposal with {args.observations} observations: median "
          f"{statistics.median(times):.3f} s CPU, max {max(times):.3f} s ({args.reps} reps; "
          f"CPU time of this process, so other load on the machine does not count)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
