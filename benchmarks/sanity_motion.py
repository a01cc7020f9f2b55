"""Scientific sanity: the motion proxy task separates temporal from purely spatial networks.

The same small ResNet3d is trained twice on the built-in
:class:`runners.data.motion.MotionDataset`:

* **temporal**: conv1 temporal kernel 3 and every block inflated ('3x1x1');
* **no temporal modelling**: conv1 kernel (1, 7, 7), inflate 0 everywhere, no temporal stride
  and ``with_pool2=False`` (pool2's max over 2 frames would mix neighbouring frames, and a max of
  two shifted feature maps reveals the motion axis). This network is a per-frame 2D CNN whose
  features are averaged over time by the head, so it can use per-frame evidence only.

Both use ``with_pool2=False`` so that they differ only in their temporal kernels. Pass when the
temporal network reaches >= 90% top-1 and the other stays within 15 points of chance; the exit
code is 1 otherwise. ``tests/runners/training/test_accuracy.py`` runs :func:`run_sanity` as a slow
test.

One intra-op thread by default: for a network this small, 2 threads on a 2-core machine shared
with other processes were several times slower than 1 (measured 2.8 s vs 9.5-30 s per epoch).

Usage: ``python benchmarks/sanity_motion.py [--threads 1] [--seed 0] [--epochs 8] [--progress]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

# NOTE: lets the script run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.data.motion import MotionDataset  # noqa: E402
from runners.training.accuracy import AccuracyResult, TrainConfig, train_and_evaluate  # noqa: E402
from search_space.config import ResNet3dConfig  # noqa: E402

NUM_CLASSES = 4
DATA = {"clip_len": 8, "resolution": 32, "noise": 0.5}
NUM_TRAIN, NUM_VAL = 1024, 512
TEMPORAL_MIN_TOP1 = 90.0
FLAT_MAX_ABOVE_CHANCE = 15.0


def temporal_config() -> ResNet3dConfig:
    """A small R50-style network (one block per stage, 8 base channels), temporal everywhere."""
    return ResNet3dConfig(
        depth=50,
        stage_blocks=(1, 1, 1, 1),
        base_channels=8,
        conv1_kernel=(3, 7, 7),
        inflate=1,
        with_pool2=False,
    )


def flat_config() -> ResNet3dConfig:
    """The same network with no temporal modelling at all."""
    return temporal_config().replace(conv1_kernel=(1, 7, 7), inflate=0)


def train_config(*, epochs: int, seed: int, threads: int) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        batch_size=16,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        weight_decay=1e-4,
        warmup_epochs=1,
        dropout=0.5,
        seed=seed,
        device="cpu",
        num_threads=threads,
    )


def run_sanity(
    *, epochs: int = 8, seed: int = 0, threads: int = 1, progress: bool = False
) -> dict[str, Any]:
    """Train both networks; return their results, chance level and the pass/fail verdict."""
    start = time.perf_counter()
    train_set = MotionDataset(
        num_classes=NUM_CLASSES, num_clips=NUM_TRAIN, seed=seed, split="train", **DATA
    ).materialize()
    val_set = MotionDataset(
        num_classes=NUM_CLASSES, num_clips=NUM_VAL, seed=seed, split="val", **DATA
    ).materialize()
    data_s = time.perf_counter() - start
    cfg = train_config(epochs=epochs, seed=seed, threads=threads)
    results: dict[str, AccuracyResult] = {}
    for name, config in (("temporal", temporal_config()), ("flat", flat_config())):
        results[name] = train_and_evaluate(
            config, train_set, val_set, cfg, num_classes=NUM_CLASSES, progress=progress
        )
    chance = 100.0 / NUM_CLASSES
    passed = (
        results["temporal"].top1 >= TEMPORAL_MIN_TOP1
        and results["flat"].top1 <= chance + FLAT_MAX_ABOVE_CHANCE
    )
    return {
        "results": results,
        "chance": chance,
        "passed": passed,
        "data_s": data_s,
        "wall_s": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    out = run_sanity(
        epochs=args.epochs, seed=args.seed, threads=args.threads, progress=args.progress
    )
    print(
        f"motion sanity: {NUM_CLASSES} classes (chance {out['chance']:.1f}%), "
        f"{NUM_TRAIN} train / {NUM_VAL} val clips, {DATA}, seed {args.seed}, "
        f"{args.threads} thread(s); data generated in {out['data_s']:.1f}s"
    )
    for name, result in out["results"].items():
        per_epoch = result.train_s / result.epochs_run
        print(
            f"  {name:8s} top1 {result.top1:5.1f}%  epochs {result.epochs_run}  "
            f"wall {result.wall_s:6.1f}s  ({per_epoch:.1f}s/epoch training)  "
            f"val top1 per epoch {[round(h['val_top1']) for h in result.history]}"
        )
    print(
        f"  verdict: {'PASS' if out['passed'] else 'FAIL'} (temporal >= {TEMPORAL_MIN_TOP1:.0f}%, "
        f"flat <= chance + {FLAT_MAX_ABOVE_CHANCE:.0f}); total {out['wall_s']:.1f}s"
    )
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
