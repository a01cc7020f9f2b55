"""Build a :class:`~search_space.latency_model.LatencyTable`: every distinct layer of a space,
measured once and in isolation, plus a few whole networks to fit the per-network term.

Protocol (:func:`build_latency_table`):

1. **Enumerate** the space's layers at the clip: every combination of its choices when there
   are at most ``limit`` (exact), else ``samples`` random ones (the table then says so, and a
   prediction that meets a layer the table lacks says which). Keys come from
   :func:`search_space.latency_model.network_layers` (the plan's walk).
2. **Measure** each distinct layer alone with
   :func:`runners.latency.measure.measure_model_latency`, the same protocol, device, thread count,
   mode and isolation as a whole network, on a standard-normal input of its shape (batch 1). Layers
   are built by the network's own builders (``build_conv_module``, mmcv's ``NonLocal3d``,
   ``I3DHead``), so they run the same kernels.
3. **Calibrate**: ``calibrate`` random networks of the space are measured whole; the
   per-network term is chosen and fitted by leave-one-out cross-validation
   (:func:`~search_space.latency_model.fit_network_term`).

With ``out``, the table is written after every layer and every calibration network and a
rerun with the same conditions resumes where it stopped (conditions that differ start afresh).
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from runners.latency.measure import (
    LatencyConfig,
    LatencyResult,
    library_versions,
    measure_model_latency,
)
from search_space._files import output_file
from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError
from search_space.latency_model import (
    LatencyTable,
    Layer,
    layer_keys,
    network_layers,
    predict_latency,
)
from search_space.network_term import NetworkTerm, fit_network_term
from search_space.shapes import parse_input_shape
from search_space.space import InfeasibleConfig, SearchSpace

__all__ = [
    "build_latency_table",
    "build_layer_module",
    "measure_layer",
    "sample_configs",
    "space_layers",
]

Progress = Callable[[str], None]


# ---------------------------------------------------------------------- layers as modules
class _AddAct(nn.Module):
    """A residual block's ``act(out + identity)``; ``identity`` is a fixed buffer."""

    def __init__(self, shape: Sequence[int], act_cfg: dict[str, Any]) -> None:
        super().__init__()
        from mmcv.cnn import build_activation_layer

        self.identity: torch.Tensor
        self.register_buffer("identity", torch.randn(1, *shape))
        self.act = build_activation_layer(act_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.identity)


def build_layer_module(layer: Layer) -> nn.Module:
    """The module that runs ``layer`` as the network runs it (random init, eval mode).

    Raises:
        ConfigError: a layer this runner cannot build (grouped convolutions).
    """
    import json

    from search_space._mmcv import layer_cfg
    from search_space.blocks import build_conv_module
    from search_space.plan import ConvSpec

    cfgs = json.loads(layer.cfgs)
    args = dict(layer.args)
    channels = layer.in_shape[0]
    module: nn.Module
    if layer.kind == "conv3d":
        if args["groups"] != 1:
            raise ConfigError(f"groups must be 1 to build {layer.key!r}; got {args['groups']}")
        spec = ConvSpec(
            channels,
            args["out_channels"],
            tuple(args["kernel"]),  # type: ignore[arg-type]
            tuple(args["stride"]),  # type: ignore[arg-type]
            tuple(args["padding"]),  # type: ignore[arg-type]
            tuple(args["dilation"]),  # type: ignore[arg-type]
            with_act=bool(args["with_act"]),
        )
        module = build_conv_module(
            spec, conv_cfg=cfgs["conv_cfg"], norm_cfg=cfgs["norm_cfg"], act_cfg=cfgs["act_cfg"]
        )
    elif layer.kind == "maxpool3d":
        module = nn.MaxPool3d(
            kernel_size=tuple(args["kernel"]),
            stride=tuple(args["stride"]),
            padding=tuple(args["padding"]),
        )
    elif layer.kind == "add_act":
        module = _AddAct(layer.in_shape, layer_cfg(cfgs["act_cfg"]))
    elif layer.kind == "non_local3d":
        from mmcv.cnn import NonLocal3d

        module = NonLocal3d(channels, **layer_cfg(cfgs["non_local_cfg"]))
    else:  # head
        from runners.model import I3DHead

        module = I3DHead(args["num_classes"], channels)
        module.init_weights()
    return module.eval()


def measure_layer(layer: Layer, cfg: LatencyConfig) -> LatencyResult:
    """Time one layer alone on a clip of its input shape (batch 1), under ``cfg``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = build_layer_module(layer)
    return measure_model_latency(module, (1, *layer.in_shape), cfg)


# ---------------------------------------------------------------------- the space's layers
def _combinations(space: SearchSpace) -> int:
    count = 1
    for dim in space.choices:
        count *= len(dim.values)
    return count


def _random_params(space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    return {dim.name: rng.choice(dim.values) for dim in space.choices}


def sample_configs(
    space: SearchSpace,
    n: int,
    *,
    seed: int = 0,
    exclude: Iterable[str] = (),
    max_tries: int = 100_000,
) -> list[ResNet3dConfig]:
    """``n`` random feasible configurations of distinct digests (each choice uniform).

    ``exclude``: digests not to return (e.g. the calibration networks of a table).

    Raises:
        ConfigError: fewer than ``n`` distinct feasible networks were found in ``max_tries``.
    """
    rng = random.Random(seed)
    seen = set(exclude)
    out: list[ResNet3dConfig] = []
    for _ in range(max_tries):
        if len(out) == n:
            break
        try:
            config = space.config_from_params(_random_params(space, rng))
        except InfeasibleConfig:
            continue
        digest = config.digest()
        if digest in seen:
            continue
        seen.add(digest)
        out.append(config)
    if len(out) < n:
        raise ConfigError(
            f"n must be at most the distinct feasible networks found in {max_tries} random draws "
            f"from space {space.name!r} ({len(out)}); got {n}"
        )
    return out


def space_layers(
    space: SearchSpace,
    input_shape: Sequence[int] | str | None = None,
    *,
    include_head: bool = False,
    num_classes: int = 400,
    limit: int = 200_000,
    samples: int = 20_000,
    seed: int = 0,
) -> tuple[dict[str, Layer], str]:
    """Every distinct layer of ``space``'s feasible networks at ``input_shape`` (default: the
    space's), and how they were found (``"all N combinations"`` or ``"N random samples of
    M combinations"``)."""
    shape = space.input_shape if input_shape is None else parse_input_shape(input_shape)
    space = dataclasses.replace(space, input_shape=shape)
    total = _combinations(space)
    names = space.param_names()
    rows: Iterable[dict[str, Any]]
    if total <= limit:
        rows = (dict(zip(names, row, strict=True)) for row in itertools.product(
            *(d.values for d in space.choices)
        ))  # fmt: skip
        coverage = f"all {total} combinations"
    else:
        rng = random.Random(seed)
        rows = (_random_params(space, rng) for _ in range(samples))
        coverage = f"{samples} random samples of {total} combinations"
    layers: dict[str, Layer] = {}
    for params in rows:
        try:
            config = space.config_from_params(params)
        except InfeasibleConfig:
            continue
        keys = layer_keys(config, shape, include_head=include_head, num_classes=num_classes)
        if all(key in layers for key in keys):
            continue
        for layer in network_layers(
            config, shape, include_head=include_head, num_classes=num_classes
        ):
            layers.setdefault(layer.key, layer)
    return layers, coverage


# ---------------------------------------------------------------------- the table
def _conditions(cfg: LatencyConfig, shape: Sequence[int], space: SearchSpace) -> dict[str, Any]:
    return {
        "warmup": cfg.warmup,
        "repeats": cfg.repeats,
        "blocks": cfg.block_count,
        "isolation": cfg.isolation,
        "reference": cfg.reference,
        "device": cfg.device,
        "seed": cfg.seed,
        "space": space.name,
        "input_shape": list(shape),
    }


def build_latency_table(
    space: SearchSpace,
    latency: LatencyConfig,
    *,
    input_shape: Sequence[int] | str | None = None,
    calibrate: int = 10,
    seed: int = 0,
    include_head: bool = False,
    num_classes: int = 400,
    limit: int = 200_000,
    samples: int = 20_000,
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> LatencyTable:
    """Measure every distinct layer of ``space`` and fit the per-network term.

    Args:
        space: the search space (its name is stored).
        latency: device, mode, threads, warm-up, repeats and isolation of every measurement.
            ``batch_size`` is ignored (layers are timed at batch 1).
        input_shape: the clip (default: the space's).
        calibrate: whole networks measured to fit the per-network term (0: the plain sum).
        seed: seed of the calibration networks (and of the sampled enumeration).
        out: write (and resume) the table here.
        progress: called with one line per measured layer and network.

    Returns:
        The table, also written to ``out`` when given.
    """
    if out is not None:
        output_file(out, option="--out")  # NOTE: not after an hour of measuring
    shape = space.input_shape if input_shape is None else parse_input_shape(input_shape)
    if latency.batch_size != 1:
        latency = latency.replace(batch_size=1)
    say = progress or (lambda _line: None)
    conditions = _conditions(latency, shape, space)
    t0 = time.perf_counter()
    layers, coverage = space_layers(
        space, shape, include_head=include_head, num_classes=num_classes,
        limit=limit, samples=samples, seed=seed,
    )  # fmt: skip
    # NOTE: the calibration networks' layers are measured too, even when enumeration sampled.
    configs = (
        sample_configs(dataclasses.replace(space, input_shape=shape), calibrate, seed=seed)
        if calibrate
        else []
    )
    for config in configs:
        for layer in network_layers(config, shape):
            layers.setdefault(layer.key, layer)
    say(f"{len(layers)} distinct layers ({coverage}) in {time.perf_counter() - t0:.1f} s")
    build = _TableBuild(
        space=space, shape=shape, latency=latency, layers=layers, out=out, say=say,
        protocol={**conditions, "coverage": coverage, "include_head": include_head},
    )  # fmt: skip
    build.resume(_resumable(out, conditions, latency))
    build.measure_layers()
    build.measure_networks(configs)
    term = fit_network_term(
        [(c["layers_ms"], int(c["n_layers"]), c["measured_ms"]) for c in build.calibration],
        calibration=build.calibration,
    )
    final = build.table(term)
    if out is not None:
        final.save(out)
    return final


class _TableBuild:
    """A table being measured: what is known so far, saved after every measurement."""

    def __init__(
        self,
        *,
        space: SearchSpace,
        shape: Sequence[int],
        latency: LatencyConfig,
        layers: dict[str, Layer],
        protocol: dict[str, Any],
        out: str | Path | None,
        say: Progress,
    ) -> None:
        self.space, self.shape, self.latency = space, shape, latency
        self.layers, self.protocol, self.out, self.say = layers, protocol, out, say
        self.layers_ms: dict[str, float] = {}
        self.details: dict[str, dict[str, float]] = {}
        self.device, self.threads = "", 0
        self.calibration: list[dict[str, Any]] = []

    def resume(self, earlier: LatencyTable | None) -> None:
        """Start from a partial table measured under the same conditions."""
        if earlier is None:
            return
        self.layers_ms = dict(earlier.layers_ms)
        self.details = dict(earlier.details)
        self.device, self.threads = earlier.device, earlier.threads
        self.calibration = list(earlier.network_term.calibration)

    def table(self, term: NetworkTerm | None = None) -> LatencyTable:
        return LatencyTable(
            layers_ms=dict(self.layers_ms),
            device=self.device,
            threads=self.threads,
            mode=self.latency.mode,
            input_shape=(1, *self.shape[1:]),  # type: ignore[arg-type]
            versions=library_versions(),
            network_term=term or NetworkTerm(calibration=tuple(self.calibration)),
            layers={k: v for k, v in self.layers.items() if k in self.layers_ms},
            details=self.details,
            protocol=self.protocol,
            space=self.space.name,
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )

    def _save(self) -> None:
        if self.out is not None:
            self.table().save(self.out)

    def measure_layers(self) -> None:
        """Every layer not measured yet, alone."""
        todo = [layer for key, layer in self.layers.items() if key not in self.layers_ms]
        for i, layer in enumerate(todo, start=1):
            result = measure_layer(layer, self.latency)
            self.layers_ms[layer.key] = result.latency_ms
            self.details[layer.key] = {
                "iqr_ms": result.iqr_ms,
                "cv_of_median": result.cv_of_median,
                **({"compile_s": result.compile_s} if result.compile_s is not None else {}),
            }
            self.device, self.threads = result.device, result.threads
            self.say(f"layer {i}/{len(todo)} {result.latency_ms:9.4f} ms  {layer.key}")
            self._save()

    def measure_networks(self, configs: Sequence[ResNet3dConfig]) -> None:
        """The calibration networks not measured yet, whole, beside their layer sums."""
        from runners.latency.measure import measure_latency

        done = {c["digest"] for c in self.calibration}
        for i, config in enumerate(configs, start=1):
            digest = config.digest()
            if digest in done:
                continue
            plain = predict_latency(config, self.table(NetworkTerm()), self.shape)
            result = measure_latency(config, self.shape, self.latency)
            self.device, self.threads = result.device, result.threads
            self.calibration.append(
                {
                    "digest": digest,
                    "config": config.to_dict(),
                    "measured_ms": result.latency_ms,
                    "layers_ms": plain.layers_ms,
                    "n_layers": plain.n_layers,
                }
            )
            self.say(
                f"network {i}/{len(configs)} measured {result.latency_ms:9.4f} ms, "
                f"layer sum {plain.layers_ms:9.4f} ms ({plain.n_layers} layers)"
            )
            self._save()


def _resumable(
    out: str | Path | None, conditions: dict[str, Any], latency: LatencyConfig
) -> LatencyTable | None:
    """The partial table at ``out`` when it was measured under the same conditions.

    Raises:
        ConfigError: ``out`` is a file but not a latency table (a CSV, broken JSON): it is
            not ours to overwrite.
    """
    if out is None or not Path(out).is_file():
        return None
    try:
        earlier = LatencyTable.load(out)
    except ConfigError as exc:
        raise ConfigError(
            f"--out {out} exists and is not a latency table ({exc}); refusing to overwrite it: "
            "give another path or remove the file"
        ) from exc
    same = (
        earlier.mode == latency.mode
        and {k: earlier.protocol.get(k) for k in conditions} == conditions
        and (latency.threads is None or earlier.threads in (0, latency.threads))
        and earlier.versions.get("torch") == library_versions().get("torch")
    )
    return earlier if same else None
