"""Time of one ``cost_aware`` proposal on the largest shipped space, on one CPU core.

    python benchmarks/bench_cost_aware.py --spec i3d_r50_gpu --observations 100 --reps 5

The spec's space is enumerated and costed once into an empty enumeration cache (a temporary
``R3DNAS_CACHE_DIR``; printed: the first process on a machine pays it), then read back by a
new process (printed: what every later worker process pays). Then ``--reps`` proposals are
timed, each with ``--observations`` completed trials of random networks (made-up top-1,
latency from GFLOPs) and the full pick: Gaussian-process fit, posterior over every candidate,
expected hypervolume improvement, argmax. SciPy is imported before the timing (a new process
pays that once; printed). BLAS and OpenMP are limited to one thread before numpy loads. All
times are CPU time of the process. Target (issue 22): at most about 1 s per proposal with
24,544 candidates and 100 observations.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # NOTE: before numpy is imported, or it is too late

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_READ_BACK = """
import sys, time
sys.path.insert(0, sys.argv[2])
from studies.sampling.candidates import build_candidates
from studies.study.spec import load_spec
spec = load_spec(sys.argv[1], overrides=['study.sampler="cost_aware"'])
t = time.process_time()
build_candidates(spec)
print(time.process_time() - t)
"""


def _read_back_s(spec_name: str) -> float:
    """CPU seconds a new process takes to get the candidates from the enumeration cache."""
    out = subprocess.run([sys.executable, "-c", _READ_BACK, spec_name, str(ROOT)],
                         capture_output=True, text=True, check=True, timeout=600)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


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
    with tempfile.TemporaryDirectory() as cache:
        # NOTE: an empty cache of its own, so the first enumeration is really computed
        os.environ["R3DNAS_CACHE_DIR"] = cache
        t0 = time.process_time()
        candidates = sampler.candidates()
        enumerate_s = time.process_time() - t0
        read_back_s = _read_back_s(args.spec)
    t0 = time.process_time()
    import scipy.linalg  # noqa: F401
    import scipy.optimize  # noqa: F401
    import scipy.special  # noqa: F401

    import_s = time.process_time() - t0
    print(f"spec {args.spec}: {len(candidates)} candidates (complete: {candidates.complete}), "
          f"latency source {candidates.latency_source!r}, enumerated and costed in "
          f"{enumerate_s:.1f} s CPU (the first process; into the enumeration cache), read back "
          f"by a new process in {read_back_s:.2f} s CPU (every later worker); importing SciPy "
          f"{import_s:.2f} s CPU (once per process)")  # fmt: skip
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
