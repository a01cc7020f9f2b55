"""Latency under load against latency idle: does ``latency_isolation = "pause"`` record what an
idle machine would while another study worker trains?

Usage (from the repository root; nothing else running)::

    .venv/bin/python benchmarks/bench_latency_load.py --space default --threads 1 --rounds 5

One architecture (the space's base, or ``--config FILE.json``) is timed with
``runners.latency.measure.measure_latency`` in four conditions, ``--rounds`` times each,
interleaved: ``idle`` (no other process), ``load`` (a registered worker process trains a
network of the space on the motion dataset with ``--load-threads`` threads, as a study worker does;
isolation ``none``), ``lock`` (the same load, isolation ``lock``: timers serialised, the worker
runs on) and ``pause`` (the same load, isolation ``pause``: the worker is stopped while timing).
The recorded value is the study's ``latency_ms``: drift-referenced by default
(``--no-reference``: the plain median). Reported: the median of each condition, its ratio to
idle, and pause against lock (does stopping the worker still buy anything over the drift
reference?). Target: ``pause`` within ±10% of ``idle``. Numbers measured while anything else
runs on the machine are "under load": say so beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TRAINER = """
import sys
from runners.latency.quiet import register_worker
from runners.training.accuracy import TrainConfig, train_and_evaluate
from runners.data.datasets import DataConfig, build_datasets
from search_space.space import load_space
register_worker()
space = load_space(sys.argv[1])
data = DataConfig.from_dict({"kind": "motion", "num_classes": 4, "clip_len": space.input_shape[2],
                             "resolution": space.input_shape[3], "num_train_clips": 64,
                             "num_val_clips": 8})
train, val = build_datasets(data)
cfg = TrainConfig.from_dict({"epochs": 1000, "batch_size": 8, "device": "cpu",
                             "num_threads": int(sys.argv[2])})
print("training", flush=True)
train_and_evaluate(space.base, train, val, cfg, num_classes=4)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="default")
    parser.add_argument("--config", help="a ResNet3d JSON config (default: the space's base)")
    parser.add_argument("--input", help="clip N,C,T,H,W (default: the space's)")
    parser.add_argument("--threads", type=int, default=1, help="threads of the timed network")
    parser.add_argument("--load-threads", type=int, default=2, help="threads of the trainer")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", help="write the summary (markdown) here too")
    parser.add_argument("--no-reference", action="store_true", help="record the plain median")
    args = parser.parse_args(argv)

    from runners.latency.measure import LatencyConfig, measure_latency
    from search_space.config import ResNet3dConfig
    from search_space.shapes import parse_input_shape
    from search_space.space import load_space

    space = load_space(args.space)
    config = ResNet3dConfig.from_json(Path(args.config).read_text()) if args.config else space.base
    shape = parse_input_shape(args.input) if args.input else space.input_shape
    cfg = LatencyConfig(device="cpu", warmup=args.warmup, repeats=args.repeats,
                        blocks=max(2, min(5, args.repeats)), threads=args.threads,
                        isolation="none", reference=not args.no_reference)  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    samples: dict[str, list[float]] = {"idle": [], "load": [], "lock": [], "pause": []}
    for r in range(args.rounds):
        samples["idle"].append(
            measure_latency(config, shape, cfg.replace(isolation="none")).latency_ms
        )
        trainer = subprocess.Popen(
            [sys.executable, "-c", TRAINER, args.space, str(args.load_threads)],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert trainer.stdout is not None
            trainer.stdout.readline()
            time.sleep(3.0)  # into its training steps
            loaded = measure_latency(config, shape, cfg.replace(isolation="none"))
            locked = measure_latency(config, shape, cfg.replace(isolation="lock"))
            paused = measure_latency(config, shape, cfg.replace(isolation="pause"))
            samples["load"].append(loaded.latency_ms)
            samples["lock"].append(locked.latency_ms)
            samples["pause"].append(paused.latency_ms)
            print(
                f"round {r + 1}: idle {samples['idle'][-1]:.3f}  load {loaded.latency_ms:.3f}  "
                f"lock {locked.latency_ms:.3f}  pause {paused.latency_ms:.3f} ms "
                f"({paused.paused_workers} process(es) paused)",
                flush=True,
            )
        finally:
            trainer.kill()
            trainer.wait()
    idle = statistics.median(samples["idle"])
    lines = ["| condition | median ms | min-max ms | vs idle |", "| --- | --- | --- | --- |"]
    for name, values in samples.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.3f} | {min(values):.3f}-{max(values):.3f} | "
                     f"{median / idle - 1:+.1%} |")  # fmt: skip
    pause_vs_lock = statistics.median(samples["pause"]) / statistics.median(samples["lock"])
    lines.append(f"\npause / lock: {pause_vs_lock:.3f} (load average at the end "
                 f"{os.getloadavg()[0]:.2f})")  # fmt: skip
    summary = "\n".join(lines)
    print(summary)
    if args.out:
        Path(args.out).write_text(summary + "\n")
    ratio = statistics.median(samples["pause"]) / idle
    return 0 if abs(ratio - 1) <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
