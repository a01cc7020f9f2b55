"""Building a latency table on a tiny space: every layer of every network is in it, each layer
builds and runs at its input shape, and a rerun resumes instead of measuring again."""

from __future__ import annotations

from pathlib import Path

import torch

from runners.latency.measure import LatencyConfig
from runners.latency.table import build_latency_table, build_layer_module, space_layers
from search_space import Choice, ResNet3dConfig, SearchSpace
from search_space.latency_model import LatencyTable, network_layers, predict_latency

SHAPE = (1, 3, 4, 16, 16)
FAST = LatencyConfig(
    device="cpu", warmup=0, repeats=2, blocks=2, threads=1, isolation="lock", reference=False
)


def _space() -> SearchSpace:
    base = ResNet3dConfig(
        depth=18, stage_blocks=(1, 1, 1, 1), base_channels=4, non_local=((0,), (0,), (1,), (0,)),
        non_local_cfg={"sub_sample": False},
    )  # fmt: skip
    return SearchSpace(
        base=base, input_shape=SHAPE, name="tiny",
        dimensions=(
            Choice("layer4.inflate", ("none", "all")), Choice("with_pool2", (True, False))
        ),
    )  # fmt: skip


def test_every_layer_builds_and_maps_its_input_to_the_next_layers_input() -> None:
    config = _space().config_from_params({"layer4.inflate": "all", "with_pool2": True})
    layers = network_layers(config, SHAPE, include_head=True, num_classes=3)
    assert {layer.kind for layer in layers} == {
        "conv3d", "maxpool3d", "add_act", "non_local3d", "head"
    }  # fmt: skip
    with torch.inference_mode():
        for layer, following in zip(layers, layers[1:], strict=False):
            out = build_layer_module(layer)(torch.randn(1, *layer.in_shape))
            if layer.kind in ("maxpool3d", "add_act", "non_local3d"):
                # the main path continues from these outputs (a downsample reads a block input)
                assert tuple(out.shape[1:]) == following.in_shape or following.kind == "conv3d"
        assert tuple(
            build_layer_module(layers[-1])(torch.randn(1, *layers[-1].in_shape)).shape
        ) == (1, 3)


def test_table_covers_the_space_and_resumes(tmp_path: Path) -> None:
    space = _space()
    layers, coverage = space_layers(space)
    assert coverage == "all 4 combinations"
    lines: list[str] = []
    out = tmp_path / "table.json"
    table = build_latency_table(space, FAST, calibrate=3, out=out, progress=lines.append)
    assert sum(line.startswith("layer ") for line in lines) == len(layers) == len(table.layers_ms)
    assert sum(line.startswith("network ") for line in lines) == 3
    assert (
        len(table.network_term.calibration) == 3
        and table.network_term.kind in table.network_term.cv
    )
    assert table.threads == 1 and table.mode == "eager" and table.device.startswith("cpu")
    for row in space.grid(space.param_names()):
        prediction = predict_latency(space.config_from_params(row), table)
        assert not prediction.missing and prediction.latency_ms > 0
    assert LatencyTable.load(out).to_dict()["layers"] == table.to_dict()["layers"]
    # same conditions: nothing is measured again; other conditions: measured afresh
    again: list[str] = []
    build_latency_table(space, FAST, calibrate=3, out=out, progress=again.append)
    assert not [line for line in again if line.startswith(("layer ", "network "))]
    other: list[str] = []
    build_latency_table(
        space, FAST.replace(repeats=3), calibrate=0, out=out, progress=other.append
    )
    assert sum(line.startswith("layer ") for line in other) == len(layers)
