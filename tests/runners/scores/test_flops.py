"""The FLOPs runner: fvcore's count agrees with the analytic model, and a wrong one is caught."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from random_configs import sample

from search_space import R3dnasError, ResNet3dConfig, preset
from search_space.cost import cost

pytest.importorskip("fvcore")

from runners.scores.flops import FlopsMismatchError, FlopsResult, measure_flops  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("include_head", [False, True])
def test_i3d_r50_agrees_with_the_analytic_cost(include_head: bool) -> None:
    shape = (1, 3, 8, 224, 224)
    result = measure_flops(preset("i3d_r50"), shape, include_head=include_head, num_classes=400)
    assert isinstance(result, FlopsResult)
    assert (
        result.flops == result.analytic_flops == (8_318_544_896 if include_head else 8_317_725_696)
    )
    assert result.params == result.analytic_params == (28_043_472 if include_head else 27_223_872)
    assert result.gflops == result.flops / 1e9
    assert result.seconds > 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("include_head", [False, True])
def test_random_configs_agree(seed: int, include_head: bool) -> None:
    kwargs, shape = sample(seed)
    config = ResNet3dConfig(**kwargs)
    result = measure_flops(config, shape, include_head=include_head, num_classes=10)
    expected = cost(config, shape, include_head=include_head, num_classes=10)
    assert (result.flops, result.params) == (expected.flops, expected.params)


def test_input_shape_as_text() -> None:
    config = ResNet3dConfig(depth=18, base_channels=8)
    assert measure_flops(config, "1,3,4,64,64").flops == cost(config, (1, 3, 4, 64, 64)).flops


@pytest.mark.parametrize(("field", "delta"), [("flops", 1), ("params", -1)])
def test_a_wrong_analytic_count_is_caught(field: str, delta: int) -> None:
    config = ResNet3dConfig(depth=18, base_channels=8, non_local=(0, 1, 0, 0))
    shape = (1, 3, 4, 64, 64)
    right = cost(config, shape)
    wrong = dataclasses.replace(right, **{field: getattr(right, field) + delta})
    with pytest.raises(FlopsMismatchError) as caught:
        measure_flops(config, shape, analytic=wrong)
    message = str(caught.value)
    assert config.digest() in message
    assert f"{right.flops:,}" in message and f"{right.params:,}" in message
    assert f"{getattr(wrong, field):,}" in message
    assert "1x3x4x64x64" in message
    assert isinstance(caught.value, R3dnasError)


def test_a_shape_that_does_not_fit_is_a_config_error() -> None:
    from search_space import ConfigError

    with pytest.raises(ConfigError, match="collapses"):
        measure_flops(ResNet3dConfig(depth=18, base_channels=8), (1, 3, 1, 8, 8))


@pytest.mark.parametrize("out_indices", [(3,), (1, 2)])
def test_the_trained_recognizer_costs_what_the_analytic_model_says(out_indices: tuple[int, ...]):
    """runners.model's Recognizer3D (what the accuracy runner trains) against cost()."""
    model_module = pytest.importorskip("runners.model")
    fvcore_nn = pytest.importorskip("fvcore.nn")
    config = ResNet3dConfig(depth=18, base_channels=8, out_indices=out_indices)
    shape = (1, 3, 4, 64, 64)
    model = model_module.build_recognizer(config, num_classes=7).eval()
    with torch.no_grad():
        analysis = fvcore_nn.FlopCountAnalysis(model, torch.zeros(shape))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        flops = analysis.total()
    expected = cost(config, shape, include_head=True, num_classes=7)
    assert (flops, sum(p.numel() for p in model.parameters())) == (expected.flops, expected.params)
