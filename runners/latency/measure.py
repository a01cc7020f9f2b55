"""Latency runner: how long one clip takes through a ResNet3d, measured honestly.

A number without its conditions is useless, so every :class:`LatencyResult` carries the mode,
the device name, the CPU thread count, the library versions and (for ``compile``) the compile
time beside the milliseconds.

Protocol (one call of :func:`measure_model_latency`):

1. Prepare (:func:`prepare_model`): eval mode, move to the device, optional channels_last_3d or
   ``torch.compile`` (on CPU with inductor freezing, which constant-folds the weights and lets
   inductor call oneDNN convolutions; eager's 3D conv path is several times slower there). The
   CPU thread count is fixed with ``torch.set_num_threads``; everything global is restored
   afterwards.
2. Under ``torch.inference_mode()``: one untimed first call (``torch.compile`` compiles in it),
   then, inside :func:`runners.latency.quiet.quiet_machine` (``isolation``: no other timer on the
   machine, registered study workers paused), ``warmup`` untimed runs and ``repeats`` timed runs
   of one clip (batch 1), split into ``blocks`` consecutive blocks. On CPU each run is timed with
   ``time.perf_counter_ns``; on CUDA with a pair of CUDA events, the stream synchronized before
   and after each run, so a run includes its own launch overhead and nothing queued before it.
3. When ``batch_size > 1``, the same warm-up and repeats at that batch give the throughput.
4. With ``reference = True`` each block of timed runs is followed by a block of as many runs of
   :mod:`runners.latency.reference`'s fixed network, and the recorded latency is
   ``p10 / reference p10 x baseline``: the machine's drift over the measurement cancels in the
   ratio (see that module for the measured need and the baseline).

Definitions (all times in milliseconds per forward call):

* ``median_ms``, ``p90_ms``, ``mean_ms``, ``min_ms``: over all ``repeats`` batch-1 samples;
  percentiles interpolate linearly between order statistics (numpy's default).
* ``iqr_ms = p75 - p25`` of the same samples.
* ``cv_of_median``: the ``repeats`` samples are taken as ``blocks`` consecutive blocks of (nearly)
  equal size; it is the sample standard deviation (n - 1) of the block medians divided by their
  mean. It answers "if I measured again with ``repeats / blocks`` runs, how much would the median
  move?", within one process: it captures drift and interference from other work on the machine,
  not differences between processes (allocation layout, a different compile).
* ``p10_ms``: the 10th percentile of the same samples.
* ``latency_ms``, the value studies, tables and predictions use: ``median_ms`` without a
  reference; with one, ``p10_ms / reference_ms * reference_baseline_ms`` where ``reference_ms``
  is the reference's 10th percentile over its blocks of this measurement. The 10th percentile,
  not the median, because the ratio of low percentiles was the most repeatable here (retest
  within ±10%: 100% of 40 networks, median ratio 85%): slow runs are the machine, not the network.
* ``throughput_clips_s = batch_size * 1000 / batch_median_ms``, where ``batch_median_ms`` is the
  median time of one call at ``batch_size`` clips (equal to ``median_ms`` at batch 1, where no
  extra run is made); with a reference, corrected like ``latency_ms``: the batch's 10th
  percentile over the reference's, times its baseline (at batch 1: ``1000 / latency_ms``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch
from torch import nn

from runners._device import DEVICE_PATTERN as _DEVICE_RE
from runners._device import resolve_device
from runners.latency.quiet import ISOLATIONS, quiet_machine
from runners.latency.reference import (
    REFERENCE_INPUT,
    baseline_key,
    load_baseline,
    reference_network,
    store_baseline,
)
from runners.latency.stats import (
    coefficient_of_variation,
    default_blocks,
    percentile,
    split_blocks,
    summarize_ms,
)
from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError, TrialFailure
from search_space.resnet3d import build_resnet3d
from search_space.shapes import output_shapes, parse_input_shape
from search_space.strict import StrictConfig, check_threads

__all__ = [
    "LatencyConfig",
    "LatencyMode",
    "LatencyResult",
    "PreparedModel",
    "measure_latency",
    "measure_model_latency",
    "prepare_model",
    "resolve_device",
]


class LatencyMode(StrEnum):
    """How the network is run while it is timed."""

    EAGER = "eager"  # plain PyTorch
    CHANNELS_LAST = "channels_last"  # model and input in torch.channels_last_3d
    COMPILE = "compile"  # torch.compile (inductor; with freezing on CPU)


@dataclass(frozen=True, kw_only=True, slots=True)
class LatencyConfig(StrictConfig):
    """How to measure latency.

    Attributes:
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        mode: one of :class:`LatencyMode`'s values.
        warmup: untimed runs before the timed ones (after the compile in ``compile`` mode).
        repeats: timed batch-1 runs in total (the sample count of the result).
        blocks: consecutive blocks the repeats are split into for ``cv_of_median`` (None:
            :func:`default_blocks` of ``repeats``; see :attr:`block_count`).
        threads: ``torch.set_num_threads`` during the measurement; ``None`` means every core this
            process may run on. Set on CUDA too (it bounds the CPU-side work).
        batch_size: clips per call for the throughput figure; 1 makes no extra runs.
        seed: seed of the random input clip.
        isolation: ``"none"``, ``"lock"`` (no two timers on the machine at once) or
            ``"pause"`` (and registered study workers stopped while timing); see
            :mod:`runners.latency.quiet`.
        reference: time :mod:`runners.latency.reference`'s network in alternating blocks and
            report latency relative to it (scaled by the machine's cached baseline), so that
            the machine's speed drifting during or between measurements cancels out. Doubles
            the timed runs.
    """

    config_name = "latency config"

    # NOTE: the defaults are a study's ([measure] in docs/spec.md; a test holds the two equal):
    # the drift reference and paused workers, 40 runs in 10 blocks (benchmarks/README: retest
    # within ±10% for 94% of networks with the reference, 31% without).
    device: str = "auto"
    mode: str = LatencyMode.EAGER.value
    warmup: int = 3
    repeats: int = 40
    blocks: int | None = None
    threads: int | None = None
    batch_size: int = 1
    seed: int = 0
    isolation: str = "pause"
    reference: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.mode, StrEnum):
            object.__setattr__(self, "mode", self.mode.value)
        self.validate()

    @property
    def block_count(self) -> int:
        """The blocks the repeats are split into: ``blocks``, else :func:`default_blocks`."""
        return self.blocks if self.blocks is not None else default_blocks(self.repeats)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise ConfigError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {self.device!r}"
            )
        if self.mode not in tuple(LatencyMode):
            raise ConfigError(
                f"mode must be one of {', '.join(repr(m.value) for m in LatencyMode)}; "
                f"got {self.mode!r}"
            )
        self.check_ints(warmup=0, repeats=1, blocks=2)
        if self.repeats < self.block_count:
            raise ConfigError(
                f"repeats must be at least blocks ({self.block_count}) so every block has a "
                f"sample; got {self.repeats}"
            )
        if self.threads is not None:
            check_threads("threads", self.threads, extra=" or null (all cores)")
        self.check_ints(batch_size=1, seed=0)
        if not isinstance(self.reference, bool):
            raise ConfigError(f"reference must be true or false; got {self.reference!r}")
        if self.isolation not in ISOLATIONS:
            raise ConfigError(
                f"isolation must be one of {', '.join(map(repr, ISOLATIONS))}; "
                f"got {self.isolation!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class LatencyResult:
    """One latency measurement and the conditions it was taken under (see the module docs).

    The ``*_ms`` statistics are per call at batch 1, i.e. the batch-1 latency of one clip.
    ``compile_s`` is the wall time of the first call at each input shape in ``compile`` mode
    (tracing, compiling and one run; a warm ``TORCHINDUCTOR_CACHE_DIR`` shortens it), ``None`` in
    the other modes. ``isolation`` is the config's; ``paused_workers`` how many registered
    worker processes were stopped while timing.
    """

    median_ms: float
    p90_ms: float
    iqr_ms: float
    mean_ms: float
    min_ms: float
    samples: int
    block_medians_ms: tuple[float, ...]
    cv_of_median: float
    batch_size: int
    batch_median_ms: float
    throughput_clips_s: float
    input_shape: tuple[int, int, int, int, int]
    mode: str
    device: str
    threads: int
    inductor_freezing: bool
    compile_s: float | None
    versions: dict[str, str]
    isolation: str = "none"
    paused_workers: int = 0
    p10_ms: float | None = None
    reference_ms: float | None = None
    reference_baseline_ms: float | None = None

    @property
    def latency_ms(self) -> float:
        """The latency to record (see the module docs): referenced when a reference was timed."""
        if self.reference_ms is None or self.reference_baseline_ms is None or self.p10_ms is None:
            return self.median_ms
        return self.p10_ms / self.reference_ms * self.reference_baseline_ms

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for trial attributes and logs."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["latency_ms"] = self.latency_ms
        out["block_medians_ms"] = list(self.block_medians_ms)
        out["input_shape"] = list(self.input_shape)
        out["versions"] = dict(self.versions)
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class PreparedModel:
    """A model ready to time: call it on an input from :meth:`make_input`.

    Only valid inside the :func:`prepare_model` context that made it (threads and the inductor
    flag are set there).
    """

    forward: Callable[[torch.Tensor], Any]
    device: torch.device
    memory_format: torch.memory_format
    mode: str
    inductor_freezing: bool

    def __call__(self, x: torch.Tensor) -> Any:
        return self.forward(x)

    def make_input(self, shape: Sequence[int], *, seed: int = 0) -> torch.Tensor:
        """A standard-normal clip of ``shape`` on the device, in the mode's memory format."""
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(tuple(shape), generator=generator)
        return x.to(self.device).contiguous(memory_format=self.memory_format)


# ---------------------------------------------------------------------- public functions
@contextlib.contextmanager
def prepare_model(model: nn.Module, cfg: LatencyConfig) -> Iterator[PreparedModel]:
    """Make ``model`` ready to time under ``cfg``; restore global state on exit.

    The model is put in eval mode and moved (in place, as ``Module.to`` does) to the device and
    to the mode's memory format (``torch.channels_last_3d`` in ``channels_last`` mode, else
    contiguous); its train/eval flag is restored on exit, its device and memory format are not.
    Inside the context the thread count is ``cfg.threads`` and, for ``compile`` on CPU,
    ``torch._inductor.config.freezing`` is on (it must stay on until the first call, which is when
    inductor compiles); both are restored on exit. ``compile`` mode starts with
    ``torch.compiler.reset()``, which drops the process's in-memory compiled code (not the disk
    cache), and turns Dynamo's silent fallback to eager at its recompile limit into an error.
    """
    device = resolve_device(cfg.device)
    threads = _resolve_threads(cfg.threads)
    previous_threads = torch.get_num_threads()
    was_training = model.training
    memory_format = (
        torch.channels_last_3d
        if cfg.mode == LatencyMode.CHANNELS_LAST
        else torch.contiguous_format
    )
    freezing = cfg.mode == LatencyMode.COMPILE and device.type == "cpu"
    inductor_config: Any = None
    dynamo_config: Any = None
    previous_freezing = previous_fail_on_limit = False
    try:
        torch.set_num_threads(threads)
        model.eval()
        model.to(device)
        # NOTE: always set, so a model reused after a channels_last run is contiguous again.
        # Module.to accepts memory_format at run time; its type stubs do not.
        model.to(memory_format=memory_format)  # type: ignore[call-overload]
        forward: Callable[[torch.Tensor], Any] = model
        if cfg.mode == LatencyMode.COMPILE:
            import torch._dynamo.config as dynamo_config
            import torch._inductor.config as inductor_config

            # NOTE: Dynamo keeps compiled code per code object (ResNet3d.forward), guarded on
            # this model's parameters, and past recompile_limit (8) entries it silently falls
            # back to eager: a study timing many networks in one process would measure eager.
            # So start from an empty in-memory cache (the on-disk cache is kept) and make
            # hitting the limit an error instead of a wrong number.
            torch.compiler.reset()
            previous_fail_on_limit = dynamo_config.fail_on_recompile_limit_hit
            dynamo_config.fail_on_recompile_limit_hit = True
            previous_freezing = inductor_config.freezing
            inductor_config.freezing = freezing
            # NOTE: dynamic=False: each batch size gets its own static-shape graph, instead of a
            # slower dynamic-batch graph after the second shape.
            forward = torch.compile(model, dynamic=False)
        yield PreparedModel(
            forward=forward,
            device=device,
            memory_format=memory_format,
            mode=cfg.mode,
            inductor_freezing=freezing,
        )
    finally:
        if inductor_config is not None:
            inductor_config.freezing = previous_freezing
        if dynamo_config is not None:
            dynamo_config.fail_on_recompile_limit_hit = previous_fail_on_limit
        torch.set_num_threads(previous_threads)
        model.train(was_training)


def measure_model_latency(
    model: nn.Module, input_shape: str | Sequence[int], cfg: LatencyConfig
) -> LatencyResult:
    """Time ``model`` on one clip of ``input_shape`` (N, C, T, H, W with N = 1).

    Raises:
        ConfigError: a bad input shape or an unavailable device.
        TrialFailure: ``torch.compile`` failed (no C++ compiler, an unsupported op, ...); the
            message gives the reason.
    """
    shape = parse_input_shape(input_shape)
    if shape[0] != 1:
        raise ConfigError(
            f"input_shape must have batch 1 (latency is per clip); got {list(shape)}; "
            "set LatencyConfig.batch_size for throughput"
        )
    with contextlib.ExitStack() as stack:
        prepared = stack.enter_context(prepare_model(model, cfg))
        stack.enter_context(torch.inference_mode())
        reference = (
            stack.enter_context(
                prepare_model(reference_network(), cfg.replace(mode="eager", reference=False))
            )
            if cfg.reference
            else None
        )
        compile_s: float | None = None
        reference_ms = baseline_ms = None
        x = prepared.make_input(shape, seed=cfg.seed)
        first_s = _first_call(prepared, x)
        if cfg.mode == LatencyMode.COMPILE:
            compile_s = first_s
        if reference is None:
            with quiet_machine(cfg.isolation) as paused:
                samples_ms = _timed_runs(prepared, x, warmup=cfg.warmup, repeats=cfg.repeats)
        else:
            ref_x = reference.make_input(REFERENCE_INPUT, seed=0)
            _first_call(reference, ref_x)
            baseline_ms = _reference_baseline(reference, ref_x, cfg)
            with quiet_machine(cfg.isolation) as paused:
                samples_ms, ref_samples = _timed_runs_referenced(
                    prepared, x, reference, ref_x, cfg
                )
            reference_ms = percentile(sorted(ref_samples), 10)
        paused_workers = len(paused)
        batch_median_ms = statistics.median(samples_ms)
        batch_samples = samples_ms
        if cfg.batch_size > 1:
            batch_x = prepared.make_input((cfg.batch_size, *shape[1:]), seed=cfg.seed)
            first_s = _first_call(prepared, batch_x)
            if compile_s is not None:
                compile_s += first_s
            with quiet_machine(cfg.isolation):
                batch_samples = _timed_runs(
                    prepared, batch_x, warmup=cfg.warmup, repeats=cfg.repeats
                )
            batch_median_ms = statistics.median(batch_samples)
        device_name = _device_name(prepared.device)
        threads = torch.get_num_threads()
        freezing = prepared.inductor_freezing
    summary = summarize_ms(samples_ms)
    block_medians = tuple(statistics.median(b) for b in split_blocks(samples_ms, cfg.block_count))
    throughput_ms = batch_median_ms  # NOTE: corrected like latency_ms (module docs)
    if reference_ms is not None and baseline_ms is not None:
        throughput_ms = percentile(sorted(batch_samples), 10) / reference_ms * baseline_ms
    return LatencyResult(
        median_ms=summary["median_ms"],
        p90_ms=summary["p90_ms"],
        iqr_ms=summary["iqr_ms"],
        mean_ms=summary["mean_ms"],
        min_ms=summary["min_ms"],
        samples=len(samples_ms),
        block_medians_ms=block_medians,
        cv_of_median=coefficient_of_variation(block_medians),
        batch_size=cfg.batch_size,
        batch_median_ms=batch_median_ms,
        throughput_clips_s=cfg.batch_size * 1000.0 / throughput_ms,
        input_shape=shape,
        mode=cfg.mode,
        device=device_name,
        threads=threads,
        inductor_freezing=freezing,
        compile_s=compile_s,
        versions=library_versions(),
        isolation=cfg.isolation,
        paused_workers=paused_workers,
        p10_ms=summary["p10_ms"],
        reference_ms=reference_ms,
        reference_baseline_ms=baseline_ms,
    )


def measure_latency(
    config: ResNet3dConfig, input_shape: str | Sequence[int], cfg: LatencyConfig
) -> LatencyResult:
    """Build ``config``'s ResNet3d (random init) and time it; see :func:`measure_model_latency`.

    The shapes are checked first, so a configuration that collapses the clip is a
    :class:`ConfigError` before any tensor is built. The caller's RNG state is left untouched.
    """
    shape = parse_input_shape(input_shape)
    output_shapes(config, shape)
    with torch.random.fork_rng(devices=[]):
        model = build_resnet3d(config)
    return measure_model_latency(model, shape, cfg)


def library_versions() -> dict[str, str]:
    """Versions that change the number: python, torch (+ CUDA/cuDNN when built), mmcv, mmengine."""
    import mmcv
    import mmengine

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "mmcv": mmcv.__version__,
        "mmengine": mmengine.__version__,
    }
    if torch.version.cuda is not None:
        versions["cuda"] = torch.version.cuda
        cudnn = torch.backends.cudnn.version()
        if cudnn is not None:
            versions["cudnn"] = str(cudnn)
    return versions


# ---------------------------------------------------------------------- helpers
def _resolve_threads(threads: int | None) -> int:
    if threads is not None:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # NOTE: not on macOS / Windows
        return os.cpu_count() or 1


def _first_call(prepared: PreparedModel, x: torch.Tensor) -> float:
    """Run once (compiling in ``compile`` mode); seconds taken. Compile errors -> TrialFailure."""
    start = time.perf_counter()
    try:
        prepared(x)
        _synchronize(prepared.device)
    except Exception as exc:
        if prepared.mode != LatencyMode.COMPILE:
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise TrialFailure(
            f"torch.compile failed on {prepared.device} for input {list(x.shape)}: "
            f"{type(exc).__name__}: {reason[:300]}"
        ) from exc
    return time.perf_counter() - start


def _timed_runs(
    prepared: PreparedModel, x: torch.Tensor, *, warmup: int, repeats: int
) -> list[float]:
    for _ in range(warmup):
        prepared(x)
    _synchronize(prepared.device)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # NOTE: as timeit does: a collection inside a run is noise, not model cost
    try:
        if prepared.device.type == "cuda":
            return _timed_runs_cuda(prepared, x, repeats)
        return _timed_runs_cpu(prepared, x, repeats)
    finally:
        if gc_was_enabled:
            gc.enable()


def _timed_runs_referenced(
    prepared: PreparedModel,
    x: torch.Tensor,
    reference: PreparedModel,
    ref_x: torch.Tensor,
    cfg: LatencyConfig,
) -> tuple[list[float], list[float]]:
    """``cfg.repeats`` runs of the model in ``cfg.block_count`` blocks, each followed by as many
    runs of the reference: both sides see the same stretch of the machine's drift."""
    for _ in range(cfg.warmup):
        prepared(x)
        reference(ref_x)
    samples: list[float] = []
    ref_samples: list[float] = []
    for block in split_blocks(range(cfg.repeats), cfg.block_count):
        samples += _timed_runs(prepared, x, warmup=0, repeats=len(block))
        ref_samples += _timed_runs(reference, ref_x, warmup=0, repeats=len(block))
    return samples, ref_samples


def _reference_baseline(
    reference: PreparedModel, ref_x: torch.Tensor, cfg: LatencyConfig
) -> float:
    """The machine's cached baseline for this device and thread count; measured (the
    reference's 10th percentile over 300 runs, quiet machine) and cached the first time."""
    key = baseline_key(_device_name(reference.device), torch.get_num_threads())
    cached = load_baseline(key)
    if cached is not None:
        return cached
    with quiet_machine(cfg.isolation):
        samples = _timed_runs(reference, ref_x, warmup=20, repeats=300)
    return store_baseline(key, percentile(sorted(samples), 10))


def _timed_runs_cpu(prepared: PreparedModel, x: torch.Tensor, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        prepared(x)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def _timed_runs_cuda(prepared: PreparedModel, x: torch.Tensor, repeats: int) -> list[float]:
    samples = []
    with torch.cuda.device(prepared.device):
        stream = torch.cuda.current_stream()
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            # NOTE: an idle stream before each run, so the run pays its own launch overhead
            # and no earlier work is counted in it.
            stream.synchronize()
            start.record(stream)
            prepared(x)
            end.record(stream)
            end.synchronize()
            samples.append(start.elapsed_time(end))
    return samples


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index}: {torch.cuda.get_device_name(index)}"
    return f"cpu: {_cpu_model_name()}"


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
