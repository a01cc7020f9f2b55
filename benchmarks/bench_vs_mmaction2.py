"""Our ResNet3d against mmaction2's on the same configuration and weights (CPU).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_vs_mmaction2.py                      # i3d_r50, 1x3x8x112x112
    .venv/bin/python benchmarks/bench_vs_mmaction2.py --preset slowonly_r50 --repeats 80

Both networks are built from the same keyword arguments and load the same ``state_dict`` (so
both run the same kernels on the same numbers; the outputs are checked to be equal first),
and each is timed with ``time.perf_counter_ns`` at the same thread count:

* forward: eval mode under ``torch.inference_mode()``;
* forward+backward: train mode, ``out.sum().backward()`` (gradients are cleared outside the
  timed region).

Runs are interleaved to cancel drift and other load on the machine: repetition ``i`` runs ours
then theirs when ``i`` is even and theirs then ours when odd. The ratio ours/theirs is given as the
ratio of the two medians and as the median of the per-repetition paired ratios with a bootstrap
95% interval. The target is at most 1.03: the same kernels, nothing added on top. ``--control``
adds an A/A row (ours against a second copy of ours, "theirs" column): how far from 1.0 the
ratio strays with identical code.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from search_space import ResNet3d, build_resnet3d
from search_space.presets import preset, preset_names
from search_space.shapes import output_shapes, parse_input_shape

# NOTE: appended after the project imports: tests/ holds folders named like our packages
# (tests/search_space), which would otherwise shadow an editable install as namespace packages.
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))

from mmaction_oracle import load_reference  # noqa: E402


def _forward(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            model(x)

    return run


def _forward_backward(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        out = model(x)
        out = out if isinstance(out, torch.Tensor) else out[-1]
        out.sum().backward()

    return run


def _interleaved(
    ours: Callable[[], None],
    theirs: Callable[[], None],
    *,
    warmup: int,
    repeats: int,
    before: Callable[[], None] = lambda: None,
) -> tuple[list[float], list[float]]:
    """Per-repetition milliseconds of each, alternating which one goes first."""

    def timed(fn: Callable[[], None]) -> float:
        before()
        start = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - start) / 1e6

    for _ in range(warmup):
        timed(ours)
        timed(theirs)
    ours_ms, theirs_ms = [], []
    gc.disable()
    try:
        for i in range(repeats):
            if i % 2 == 0:
                ours_ms.append(timed(ours))
                theirs_ms.append(timed(theirs))
            else:
                theirs_ms.append(timed(theirs))
                ours_ms.append(timed(ours))
    finally:
        gc.enable()
    return ours_ms, theirs_ms


def _report(name: str, ours_ms: list[float], theirs_ms: list[float]) -> None:
    ratios = [a / b for a, b in zip(ours_ms, theirs_ms, strict=True)]
    rng = random.Random(0)
    boot = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    low, high = boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]
    ours_med, theirs_med = statistics.median(ours_ms), statistics.median(theirs_ms)
    print(
        f"{name:<18}{ours_med:>10.1f}{theirs_med:>14.1f}{ours_med / theirs_med:>15.3f}"
        f"{statistics.median(ratios):>14.3f}  [{low:.3f}, {high:.3f}]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="i3d_r50", choices=preset_names())
    parser.add_argument("--input-shape", default="1x3x8x112x112")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument(
        "--base-channels",
        type=int,
        help="override the preset's width; a tiny width on a tiny clip exposes per-module "
        "Python overhead, which the real sizes hide behind the convolutions",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="also time ours against a second copy of ours (A/A): the noise floor of the ratio",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    config = preset(args.preset)
    if args.base_channels is not None:
        config = config.replace(base_channels=args.base_channels)
    shape = parse_input_shape(args.input_shape)
    output_shapes(config, shape)  # a clip too small for the network: ConfigError, not a crash
    kwargs = config.to_dict()
    torch.manual_seed(0)
    # NOTE: both networks are built the same way and get the same weights by load_state_dict
    # from a third one: the freshly initialised network itself ran ~1% slower than a copy of it
    # on tiny configs here (ours vs ours), an allocation effect that is not the code's.
    weights = build_resnet3d(config).state_dict()
    ours = ResNet3d(**kwargs)
    ours.load_state_dict(weights)
    theirs = load_reference().ResNet3d(**kwargs)
    theirs.load_state_dict(weights)
    copy = ResNet3d(**kwargs) if args.control else None
    if copy is not None:
        copy.load_state_dict(weights)
        copy.eval()
    del weights
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    ours.eval()
    theirs.eval()
    with torch.inference_mode():
        same = torch.equal(ours(x), theirs(x))
    print(
        f"{args.preset} (base_channels {config.base_channels}) at {'x'.join(map(str, shape))}, "
        f"{torch.get_num_threads()} threads, "
        f"torch {torch.__version__}; eval outputs identical: {same}"
    )
    if not same:
        print("the two networks disagree; the comparison would be meaningless", file=sys.stderr)
        return 1

    print(
        f"\n{'':<18}{'ours ms':>10}{'mmaction2 ms':>14}{'ratio medians':>15}"
        f"{'paired ratio':>14}  95% bootstrap"
    )
    fwd = _interleaved(
        _forward(ours, x), _forward(theirs, x), warmup=args.warmup, repeats=args.repeats
    )
    _report("forward", *fwd)
    if copy is not None:
        aa = _interleaved(
            _forward(ours, x), _forward(copy, x), warmup=args.warmup, repeats=args.repeats
        )
        _report("forward A/A", *aa)

    ours.train()
    theirs.train()

    def clear_grads() -> None:
        ours.zero_grad(set_to_none=True)
        theirs.zero_grad(set_to_none=True)
        if copy is not None:
            copy.zero_grad(set_to_none=True)

    fwd_bwd = _interleaved(
        _forward_backward(ours, x),
        _forward_backward(theirs, x),
        warmup=args.warmup,
        repeats=args.repeats,
        before=clear_grads,
    )
    _report("forward+backward", *fwd_bwd)
    if copy is not None:
        copy.train()
        aa = _interleaved(
            _forward_backward(ours, x),
            _forward_backward(copy, x),
            warmup=args.warmup,
            repeats=args.repeats,
            before=clear_grads,
        )
        _report("fwd+bwd A/A", *aa)
    return 0


if __name__ == "__main__":
    sys.exit(main())
