"""The ``r3dnas`` command line.

Every subcommand imports its heavy libraries (torch, optuna, wandb, pandas, fvcore) inside its
handler, so ``r3dnas --help`` is instant and a test checks it imports none of them.

Exit codes, the same for every command: 0 success; 1 a check or a run failed (trials short of
the budget, a reproduction mismatch, an unreadable video, shapes that differ); 2 a usage error
(a bad argument, an unknown spec, study or factor, missing data), found before anything is
written; 130 interrupted. An :class:`~search_space.errors.R3dnasError` is one line on stderr
(``--debug`` shows the traceback); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from studies.benchmark.latency_flags import add_latency_args, latency_config
from studies.core.defaults import RUNS_DIR
from studies.run.worker_args import (
    add_heartbeat_args,
    add_run_args,
    add_study_args,
    add_worker_args,
)

if TYPE_CHECKING:
    from studies.results.pareto import TrialChoice

Handler = Callable[[argparse.Namespace], int]
Subparsers = (
    argparse._SubParsersAction
)  # NOTE: argparse's type of add_subparsers(); no public name


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
        from search_space._files import read_text

        path = Path(args.config)
        if not path.exists():
            raise ConfigError(f"--config: file {args.config!r} not found")
        return ResNet3dConfig.from_json(
            read_text(path, failure="--config: cannot read {path}: {reason}")
        )
    return preset(args.preset)


def _shapes(args: argparse.Namespace) -> int:
    import math

    import torch

    from search_space import ConfigError, build_resnet3d, output_shapes

    config = _load_config(args)
    table = output_shapes(config, args.input)
    print(f"ResNet3d-{config.depth} ({args.config or args.preset}), shapes by inference:")
    print(table.format())
    if not args.no_forward:
        model = build_resnet3d(config).eval()
        try:
            with torch.inference_mode():
                out = model(torch.zeros(table.input_shape))
        except (RuntimeError, MemoryError) as exc:
            if not isinstance(exc, MemoryError) and "alloc" not in str(exc):
                raise
            gib = math.prod(table.input_shape) * 4 / 2**30
            raise ConfigError(
                f"--input {'x'.join(map(str, table.input_shape))}: the forward check does not fit "
                f"in memory ({gib:.3g} GiB for the input alone); add --no-forward for the shapes "
                "by inference only"
            ) from None
        outs = out if isinstance(out, tuple) else (out,)
        real = tuple(tuple(o.shape) for o in outs)
        verdict = "matches" if real == table.outputs else "DIFFERS from"
        print(
            f"forward output {' '.join('x'.join(map(str, s)) for s in real)} {verdict} inference"
        )
        if real != table.outputs:
            return 1
    return 0


def _cost(args: argparse.Namespace) -> int:
    from search_space.cost import cost

    config = _load_config(args)
    result = cost(config, args.input, include_head=args.head, num_classes=args.num_classes)
    print(result.format())
    return 0


def _launch(args: argparse.Namespace) -> int:
    from studies.run.launch import launch
    from studies.study.spec import load_spec

    result = launch(
        load_spec(args.spec, overrides=args.set),
        study_name=args.study,
        storage=args.storage,
        n_trials=args.n_trials,
        wandb_mode=args.wandb,
        progress=not args.quiet,
        runs_dir=_runs_dir(args),
        workers=args.workers,
        heartbeat_s=args.heartbeat,
        grace_s=args.grace,
    )
    print(
        f"{result.completed} complete, {result.failed} failed, {result.infeasible} infeasible "
        f"in {result.wall_s:.1f} s"
    )
    return _exit("launch", result.exit_code, result.completed, result.n_trials, result.stopped)


def _exit(command: str, code: int, completed: int, n_trials: int, stopped: str) -> int:
    """The exit code of a command that runs trials; a failed run says how far it got."""
    if code == 1:
        print(f"r3dnas {command}: {completed} of {n_trials} trials complete "
              f"({stopped.replace('_', ' ')})", file=sys.stderr)  # fmt: skip
    return code


def _data(args: argparse.Namespace) -> int:
    import json

    from runners.data.check import inspect_data
    from search_space import ConfigError
    from studies.study.spec import load_spec

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be a positive int; got {args.workers}")
    spec = load_spec(args.spec, overrides=args.set)
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    report = inspect_data(spec.data, workers=workers, progress=not args.quiet)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
    return 0 if report.ok else 1


def _worker(args: argparse.Namespace) -> int:
    from studies.run.worker_args import WorkerArgs
    from studies.run.workers import run_worker

    result = run_worker(WorkerArgs.from_namespace(args))
    print(f"worker done: the study has {result.completed} of {result.n_trials} completed trials")
    if result.stopped == "interrupted":
        print("r3dnas worker: interrupted", file=sys.stderr)
    return result.exit_code


def _ablate(args: argparse.Namespace) -> int:
    from studies.run.ablation import ablate
    from studies.study.spec import load_spec

    result = ablate(
        load_spec(args.spec or "inflation_ablation", overrides=args.set),
        factors=args.factor,
        seeds=args.seeds,
        study_name=args.study,
        storage=args.storage,
        wandb_mode=args.wandb,
        runs_dir=_runs_dir(args),
        out_dir=args.out,
        progress=not args.quiet,
        workers=args.workers,
    )
    print(result.format())
    return _exit("ablate", result.exit_code, len(result.trials), result.n_trials, result.stopped)


def _pareto(args: argparse.Namespace) -> int:
    from studies.results.pareto import check_plot_path, format_pareto, pareto, plot_pareto
    from studies.study.storage import resolve_study

    if args.plot is not None:
        check_plot_path(args.plot)
    study = resolve_study(args.study, storage=args.storage, runs_dir=_runs_dir(args))
    objectives = args.objectives.split(",") if args.objectives else None
    front = pareto(study, objectives=objectives)
    text = format_pareto(front, fmt=args.format, wide=args.wide)
    # NOTE: plotted before the front is printed, so that a front it cannot plot is an error alone
    plot = plot_pareto(front, study, args.plot) if args.plot is not None else None
    print(text)
    if plot is not None:
        print(f"plot written to {plot}", file=sys.stderr)
    return 0


def _trial_choice(args: argparse.Namespace) -> TrialChoice:
    """The trial-choice flags of ``export`` and ``reproduce``; their API functions resolve the
    study themselves, after their own usage checks."""
    return {
        "storage": args.storage,
        "runs_dir": args.runs_dir,
        "trial": args.trial,
        "pick": args.pick,
    }


def _export(args: argparse.Namespace) -> int:
    from studies.results.export import export

    text = export(
        args.study, fmt=args.format, out=args.out, decoder=args.decoder, **_trial_choice(args)
    )
    if args.out:
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from studies.results.reproduce import ReproductionMismatch, reproduce

    try:
        result = reproduce(
            args.study, retrain=args.retrain, latency=not args.no_latency, **_trial_choice(args)
        )
    except ReproductionMismatch as exc:  # a check that failed, not a usage error
        print(f"r3dnas reproduce: {exc}", file=sys.stderr)
        return 1
    print(result.format())
    print(
        "FLOPs and params reproduce exactly" + (", top1 too" if "top1" in result.measured else "")
    )
    return 0


def _latency_table(args: argparse.Namespace) -> int:
    from runners.latency.table import build_latency_table
    from search_space.space import load_space
    from studies.benchmark.latency_table import format_table_summary

    # NOTE: resumes a partial table at --out measured under the same conditions. Like every
    # command here it maps its flags to one function's keywords (alike in shape, and only in
    # shape, to WorkerArgs.from_namespace).
    table = build_latency_table(
        load_space(args.space),
        latency_config(args, device=args.device, mode=args.mode),
        input_shape=args.input,
        calibrate=args.calibrate,
        seed=args.seed,
        include_head=args.head,
        num_classes=args.num_classes,
        out=args.out,
        progress=None if args.quiet else (lambda line: print(line, flush=True)),
    )
    print(format_table_summary(table, args.out))
    return 0


def _table(args: argparse.Namespace) -> int:
    """``r3dnas table build|latency|export|retrain``: the tabular benchmark's life cycle."""
    from search_space.errors import ConfigError
    from studies.benchmark import table

    _check_positive(args, "seeds", "workers", "limit", "threads", "repeats")
    if args.action == "retrain":
        if args.table is None or args.digest is None:
            raise ConfigError("table retrain needs --table CSV and --digest (and --seed)")
        retrained = table.retrain_row(
            args.table, digest=args.digest, seed=args.seed, threads=args.threads
        )
        print(retrained.format())
        return 0 if retrained.verdict.ok else 1
    if args.action == "build":
        from studies.study.spec import load_spec

        if args.spec is None:  # NOTE: no default: a whole space x seeds is hours of training
            raise ConfigError(
                "table build needs a spec: a shipped name (e.g. bench_v2) or a TOML file; it "
                "trains every architecture of its space with --seeds seeds"
            )
        result = table.build_table(
            load_spec(args.spec, overrides=args.set),
            seeds=args.seeds,
            workers=args.workers,
            study_name=args.study,
            storage=args.storage,
            runs_dir=_runs_dir(args),
            progress=not args.quiet,
            limit=args.limit,
        )
        print(f"table study {result.study_name!r}: {len(result.trials)} of {result.n_trials} "
              "trials complete")  # fmt: skip
        return result.exit_code
    from studies.study.storage import resolve_study

    study = resolve_study(args.study, storage=args.storage, runs_dir=_runs_dir(args))
    if args.action == "latency":
        timed = table.measure_table_latency(
            study,
            latency=latency_config(args, device="cpu", mode="eager"),
            limit=args.limit,
            on_progress=None if args.quiet else table.print_progress,
        )
        print(f"table study {study.study_name!r}: latency of {len(timed)} architectures")
        return 0
    if args.out is None:
        raise ConfigError("table export needs --out FILE.csv")
    extra = [resolve_study(name, storage=args.storage, runs_dir=_runs_dir(args))
             for name in args.with_studies]  # fmt: skip
    csv_path, spec_path = table.export_table(study, args.out, extra=extra)
    print(f"wrote {csv_path} and {spec_path}")
    return 0


def _score(args: argparse.Namespace) -> int:
    """``r3dnas score SPEC``: rank a space's architectures by training-free scores."""
    from runners.scores.training_free import parse_score_names
    from search_space._files import output_file
    from search_space.errors import ConfigError
    from studies.benchmark.score import score_space
    from studies.study.spec import load_spec

    _check_positive(args, "sample", "threads", "top", "batch_size")
    names = parse_score_names(args.scores)  # NOTE: a bad name fails before any work
    if args.rank_by is not None and args.rank_by not in names:
        raise ConfigError(f"--rank-by must be one of {', '.join(names)}; got {args.rank_by!r}")
    if args.out is not None:
        output_file(args.out, option="--out")  # NOTE: written after the scoring: checked before
    spec = load_spec(args.spec, overrides=args.set)
    result = score_space(spec, scores=names, sample=args.sample, seed=args.seed,
                         batch_size=args.batch_size, threads=args.threads,
                         progress=not args.quiet)  # fmt: skip
    print(result.format(by=args.rank_by, top=args.top))
    if args.out is not None:
        print(f"wrote {result.write_csv(args.out)}", file=sys.stderr)
    return 0


def _check_positive(args: argparse.Namespace, *names: str) -> None:
    """A usage error (one line, exit 2) for an option given as 0 or less, before any work."""
    from search_space.errors import ConfigError

    for name in names:
        if (value := getattr(args, name)) is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive int; got {value}")


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
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks for user errors and failed trials"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_network_commands(sub)
    _add_study_commands(sub)
    _add_result_commands(sub)
    _add_benchmark_commands(sub)
    return parser


def _add_network_commands(sub: Subparsers) -> None:
    """Commands about one network: version, shapes, cost."""
    p = sub.add_parser("version", help="print the version (and, with -v, library versions)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(handler=_version)

    p = sub.add_parser("shapes", help="print a ResNet3d's per-stage output shapes")
    _add_config_args(p, default_input="1,3,16,320,256")
    p.add_argument("--no-forward", action="store_true", help="skip the check by a real forward")
    p.set_defaults(handler=_shapes)

    p = sub.add_parser("cost", help="analytic GFLOPs, params and shapes of a configuration")
    _add_config_args(p, default_input="1,3,32,256,256")
    p.add_argument("--head", action="store_true", help="include the I3D classification head")
    p.add_argument("--num-classes", type=int, default=400, help="head classes (default 400)")
    p.set_defaults(handler=_cost)


def _add_study_commands(sub: Subparsers) -> None:
    """Commands that run trials or check what they need: launch, data, worker, ablate."""
    p = sub.add_parser("launch", help="run or resume a study (default: the CPU default study)")
    p.add_argument("spec", nargs="?", help="a shipped spec name or a TOML file")
    add_study_args(p)
    p.add_argument("--n-trials", type=int, help="completed trials wanted (overrides the spec)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    _add_set_arg(p)
    add_run_args(p)
    add_heartbeat_args(p)
    p.set_defaults(handler=_launch)

    p = sub.add_parser(
        "data", help="check a spec's videos before a study: counts, labels, frames, bad files"
    )
    p.add_argument("spec", nargs="?", help="a shipped spec name or a TOML file")
    p.add_argument("--workers", type=int, help="probing processes (default: all cores)")
    p.add_argument("--format", default="table", choices=("table", "json"))
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_set_arg(p)
    p.set_defaults(handler=_data)

    p = sub.add_parser("worker", help="join an existing study and run trials until it is done")
    add_worker_args(p)
    p.set_defaults(handler=_worker)

    p = sub.add_parser("ablate", help="full factorial over named factors, K seeds each")
    p.add_argument("spec", nargs="?", help="a shipped spec name or a TOML file")
    p.add_argument("--factor", action="append", required=True, help="a space parameter (repeat)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per grid point (default 1)")
    p.add_argument("--out", help="folder for the CSV and PNG (default runs/<study>)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    _add_set_arg(p)
    add_study_args(p)
    add_run_args(p)
    p.set_defaults(handler=_ablate)


def _add_result_commands(sub: Subparsers) -> None:
    """Commands over a study's results: pareto, export, reproduce."""
    p = sub.add_parser("pareto", help="the Pareto front of a study")
    add_study_args(p)
    p.add_argument("--objectives", help="comma-separated subset of the study's objectives")
    p.add_argument("--format", default="table", choices=("table", "csv", "json", "markdown"))
    p.add_argument("--plot", metavar="FILE.png",
                   help="also write a plot of the front (.png, .pdf, .svg, ...)")  # fmt: skip
    p.add_argument("--wide", action="store_true",
                   help="table: architecture, digest and state as columns")  # fmt: skip
    p.set_defaults(handler=_pareto)

    for name, handler, text in (
        ("export", _export, "export a trial's network (JSON, mmaction2 config) or its weights"),
        ("reproduce", _reproduce, "rebuild a trial's network and re-measure it"),
    ):
        p = sub.add_parser(name, help=text)
        add_study_args(p)
        which = p.add_mutually_exclusive_group()
        which.add_argument("--trial", type=int, help="trial number")
        which.add_argument("--pick", choices=("top1", "knee", "min-latency"),
                           help="pick from the Pareto front (default knee)")  # fmt: skip
        if name == "export":
            p.add_argument("--format", default="json", choices=("json", "mmaction2", "checkpoint"))
            p.add_argument("--out", help="write to this file instead of stdout")
            p.add_argument(
                "--decoder", default="auto", choices=("auto", "pyav", "decord"),
                help="mmaction2 format: video decoder of the pipelines (auto: PyAV, as r3dnas; "
                "Decord when target_fps needs the frame rate)",
            )  # fmt: skip
        else:
            p.add_argument("--retrain", action="store_true", help="train again with the seed")
            p.add_argument("--no-latency", action="store_true", help="skip re-measuring latency")
        p.set_defaults(handler=handler)


def _add_benchmark_commands(sub: Subparsers) -> None:
    """Tools for judging search methods: latency-table, table, score."""
    p = sub.add_parser(
        "latency-table",
        help="measure every distinct layer of a space once, for predicted latency",
    )
    p.add_argument("--space", default="default", help="a shipped space or a TOML file")
    p.add_argument("--out", required=True, help="the table's JSON file (resumed if partial)")
    p.add_argument("--input", help="clip N,C,T,H,W (default: the space's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--mode", default="eager", choices=("eager", "channels_last", "compile"))
    # NOTE: per layer: a layer is short, so fewer runs than a whole network's table latency.
    add_latency_args(p, threads=None, warmup=5, repeats=30, what="per layer: ")
    p.add_argument(
        "--calibrate", type=int, default=10,
        help="whole networks measured to fit the per-network term (default 10)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration networks")
    p.add_argument("--head", action="store_true", help="also time the I3D head")
    p.add_argument("--num-classes", type=int, default=400, help="head classes (default 400)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-layer lines")
    p.set_defaults(handler=_latency_table)

    p = sub.add_parser(
        "table",
        help="a tabular benchmark: build (train every architecture x seed), latency, export, "
        "retrain a row",
    )
    p.add_argument("action", choices=("build", "latency", "export", "retrain"))
    p.add_argument("spec", nargs="?", help="build: a shipped spec name or a TOML file")
    p.add_argument("--seeds", type=int, default=2, help="build: seeds per architecture (2)")
    p.add_argument("--workers", type=int, default=1, help="build: local worker processes (1)")
    p.add_argument(
        "--limit", type=int, help="build: only this many architectures (a pilot); latency: as many"
    )
    # NOTE: retrain takes --threads too: a count other than the table's is another setup.
    add_latency_args(p, threads=1, warmup=5, repeats=100, what="latency, retrain: ")
    p.add_argument("--out", help="export: the table CSV (its spec goes beside it as .toml)")
    p.add_argument("--with", dest="with_studies", action="append", default=[], metavar="STUDY",
                   help="export: also the rows of this study (more seeds of the same networks, "
                   "same spec but [train] seed)")  # fmt: skip
    p.add_argument("--table", help="retrain: a table CSV")
    p.add_argument("--digest", help="retrain: the architecture's digest (or a unique prefix)")
    p.add_argument("--seed", type=int, default=0, help="retrain: the row's seed (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    _add_set_arg(p)
    add_study_args(p)
    p.set_defaults(handler=_table)

    p = sub.add_parser("score", help="rank a space's architectures by training-free scores")
    p.add_argument("spec", nargs="?", help="a shipped spec name or a TOML file")
    p.add_argument("--scores", default="all", help="comma-separated score names (default all)")
    p.add_argument("--rank-by", help="score to rank by (default the first)")
    p.add_argument("--sample", type=int, help="score a random sample of this many architectures")
    p.add_argument("--seed", type=int, help="initialisation and sampling seed (default train)")
    p.add_argument("--batch-size", type=int, help="clips in the batch (default [train])")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--top", type=int, help="print only the best N")
    p.add_argument("--out", help="also write every score as CSV")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_set_arg(p)
    p.set_defaults(handler=_score)


def _runs_dir(args: argparse.Namespace) -> str:
    return str(args.runs_dir or RUNS_DIR)


def _check_runs_dir(args: argparse.Namespace) -> None:
    """``--runs-dir`` of any command that takes it, as a folder, before its handler runs: a
    file there failed a launch with a traceback and left a query saying "no study in FILE/"."""
    if getattr(args, "runs_dir", None) is not None:
        from search_space._files import output_dir

        output_dir(args.runs_dir, option="--runs-dir")


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM ends a command as Ctrl-C does (one line, exit 130) from its first step.

    Why: the run loop handles both signals once trials run, but a worker stopped while it was
    still importing torch or building its data died of the signal (exit -15, no word).
    """
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread: the signal is not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _add_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a spec key, e.g. --set train.epochs=1 (repeat; values are TOML)",
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    if args.debug:  # NOTE: also for the worker processes a command starts
        from studies.run.trial_log import DEBUG_ENV

        os.environ[DEBUG_ENV] = "1"
    try:
        _check_runs_dir(args)
        with _sigterm_as_ctrl_c():
            return handler(args)
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        # NOTE: looked up lazily so that `r3dnas version` need not import torch.
        errors = sys.modules.get("search_space.errors")
        interrupts = sys.modules.get("studies.run.interrupts")
        if not args.debug and interrupts is not None and interrupts.interrupt_requested():
            # a library's own clean-up failing after Ctrl-C / SIGTERM: the interrupt is the news
            print(f"r3dnas {args.command}: interrupted ({type(exc).__name__} while stopping)",
                  file=sys.stderr)  # fmt: skip
            return 130
        if args.debug or errors is None or not isinstance(exc, errors.R3dnasError):
            raise
        print(f"r3dnas {args.command}: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, errors.DataError) else 2
    except KeyboardInterrupt:
        print(f"r3dnas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
