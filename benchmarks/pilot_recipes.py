"""Pilot a training recipe for the benchmark table: a few of its architectures, two seeds each.

    python benchmarks/pilot_recipes.py '{"ntrain": 1536, "epochs": 4, "noise": 2.0}'
    python benchmarks/pilot_recipes.py '{"base": {"base_channels": 16}, "seeds": [0, 1, 2]}'

Why: a new recipe means a new table build (hours), and the table must be graded *and*
reproducible between seeds; a pilot of a handful of architectures says which recipe is worth a
build (benchmarks/README.md keeps the results). The architectures come from the committed table
(``--table``); keys of the JSON argument (all optional): ``classes``, ``noise``, ``ntrain``,
``epochs``, ``warmup``, ``lr``, ``bs``, ``opt``, ``wd``, ``dropout``, ``ls`` (label smoothing),
``seeds``, ``base`` (ResNet3d arguments replaced in every architecture) and ``digests``. Prints,
per architecture: the table's top-1, each seed's final top-1, seconds per training and the
per-epoch validation curves.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the eight architectures of the session-4 pilots: four whose seeds disagreed by 31-45 points in
# the first build, four that agreed
DIGESTS = ["f96ec62174ae", "94d8a05a8c09", "329ea59ce4aa", "657273175766",
           "1707773c14fa", "7bab2c8e7e46", "a2aacdf52193", "be72befbcdc4"]  # fmt: skip


KEYS = {"classes", "noise", "ntrain", "epochs", "warmup", "lr", "bs", "opt", "wd", "dropout",
        "ls", "seeds", "base", "digests"}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", nargs="?", default="{}", help="JSON of recipe keys")
    parser.add_argument("--table", default="benchmarks/tables/bench_table.csv")
    args = parser.parse_args()
    try:
        recipe = json.loads(args.recipe)
    except json.JSONDecodeError as exc:
        parser.error(f"recipe: not JSON ({exc})")
    if not isinstance(recipe, dict) or set(recipe) - KEYS:
        unknown = sorted(set(recipe) - KEYS) if isinstance(recipe, dict) else recipe
        parser.error(f"recipe: unknown keys {unknown}; allowed: {', '.join(sorted(KEYS))}")

    from runners.data.motion_events import MotionEventsDataset
    from runners.scores.tabular import BenchmarkTable
    from runners.training.accuracy import train_and_evaluate
    from runners.training.config import TrainConfig
    from search_space.config import ResNet3dConfig

    rows = {row.digest: row for row in BenchmarkTable.load(args.table).rows}
    data = dict(num_classes=recipe.get("classes", 4), clip_len=16, resolution=32,
                noise=recipe.get("noise", 2.0), seed=0)  # fmt: skip
    train = MotionEventsDataset(num_clips=recipe.get("ntrain", 512), split="train", **data)
    val = MotionEventsDataset(num_clips=384, split="val", **data)
    train_set, val_set = train.materialize(), val.materialize()
    for digest in recipe.get("digests") or DIGESTS:
        if digest not in rows:
            print(f"{digest}: not in {args.table}; skipped")
            continue
        config = ResNet3dConfig.from_dict({**rows[digest].config, **recipe.get("base", {})})
        tops, curves = [], []
        start = time.perf_counter()
        for seed in recipe.get("seeds", [0, 1]):
            cfg = TrainConfig(
                epochs=recipe.get("epochs", 8), batch_size=recipe.get("bs", 16),
                optimizer=recipe.get("opt", "adamw"), lr=recipe.get("lr", 0.004),
                weight_decay=recipe.get("wd", 0.01), warmup_epochs=recipe.get("warmup", 1),
                seed=seed, dropout=recipe.get("dropout", 0.5),
                label_smoothing=recipe.get("ls", 0.0), device="cpu", num_threads=1,
            )  # fmt: skip
            result = train_and_evaluate(config, train_set, val_set, cfg,
                                        num_classes=data["num_classes"])  # fmt: skip
            tops.append(result.top1)
            curves.append([round(h["val_top1"]) for h in result.history if "val_top1" in h])
        seconds = (time.perf_counter() - start) / len(tops)
        print(f"{digest} table {rows[digest].top1:5.1f} | "
              + " ".join(f"{t:5.1f}" for t in tops)
              + f" | {seconds:5.1f} s | {curves}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
