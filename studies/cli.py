"""The ``r3dnas`` command line.

Every subcommand imports its heavy libraries (torch, optuna, wandb, pandas, fvcore) inside its
handler, so ``r3dnas --help`` is instant and a test checks it imports none of them. An
:class:`~search_space.errors.R3dnasError` becomes one line on stderr and exit code 2; ``--debug``
shows the traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _version(args: argparse.Namespace) -> int:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("r3dnas")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        ours = "0+unknown"
    print(f"r3dnas {ours}")
    if args.verbose:
        for dist in ("torch", "mmcv-lite", "mmengine", "optuna", "wandb", "fvcore", "av"):
            try:
                print(f"  {dist} {version(dist)}")
            except PackageNotFoundError:
                print(f"  {dist} (not installed)")
    return 0


def _load_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The config named by ``--preset`` or read from ``--config FILE.json``."""
    from pathlib import Path

    from search_space import ConfigError, ResNet3dConfig, preset

    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"--config: file {args.config!r} not found")
        return ResNet3dConfig.from_json(path.read_text())
    return preset(args.preset)


def _shapes(args: argparse.Namespace) -> int:
    import torch

    from search_space import build_resnet3d, output_shapes

    config = _load_config(args)
    table = output_shapes(config, args.input)
    print(f"ResNet3d-{config.depth} ({args.config or args.preset}), shapes by inference:")
    print(table.format())
    if not args.no_forward:
        model = build_resnet3d(config).eval()
        with torch.inference_mode():
            out = model(torch.zeros(table.input_shape))
        outs = out if isinstance(out, tuple) else (out,)
        real = tuple(tuple(o.shape) for o in outs)
        verdict = "matches" if real == table.outputs else "DIFFERS from"
        print(f"forward output {' '.join('x'.join(map(str, s)) for s in real)} {verdict} inference")
        if real != table.outputs:
            return 1
    return 0


def _add_config_args(parser: argparse.ArgumentParser, *, default_input: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preset", default="seed_r50", help="preset name (default: seed_r50)")
    group.add_argument("--config", help="a ResNet3d JSON config (as `r3dnas export` writes)")
    parser.add_argument(
        "--input", default=default_input, help=f"input N,C,T,H,W (default {default_input})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r3dnas",
        description="Architecture search and ablations for mmaction2-exact 3D ResNets on video.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("version", help="print the version (and, with -v, library versions)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(handler=_version)

    p = sub.add_parser("shapes", help="print a ResNet3d's per-stage output shapes")
    _add_config_args(p, default_input="1,3,16,320,256")
    p.add_argument("--no-forward", action="store_true", help="skip the check by a real forward")
    p.set_defaults(handler=_shapes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return handler(args)
    except Exception as exc:
        # NOTE: looked up lazily so that `r3dnas version` need not import torch.
        errors = sys.modules.get("search_space.errors")
        if args.debug or errors is None or not isinstance(exc, errors.R3dnasError):
            raise
        print(f"r3dnas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"r3dnas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
