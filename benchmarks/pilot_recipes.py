"""Pilot a training recipe for the benchmark table: a few of its architectures, two seeds each.

    python benchmarks/pilot_recipes.py '{"ntrain": 1536, "epochs": 4, "noise": 2.0}'
    python benchmarks/pilot_recipes.py '{"base": {"base_channels": 16}, "seeds": [0, 1, 2]}'
    python benchmarks/pilot_recipes.py '{"fresh": true, "classes": 16, "threads": [2]}' \
        --out pilots.jsonl

Why: a new recipe means a new table build (hours), and the table must be graded *and*
reproducible between seeds; a pilot of a handful of architectures says which recipe is worth a
build (benchmarks/README.md keeps the results). The architectures come from the committed table
(``--table``); keys of the JSON argument (all optional): ``classes``, ``noise``, ``ntrain``,
``epochs``, ``warmup``, ``lr``, ``bs``, ``opt``, ``wd``, ``dropout``, ``ls`` (label smoothing),
``transition`` (``[data] transition``), ``noise_start`` and ``ramp`` (``[data] noise_start``,
``noise_ramp_epochs``), ``val`` (validation clips, 384), ``seeds``, ``base``
(ResNet3d arguments replaced in every architecture), ``digests``, ``fresh`` (``[data]
fresh_clips``: new training clips every epoch) and ``threads`` (thread counts to
retrain the first seed with: the cheap proxy of another CPU type). Prints, per architecture: the
table's top-1, each seed's final top-1, the final epoch's running training top-1 (the
train-vs-val gap; with fresh clips those clips were unseen), top-1 under the other thread counts,
seconds per training and the per-epoch validation curves; ``--out`` appends the same as JSON
lines, and ``--summary FILE...`` prints each recipe's seed gaps, spread, train-vs-val gap and
thread differences from such files.
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
        "ls", "seeds", "base", "digests", "fresh", "threads", "transition", "val",
        "noise_start", "ramp"}  # fmt: skip


def summary(paths: list[str]) -> None:
    """Per recipe (JSON of its keys): seed gaps, spread, train-vs-val gap, thread differences."""
    import statistics as st

    recipes: dict[str, list[dict]] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            keys = {k: v for k, v in row["recipe"].items() if k not in ("digests", "threads")}
            recipes.setdefault(json.dumps(keys, sort_keys=True), []).append(row)
    for recipe, rows in recipes.items():
        gaps = [max(r["top1"]) - min(r["top1"]) for r in rows]
        means = [st.mean(r["top1"]) for r in rows]
        # NOTE: the root mean square, not the std, of (s0 - s1) / sqrt 2: seeds are exchangeable,
        # so the mean difference is 0, and a pilot has too few networks to estimate it.
        sd = st.mean([(r["top1"][0] - r["top1"][1]) ** 2 / 2 for r in rows]) ** 0.5
        train_gap = [t - v for r in rows for t, v in zip(r["train_top1"], r["top1"], strict=True)]
        threads = [abs(t - r["top1"][0]) for r in rows for t in r["threads_top1"].values()]
        seconds = st.mean(r.get("cpu_s", r["seconds"]) for r in rows)
        spread = f"mean {st.mean(threads):.1f} max {max(threads):.1f}" if threads else "-"
        print(f"{recipe}: {len(rows)} networks, {seconds:.0f} s/training | seed gap mean "
              f"{st.mean(gaps):.1f} max {max(gaps):.1f}, seed sd (rms) {sd:.1f} | mean top-1 "
              f"{min(means):.1f}-{max(means):.1f} (sd {st.pstdev(means):.1f}) | train-val "
              f"{st.mean(train_gap):+.1f} | threads |diff| "
              + spread)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", nargs="?", default="{}", help="JSON of recipe keys")
    parser.add_argument("--table", default="benchmarks/tables/bench_table.csv")
    parser.add_argument("--space", help="take the digests from this search space instead")
    parser.add_argument("--out", help="append one JSON line per architecture to this file")
    parser.add_argument("--summary", nargs="+", metavar="FILE", help="summarise --out files")
    args = parser.parse_args()
    if args.summary:
        summary(args.summary)
        return 0
    try:
        recipe = json.loads(args.recipe)
    except json.JSONDecodeError as exc:
        parser.error(f"recipe: not JSON ({exc})")
    if not isinstance(recipe, dict) or set(recipe) - KEYS:
        unknown = sorted(set(recipe) - KEYS) if isinstance(recipe, dict) else recipe
        parser.error(f"recipe: unknown keys {unknown}; allowed: {', '.join(sorted(KEYS))}")

    from runners.data.datasets import DataConfig, build_datasets
    from runners.scores.tabular import BenchmarkTable
    from runners.training.accuracy import train_and_evaluate
    from runners.training.config import TrainConfig
    from search_space.config import ResNet3dConfig

    configs: dict[str, dict] = {}
    stored: dict[str, float] = {}
    if args.space:
        from search_space.canonical import canonicalize
        from search_space.space import load_space

        space = load_space(args.space)
        for point in space.grid(space.param_names()):
            config = canonicalize(space.config_from_params(point))
            configs.setdefault(config.digest(), config.to_dict())
    else:
        for row in BenchmarkTable.load(args.table).rows:
            configs[row.digest], stored[row.digest] = row.config, row.top1
    data = DataConfig(kind="motion_events", num_classes=recipe.get("classes", 4), clip_len=16,
                      resolution=32, num_train_clips=recipe.get("ntrain", 512),
                      num_val_clips=recipe.get("val", 384), noise=recipe.get("noise", 2.0),
                      fresh_clips=recipe.get("fresh", False),
                      transition=recipe.get("transition", 0.0),
                      noise_start=recipe.get("noise_start"),
                      noise_ramp_epochs=recipe.get("ramp", 0), seed=0)  # fmt: skip
    # NOTE: the product's own datasets, so a pilot of fresh clips runs what a build will run.
    train_set, val_set = build_datasets(data)
    for split in (train_set, val_set):
        if hasattr(split, "materialize"):
            split.materialize()

    def train(config: ResNet3dConfig, seed: int, threads: int) -> tuple[float, list, float]:
        cfg = TrainConfig(
            epochs=recipe.get("epochs", 8), batch_size=recipe.get("bs", 16),
            optimizer=recipe.get("opt", "adamw"), lr=recipe.get("lr", 0.004),
            weight_decay=recipe.get("wd", 0.01), warmup_epochs=recipe.get("warmup", 1),
            seed=seed, dropout=recipe.get("dropout", 0.5),
            label_smoothing=recipe.get("ls", 0.0), device="cpu", num_threads=threads,
        )  # fmt: skip
        # NOTE: every training builds its own loader, so a fresh-clips sampler starts at epoch 0.
        result = train_and_evaluate(config, train_set, val_set, cfg,
                                    num_classes=data.num_classes)  # fmt: skip
        return result.top1, result.history, result.train_s

    for digest in recipe.get("digests") or DIGESTS:
        if digest not in configs:
            print(f"{digest}: not in {args.space or args.table}; skipped")
            continue
        config = ResNet3dConfig.from_dict({**configs[digest], **recipe.get("base", {})})
        tops, curves, train_tops, seconds, cpu = [], [], [], [], []
        for seed in recipe.get("seeds", [0, 1]):
            start, start_cpu = time.perf_counter(), time.process_time()
            top1, history, _ = train(config, seed, 1)
            seconds.append(time.perf_counter() - start)
            # NOTE: one thread, so CPU seconds are the wall time on an idle core (others may
            # share the machine while pilots run).
            cpu.append(time.process_time() - start_cpu)
            tops.append(top1)
            train_tops.append(history[-1]["train_top1"])
            curves.append([round(h["val_top1"]) for h in history if h["val_top1"] is not None])
        first = recipe.get("seeds", [0, 1])[0]
        threads = {n: train(config, first, n)[0] for n in recipe.get("threads", [])}
        mean_s, cpu_s = sum(seconds) / len(seconds), sum(cpu) / len(cpu)
        print(f"{digest} table {stored.get(digest, float('nan')):5.1f} | "
              + " ".join(f"{t:5.1f}" for t in tops)
              + " | train " + " ".join(f"{t:5.1f}" for t in train_tops)
              + "".join(f" | {n} threads {t:5.1f}" for n, t in threads.items())
              + f" | {mean_s:5.1f} s ({cpu_s:.1f} s CPU) | {curves}", flush=True)  # fmt: skip
        if args.out:
            line = {"recipe": recipe, "digest": digest, "top1": tops, "train_top1": train_tops,
                    "threads_top1": {str(n): t for n, t in threads.items()},
                    "seconds": mean_s, "cpu_s": cpu_s, "curves": curves}  # fmt: skip
            with open(args.out, "a") as fh:
                fh.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
