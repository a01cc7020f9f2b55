"""The latency model: layer keys from the plan (fast path = exact walk), the per-network term's
fit and cross-validation, the table's JSON form, and predicting without torch."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
from random_configs import random_kwargs

from search_space import ConfigError, ResNet3dConfig, load_space, output_shapes, preset
from search_space.latency_model import LatencyTable, layer_keys, network_layers, predict_latency
from search_space.network_term import NetworkTerm, fit_network_term

ROOT = Path(__file__).resolve().parents[2]


def _random_cases(n: int, seed: int = 0) -> list[tuple[ResNet3dConfig, tuple[int, ...]]]:
    rng = random.Random(seed)
    cases = []
    while len(cases) < n:
        try:
            config = ResNet3dConfig(**random_kwargs(rng))
        except ConfigError:
            continue
        cases.append((config, (1, 3, rng.choice((2, 4, 8)), rng.choice((8, 16, 32)), 24)))
    return cases


def test_fast_keys_equal_the_plan_walk_and_collapse_alike() -> None:
    compared = collapsed = 0
    for config, shape in _random_cases(300):
        try:
            exact = [layer.key for layer in network_layers(config, shape, include_head=True,
                                                           num_classes=7)]  # fmt: skip
        except ConfigError as exc:
            with pytest.raises(ConfigError) as fast:
                layer_keys(config, shape)
            assert str(fast.value) == str(exc)
            collapsed += 1
            continue
        assert list(layer_keys(config, shape, include_head=True, num_classes=7)) == exact
        # and again, from the memo
        assert list(layer_keys(config, shape, include_head=True, num_classes=7)) == exact
        compared += 1
    assert compared > 100 and collapsed > 10


def test_i3d_r50_layers_follow_the_network() -> None:
    config = preset("i3d_r50")
    layers = network_layers(config, (1, 3, 8, 224, 224))
    kinds = [layer.kind for layer in layers]
    blocks = sum(config.blocks_per_stage)
    assert kinds.count("add_act") == blocks
    assert kinds.count("conv3d") == 1 + 3 * blocks + 4  # stem, 3 per block, 4 downsamples
    assert kinds.count("maxpool3d") == 2  # maxpool and pool2
    assert layers[0].key.startswith("conv3d in=3x8x224x224 out=64 k=5x7x7 s=2x2x2")
    last = layers[-1]
    assert last.kind == "add_act" and last.in_shape[0] == 2048
    assert last.in_shape[1:] == output_shapes(config, (1, 3, 8, 224, 224))["layer4"][2:]


def _table(keys: list[str], term: NetworkTerm | None = None) -> LatencyTable:
    return LatencyTable(
        layers_ms={k: 0.5 + i for i, k in enumerate(keys)},
        device="cpu: test",
        threads=1,
        mode="eager",
        input_shape=(1, 3, 8, 32, 32),
        network_term=term or NetworkTerm(),
    )


def test_prediction_is_the_layer_sum_through_the_network_term(tmp_path: Path) -> None:
    config = ResNet3dConfig(base_channels=4, stage_blocks=(1, 1, 1, 1))
    keys = list(layer_keys(config, (1, 3, 8, 32, 32)))
    term = NetworkTerm(kind="affine_layers", scale=1.1, per_layer_ms=0.01, offset_ms=0.3)
    table = _table(sorted(set(keys)), term)
    expected_sum = sum(table.layers_ms[k] for k in keys)
    prediction = predict_latency(config, table)
    assert prediction.layers_ms == pytest.approx(expected_sum)
    assert prediction.n_layers == len(keys)
    assert prediction.latency_ms == pytest.approx(1.1 * expected_sum + 0.01 * len(keys) + 0.3)
    # the JSON round trip keeps everything a prediction reads
    loaded = LatencyTable.load(table.save(tmp_path / "t.json"))
    assert predict_latency(config, loaded) == prediction
    # a missing layer gives no number, and names the layer
    partial = _table(sorted(set(keys))[1:])
    missing = predict_latency(config, partial)
    assert math.isnan(missing.latency_ms) and missing.missing == (sorted(set(keys))[0],)


def test_network_term_recovers_a_known_model_and_is_chosen_by_cross_validation() -> None:
    rng = random.Random(0)
    points = [(s, n, 1.2 * s + 0.05 * n + 0.4) for s, n in
              ((rng.uniform(1, 50), rng.randint(10, 80)) for _ in range(12))]  # fmt: skip
    term = fit_network_term(points)
    assert term.kind == "affine_layers"
    assert (term.scale, term.per_layer_ms, term.offset_ms) == pytest.approx((1.2, 0.05, 0.4))
    assert term.cv["affine_layers"]["within_10pct"] == 1.0
    assert term.cv["sum"]["within_10pct"] < 1.0
    # the plain sum wins when it is exact (ties go to the simpler model), and without points
    assert fit_network_term([(s, n, s) for s, n, _ in points]).kind == "sum"
    assert fit_network_term([]) == NetworkTerm(kind="sum")


def test_table_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read.*r3dnas latency-table"):
        LatencyTable.load(tmp_path / "absent.json")
    (tmp_path / "x.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="format must be 'r3dnas-latency-table/1'"):
        LatencyTable.load(tmp_path / "x.json")
    with pytest.raises(ConfigError, match="network_term.kind"):
        NetworkTerm.from_dict({"kind": "cubic"})


def test_the_predictor_imports_no_torch(tmp_path: Path) -> None:
    """Loading a table and the predictor stays pure Python (building a config validates its
    layer cfgs against mmcv's registry, which is the config's own cost, as for ``cost()``)."""
    config = ResNet3dConfig(base_channels=4, stage_blocks=(1, 1, 1, 1))
    table = _table(sorted(set(layer_keys(config, (1, 3, 8, 32, 32)))))
    path = table.save(tmp_path / "t.json")
    code = (
        "import sys\n"
        "from search_space.latency_model import LatencyTable, predict_latency\n"
        f"t = LatencyTable.load({str(path)!r})\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print(len(t.layers_ms))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(table.layers_ms)


def test_every_config_of_a_shipped_space_has_keys() -> None:
    space = load_space("inflation")
    keys = {k for row in space.grid(space.param_names())
            for k in layer_keys(space.config_from_params(row), space.input_shape)}  # fmt: skip
    assert any(k.startswith("conv3d") for k in keys) and any("maxpool3d" in k for k in keys)
