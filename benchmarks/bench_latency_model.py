"""Predicted against measured latency: how far a latency table can be trusted, per mode and device.

Usage (from the repository root; quiet machine: nothing else running)::

    .venv/bin/python benchmarks/bench_latency_model.py --space i3d_r50 --input 1,3,8,224,224 \
        --mode eager --threads 2 --n-configs 100 --out runs/bench_latency_model
    .venv/bin/python benchmarks/bench_latency_model.py --speed     # predictor speed only

Per mode: builds (or resumes) the space's latency table with ``--calibrate`` whole networks
(``r3dnas latency-table``'s protocol), then draws ``--n-configs`` random networks of the space
(seed ``--seed``, none of them a calibration network), predicts each from the table and
measures it whole with ``runners.latency.measure.measure_latency`` (``--warmup`` + ``--repeats``
runs in 5 blocks). Reported: the fraction predicted within ±10% of measured, Spearman's rank
correlation of predicted vs measured, and that of GFLOPs vs measured (the baseline a table must
beat), the median |relative error|, and the measurements' median run-to-run CV (the noise
floor). Everything is resumable: rows are appended to ``<out>/rows.csv`` as they are measured
and a rerun skips what is there; ``<out>/summary.md`` is rewritten after every mode.
Layers and networks are timed beside the drift reference (``runners.latency.reference``; the
recorded value is ``LatencyResult.latency_ms``) unless ``--no-reference``; rows say which, and
the summary keeps the two apart. The issue's target (CPU, eager): >= 90% within ±10%,
Spearman >= 0.95 and above FLOPs'.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import random
import statistics
import sys
import time
from pathlib import Path

FIELDS = (
    "space", "mode", "device", "threads", "digest", "gflops", "predicted_ms", "measured_ms",
    "measured_cv", "rel_error", "reference",
)  # fmt: skip


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho (Pearson's r of the ranks, ties averaged)."""
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else float("nan")


def _reference(row: dict[str, str]) -> str:
    """Whether a row was timed beside the drift reference (rows from before it existed: no)."""
    return row.get("reference") or "False"


def _summary(rows: list[dict[str, str]]) -> str:
    groups: dict[tuple[str, str, str, str, str], list[dict[str, str]]] = {}
    for row in rows:
        key = (row["space"], row["mode"], row["device"], row["threads"], _reference(row))
        groups.setdefault(key, []).append(row)
    lines = [
        "| space | mode | device | threads | reference | n | within ±10% | Spearman predicted | "
        "Spearman GFLOPs | median abs error | median CV of measured |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (space, mode, device, threads, reference), group in sorted(groups.items()):
        measured = [float(r["measured_ms"]) for r in group]
        predicted = [float(r["predicted_ms"]) for r in group]
        gflops = [float(r["gflops"]) for r in group]
        errors = [abs(float(r["rel_error"])) for r in group]
        within = sum(e <= 0.10 for e in errors) / len(errors)
        lines.append(
            f"| {space} | {mode} | {device} | {threads} | {reference} | {len(group)} | "
            f"{within:.0%} | "
            f"{spearman(predicted, measured):.3f} | {spearman(gflops, measured):.3f} | "
            f"{statistics.median(errors):.1%} | "
            f"{statistics.median(float(r['measured_cv']) for r in group):.1%} |"
        )
    return "\n".join(lines)


def _retest(
    rows: list[dict[str, str]], configs: list, shape: tuple[int, ...], net_cfg: object, path: Path
) -> str:
    """Measure each network again, in reverse order, and compare with its first measurement.

    Why: no predictor can agree with a measurement better than the measurement agrees with
    itself. Timed minutes apart on the same idle machine, how often is a network within ±10% of
    its own first value, and how well do the two passes rank the networks?
    """
    from runners.latency.measure import measure_latency

    first = {r["digest"]: float(r["measured_ms"]) for r in rows}
    pairs: list[tuple[float, float]] = []
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["digest", "measured_ms", "remeasured_ms"])
        for config in reversed(configs):
            digest = config.digest()
            if digest not in first:
                continue
            again = measure_latency(config, shape, net_cfg).latency_ms  # type: ignore[arg-type]
            writer.writerow([digest, first[digest], f"{again:.6g}"])
            pairs.append((first[digest], again))
    if len(pairs) < 2:
        return "test-retest: too few networks"
    within = sum(abs(b - a) / a <= 0.10 for a, b in pairs) / len(pairs)
    rho = spearman([a for a, _ in pairs], [b for _, b in pairs])
    return (
        f"Test-retest (the same {len(pairs)} networks measured again, reverse order): "
        f"{within:.0%} within ±10% of their first measurement, Spearman {rho:.3f}."
    )


def _speed(space_name: str, shape: tuple[int, ...], n: int) -> None:
    from search_space.latency_model import LatencyTable, _clear_caches, predict_latency
    from search_space.space import InfeasibleConfig, load_space

    space = dataclasses.replace(load_space(space_name), input_shape=shape)
    rng = random.Random(0)
    configs = []
    while len(configs) < n:
        try:
            configs.append(
                space.config_from_params({d.name: rng.choice(d.values) for d in space.choices})
            )
        except InfeasibleConfig:
            continue
    from search_space.latency_model import layer_keys

    keys = {k for c in configs for k in layer_keys(c, shape)}
    table = LatencyTable(
        layers_ms=dict.fromkeys(keys, 1.0), device="-", threads=1, mode="eager",
        input_shape=shape,  # type: ignore[arg-type]
    )  # fmt: skip
    for label in ("cold", "warm"):
        if label == "cold":
            _clear_caches()
        t = time.perf_counter()
        for config in configs:
            predict_latency(config, table)
        rate = len(configs) / (time.perf_counter() - t)
        print(f"predict_latency {label}: {rate:,.0f} configurations/s ({len(configs)} configs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="default", help="a shipped space or a TOML file")
    parser.add_argument("--input", help="clip N,C,T,H,W (default: the space's)")
    parser.add_argument("--mode", default="eager", help="comma list: eager,compile,channels_last")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-configs", type=int, default=100)
    parser.add_argument("--calibrate", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per whole network")
    parser.add_argument(
        "--blocks", type=int,
        help="blocks per whole network, alternating with the reference's "
        "(default: runners.latency.stats.default_blocks)",
    )  # fmt: skip
    parser.add_argument("--layer-repeats", type=int, default=30, help="timed runs per layer")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the evaluated networks")
    parser.add_argument("--isolation", default="pause", choices=("none", "lock", "pause"))
    parser.add_argument("--out", default="runs/bench_latency_model")
    parser.add_argument("--table", help="use this table (one mode) instead of building one")
    parser.add_argument(
        "--no-reference", dest="reference", action="store_false",
        help="time without the drift reference (runners.latency.reference)",
    )  # fmt: skip
    parser.add_argument("--speed", action="store_true", help="only time the predictor")
    parser.add_argument(
        "--retest", action="store_true",
        help="measure every network a second time, in reverse order: the noise ceiling",
    )  # fmt: skip
    parser.add_argument("--speed-configs", type=int, default=10_000)
    args = parser.parse_args(argv)

    from search_space.shapes import parse_input_shape
    from search_space.space import load_space

    space = load_space(args.space)
    shape = parse_input_shape(args.input) if args.input else space.input_shape
    if args.speed:
        _speed(args.space, shape, args.speed_configs)
        return 0

    from runners.latency.measure import LatencyConfig, measure_latency
    from runners.latency.stats import default_blocks
    from runners.latency.table import build_latency_table, sample_configs
    from search_space.cost import cost
    from search_space.latency_model import LatencyTable, predict_latency

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.csv"
    rows: list[dict[str, str]] = []
    if rows_path.exists():
        with rows_path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    space = dataclasses.replace(space, input_shape=shape)
    name = space.name or Path(args.space).stem
    print(f"load average {os.getloadavg()[0]:.2f} (keep it below 0.5: timings measure load too)")
    for mode in [m.strip() for m in args.mode.split(",") if m.strip()]:
        layer_cfg = LatencyConfig(
            device=args.device, mode=mode, warmup=5, repeats=args.layer_repeats,
            threads=args.threads, isolation=args.isolation, reference=args.reference,
        )  # fmt: skip
        t0 = time.perf_counter()
        if args.table:
            table = LatencyTable.load(args.table)
        else:
            suffix = "-ref" if args.reference else ""
            table_path = out / f"table-{name}-{mode}-{args.device}-t{args.threads}{suffix}.json"
            table = build_latency_table(
                space, layer_cfg, calibrate=args.calibrate, seed=0, out=table_path,
                progress=lambda line: print(line, flush=True),
            )  # fmt: skip
        print(f"table: {table.describe()} ({time.perf_counter() - t0:.0f} s)", flush=True)
        net_cfg = layer_cfg.replace(
            warmup=args.warmup,
            repeats=args.repeats,
            blocks=args.blocks or default_blocks(args.repeats),
        )
        calibration = {c["digest"] for c in table.network_term.calibration}
        configs = sample_configs(space, args.n_configs, seed=args.seed, exclude=calibration)
        done = {(r["mode"], r["device"], r["threads"], _reference(r), r["digest"]) for r in rows}
        new_file = not rows_path.exists()
        with rows_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new_file:
                writer.writeheader()
            for i, config in enumerate(configs, start=1):
                digest = config.digest()
                if (mode, table.device, str(table.threads), str(args.reference), digest) in done:
                    continue
                predicted = predict_latency(config, table, shape)
                if predicted.missing:
                    print(f"  {digest}: table lacks {predicted.missing[0]!r}; skipped")
                    continue
                result = measure_latency(config, shape, net_cfg)
                error = (predicted.latency_ms - result.latency_ms) / result.latency_ms
                row = {
                    "space": name, "mode": mode, "device": result.device,
                    "threads": str(result.threads), "digest": digest,
                    "gflops": f"{cost(config, shape).gflops:.6g}",
                    "predicted_ms": f"{predicted.latency_ms:.6g}",
                    "measured_ms": f"{result.latency_ms:.6g}",
                    "reference": str(args.reference),
                    "measured_cv": f"{result.cv_of_median:.4g}",
                    "rel_error": f"{error:.4g}",
                }  # fmt: skip
                writer.writerow(row)
                f.flush()
                rows.append(row)
                print(
                    f"{mode} {i}/{len(configs)} {digest} predicted {predicted.latency_ms:8.3f} "
                    f"measured {result.latency_ms:8.3f} ms ({row['rel_error']})",
                    flush=True,
                )
        summary = _summary(rows)
        if args.retest:
            ours = [
                r for r in rows
                if r["mode"] == mode and r["device"] == table.device
                and _reference(r) == str(args.reference)
            ]  # fmt: skip
            summary += "\n\n" + _retest(ours, configs, shape, net_cfg, out / f"retest-{mode}.csv")
        (out / "summary.md").write_text(
            f"# bench_latency_model ({time.strftime('%Y-%m-%d %H:%M')})\n\n{summary}\n"
        )
        print(summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
