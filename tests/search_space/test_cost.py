"""The analytic cost model against fvcore, on fixed presets and random configurations.

fvcore's ``FlopCountAnalysis(model.eval(), x).total()`` and the module's parameter count are the
reference; every comparison is exact. The fvcore counts of the presets at 1x3x32x256x256 take
about a minute on 2 cores, so they are ``slow``; their values are pinned in ``PRESET_COSTS``,
which the default suite checks analytically (and against fvcore at 1x3x8x224x224).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from random_configs import sample
from torch import nn

from search_space import ConfigError, ResNet3dConfig, output_shapes, preset
from search_space.cost import (
    NormRule,
    _clear_caches,
    activation_params,
    conv_flops,
    cost,
    head_cost,
    non_local_cost,
    norm_rule,
)
from search_space.resnet3d import ResNet3d

fvcore_nn = pytest.importorskip("fvcore.nn")

SMALL = (1, 3, 8, 224, 224)
ZOO = (1, 3, 32, 256, 256)
# (preset, input) -> (flops, params, activation elements), backbone only; fvcore agrees
# (test_presets_equal_fvcore). Params with the 400-class head add 2048 * 400 + 400 = 819,600.
PRESET_COSTS = {
    ("seed_r50", SMALL): (9_139_809_280, 32_204_608, 17_937_920),
    ("seed_r50", ZOO): (47_750_840_320, 32_204_608, 93_716_480),
    ("i3d_r50", SMALL): (8_317_725_696, 27_223_872, 17_937_920),
    ("i3d_r50", ZOO): (43_455_873_024, 27_223_872, 93_716_480),
    ("i3d_r50_heavy", SMALL): (31_825_833_984, 32_204_608, 65_329_152),
    ("i3d_r50_heavy", ZOO): (166_273_744_896, 32_204_608, 341_311_488),
    ("slowonly_r50", SMALL): (41_917_833_216, 31_634_496, 88_911_872),
    ("slowonly_r50", ZOO): (218_999_291_904, 31_634_496, 464_519_168),
}


class _Head(nn.Module):
    """mmaction2's I3DHead at inference (avg pool, dropout, linear), written out here so the
    test does not trust the runner's copy."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.dropout = nn.Dropout(0.5)
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.avg_pool(x))
        return self.fc_cls(x.view(x.shape[0], -1))


class _WithHead(nn.Module):
    """Recognizer3D: the head classifies the last stage the backbone returns."""

    def __init__(self, config: ResNet3dConfig, num_classes: int, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.backbone = ResNet3d.from_config(config)
        channels = output_shapes(config, shape).outputs[-1][1]
        self.cls_head = _Head(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.backbone(x)
        return self.cls_head(out[-1] if isinstance(out, tuple) else out)


def _quiet(analysis: fvcore_nn.JitModelAnalysis) -> fvcore_nn.JitModelAnalysis:
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fvcore(
    model: nn.Module, shape: tuple[int, ...], scopes: tuple[str, ...] = ("",)
) -> list[tuple[int, int, int]]:
    """(flops, params, activation elements) of ``model``'s submodule per scope ("" = all).

    One trace per analysis, whatever the number of scopes.
    """
    model.eval()
    x = torch.zeros(shape)
    with torch.no_grad():
        flops = _quiet(fvcore_nn.FlopCountAnalysis(model, x))
        activations = _quiet(fvcore_nn.ActivationCountAnalysis(model, x))
        counts = []
        for scope in scopes:
            params = sum(p.numel() for p in model.get_submodule(scope).parameters())
            counts.append((int(flops.total(scope)), params, int(activations.total(scope))))
    return counts


def _assert_equals_fvcore(config: ResNet3dConfig, shape: tuple[int, ...], num_classes: int):
    """Backbone alone and backbone + head, in one trace of the model with the head."""
    backbone = cost(config, shape)
    full = cost(config, shape, include_head=True, num_classes=num_classes)
    expected = _fvcore(_WithHead(config, num_classes, shape), shape, ("backbone", ""))
    got = [
        (backbone.flops, backbone.params, backbone.activation_elements),
        (full.flops, full.params, full.activation_elements),
    ]
    assert got == expected, (config.to_dict(), shape)
    assert backbone.shapes == output_shapes(config, shape)


# ---------------------------------------------------------------------- fixed cases
@pytest.mark.parametrize(("name", "shape"), list(PRESET_COSTS))
def test_preset_costs_are_pinned(name: str, shape: tuple[int, ...]) -> None:
    result = cost(preset(name), shape)
    assert (result.flops, result.params, result.activation_elements) == PRESET_COSTS[name, shape]
    with_head = cost(preset(name), shape, include_head=True)
    assert with_head.params - result.params == 2048 * 400 + 400
    assert with_head.flops - result.flops == 2048 * 400  # batch 1


def test_i3d_r50_matches_the_mmaction2_model_zoo() -> None:
    """mmaction2's zoo: I3D R50 43.5G FLOPs (backbone) at 1x3x32x256x256, 28.04M params
    (with the 400-class head), 8.32G at 1x3x8x224x224."""
    config = preset("i3d_r50")
    assert cost(config, ZOO).flops == 43_455_873_024
    assert round(cost(config, ZOO, include_head=True).params_m, 2) == 28.04
    assert round(cost(config, SMALL).gflops, 2) == 8.32


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        pytest.param(*key, marks=[pytest.mark.slow] if key[1] == ZOO else [])
        for key in PRESET_COSTS
    ],
)
def test_presets_equal_fvcore(name: str, shape: tuple[int, ...]) -> None:
    """The pinned table itself, against fvcore (1x3x32x256x256 is slow: ~1 min on 2 cores)."""
    model = ResNet3d.from_config(preset(name))
    assert _fvcore(model, shape) == [PRESET_COSTS[name, shape]]


@pytest.mark.slow
@pytest.mark.parametrize("with_pool2", [False, True])
def test_seed_table_config_equals_fvcore(with_pool2: bool) -> None:
    """The seed's shape-table case (1x3x16x320x256, I3D stem), with and without pool2."""
    config = ResNet3dConfig(
        conv1_kernel=(5, 7, 7), conv1_stride_t=2, pool1_stride_t=2, with_pool2=with_pool2
    )
    _assert_equals_fvcore(config, (1, 3, 16, 320, 256), 400)


# ---------------------------------------------------------------------- random configurations
@settings(max_examples=50, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**6), num_classes=st.integers(1, 50))
def test_random_configs_equal_fvcore(seed: int, num_classes: int) -> None:
    kwargs, shape = sample(seed)
    _assert_equals_fvcore(ResNet3dConfig(**kwargs), shape, num_classes)


def _non_local_sample(seed: int) -> tuple[ResNet3dConfig, tuple[int, ...]]:
    """The first random configuration from ``seed`` on that has a non-local block."""
    for attempt in range(1000):
        kwargs, shape = sample(seed + attempt * 10**7)
        config = ResNet3dConfig(**kwargs)
        if any(1 in stage for stage in config.non_local):
            return config, shape
    raise AssertionError(f"no random configuration with a non-local block from seed {seed}")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_random_non_local_configs_equal_fvcore(seed: int) -> None:
    config, shape = _non_local_sample(seed)
    _assert_equals_fvcore(config, shape, 7)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5000, 5300))
def test_many_random_configs_equal_fvcore(seed: int) -> None:
    kwargs, shape = sample(seed, small_blocks=seed % 3 != 0)
    _assert_equals_fvcore(ResNet3dConfig(**kwargs), shape, 11)


# A two-stage network small enough to trace in a fraction of a second.
TINY = {
    "depth": 18,
    "num_stages": 2,
    "stage_blocks": (1, 1),
    "base_channels": 8,
    "out_indices": (1,),
    "spatial_strides": (1, 2),
    "temporal_strides": (1, 1),
    "dilations": (1, 1),
}


@pytest.mark.parametrize("mode", ["embedded_gaussian", "gaussian", "dot_product", "concatenation"])
@pytest.mark.parametrize("sub_sample", [False, True])
@pytest.mark.parametrize(
    ("reduction", "use_scale", "norm_cfg"),
    [(2, True, None), (1, False, {"type": "BN3d", "requires_grad": True}), (16, True, None)],
)
def test_every_non_local_mode_equals_fvcore(
    mode: str, sub_sample: bool, reduction: int, use_scale: bool, norm_cfg: dict | None
) -> None:
    non_local_cfg = {
        "mode": mode, "sub_sample": sub_sample, "reduction": reduction, "use_scale": use_scale
    }  # fmt: skip
    if norm_cfg is not None:
        non_local_cfg["norm_cfg"] = norm_cfg
    config = ResNet3dConfig(
        **TINY, non_local=((1,), (1,)), non_local_cfg=non_local_cfg, inflate=(1, 0)
    )
    _assert_equals_fvcore(config, (2, 3, 6, 40, 36), 5)


@pytest.mark.parametrize(
    ("norm_cfg", "act_cfg"),
    [
        ({"type": "BN3d", "affine": False}, {"type": "ReLU"}),
        ({"type": "BN3d", "track_running_stats": False}, {"type": "GELU"}),
        ({"type": "SyncBN"}, {"type": "LeakyReLU"}),
        ({"type": "GN", "num_groups": 4}, {"type": "PReLU"}),
        ({"type": "IN3d"}, {"type": "SiLU"}),
        ({"type": "IN3d", "affine": True}, {"type": "Swish"}),
    ],
)
@pytest.mark.parametrize("depth", [18, 50])
def test_norm_and_activation_types_equal_fvcore(norm_cfg: dict, act_cfg: dict, depth: int):
    config = ResNet3dConfig(
        **{**TINY, "depth": depth}, norm_cfg=norm_cfg, act_cfg=act_cfg, inflate=(0, 1)
    )
    _assert_equals_fvcore(config, (1, 3, 4, 32, 32), 3)


# ---------------------------------------------------------------------- closed forms
def test_conv_flops_is_weights_times_positions() -> None:
    assert conv_flops(3, 64, (5, 7, 7), 16 * 112 * 112) == 3 * 64 * 245 * 16 * 112 * 112


@pytest.mark.parametrize(
    ("expected", "norm_cfg"),
    [
        (NormRule(2, 2), {"type": "BN3d", "requires_grad": True}),
        (NormRule(0, 1), {"type": "BN3d", "affine": False}),
        (NormRule(2, 5), {"type": "BN3d", "track_running_stats": False}),
        (NormRule(2, 2), {"type": "SyncBN"}),
        (NormRule(2, 5), {"type": "GN", "num_groups": 8}),
        (NormRule(0, 4), {"type": "GN", "num_groups": 8, "affine": False}),
        (NormRule(0, 4), {"type": "IN3d"}),
        (NormRule(2, 5), {"type": "IN3d", "affine": True}),
    ],
)
def test_norm_rule(expected: NormRule, norm_cfg: dict) -> None:
    assert norm_rule(norm_cfg) == expected


@pytest.mark.parametrize(
    ("expected", "act_cfg"),
    [(0, {"type": "ReLU", "inplace": True}), (1, {"type": "PReLU"}), (0, {"type": "GELU"})],
)
def test_activation_params(expected: int, act_cfg: dict) -> None:
    assert activation_params(act_cfg) == expected


# fvcore's counts of mmcv NonLocal3d(16, mode=..., sub_sample=...) on a 1x16x3x6x5 input:
# P = 90 positions, P' = 18 sub-sampled, inter = 8.
@pytest.mark.parametrize(
    ("expected", "mode", "sub_sample"),
    [
        ((175_680, 552, 12_420), "embedded_gaussian", False),
        ((72_000, 552, 5_940), "embedded_gaussian", True),
        ((217_440, 280, 10_980), "gaussian", False),
        ((61_920, 280, 4_500), "gaussian", True),
        ((175_680, 552, 12_420), "dot_product", False),
        ((240_480, 568, 12_420), "concatenation", False),
        ((84_960, 568, 5_940), "concatenation", True),
    ],
)
def test_non_local_cost(expected: tuple[int, int, int], mode: str, sub_sample: bool) -> None:
    assert non_local_cost(16, (3, 6, 5), mode=mode, sub_sample=sub_sample) == expected
    # closed form of embedded_gaussian: 4 convs of 16*8*P, two P*8*P' matmuls
    if mode == "embedded_gaussian":
        pooled = 18 if sub_sample else 90
        assert expected[0] == 4 * 16 * 8 * 90 + 2 * 90 * 8 * pooled


def test_non_local_out_norm_replaces_the_bias() -> None:
    plain = non_local_cost(16, (3, 6, 5))
    with_bn = non_local_cost(16, (3, 6, 5), out_norm=NormRule(2, 2))
    assert with_bn[1] - plain[1] == 16  # +2C norm params, -C bias
    assert with_bn[0] - plain[0] == 2 * 16 * 90


def test_head_cost() -> None:
    assert head_cost(2048, 400) == (2048 * 400, 2048 * 400 + 400, 400)


# ---------------------------------------------------------------------- contract
def test_batch_scales_flops_and_activations_not_params() -> None:
    one = cost(preset("i3d_r50"), (1, 3, 8, 112, 112), include_head=True)
    three = cost(preset("i3d_r50"), (3, 3, 8, 112, 112), include_head=True)
    assert three.flops == 3 * one.flops
    assert three.activation_elements == 3 * one.activation_elements
    assert three.params == one.params


def test_stages_after_the_last_output_cost_params_only() -> None:
    """fvcore's trace drops stages whose output is never returned; the head reads the last
    returned stage."""
    config = preset("i3d_r50").replace(out_indices=(1,))
    two_stages = config.replace(
        num_stages=2,
        spatial_strides=(1, 2),
        temporal_strides=(1, 1),
        dilations=(1, 1),
        inflate=config.inflate[:2],
    )
    flops, params, _ = PRESET_COSTS["i3d_r50", SMALL]
    assert cost(config, SMALL).flops == cost(two_stages, SMALL).flops < flops
    assert cost(config, SMALL).params == params
    with_head = cost(config, SMALL, include_head=True)
    assert with_head.flops == cost(two_stages, SMALL).flops + 512 * 400
    assert with_head.params == params + 512 * 400 + 400
    assert cost(config.replace(out_indices=(0, 3)), SMALL).flops == flops


def test_cold_and_warm_caches_agree() -> None:
    kwargs, shape = sample(3)
    config = ResNet3dConfig(**kwargs)
    warm = cost(config, shape)
    _clear_caches()
    assert cost(config, shape) == warm


def test_result_fields_and_format() -> None:
    result = cost(preset("i3d_r50"), ZOO, include_head=True, num_classes=400)
    assert result.gflops == result.flops / 1e9
    assert result.params_m == result.params / 1e6
    assert result.activation_mb == 4 * result.activation_elements / 1e6
    assert result.input_shape == ZOO
    assert (result.include_head, result.num_classes) == (True, 400)
    assert cost(preset("i3d_r50"), ZOO).num_classes is None
    text = result.format()
    for needle in ("gflops  43.457", "28,043,472", "layer4  1x2048x4x8x8", "I3D head"):
        assert needle in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.flops = 0  # type: ignore[misc]


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("changes", "shape"),
    [
        ({}, (1, 3, 1, 4, 4)),  # collapses in the stem / pool2
        ({"with_pool2": True, "conv1_stride_t": 2, "pool1_stride_t": 2}, (1, 3, 3, 64, 64)),
        ({"non_local": ((0,), (1,)), "non_local_cfg": {"sub_sample": True}}, (1, 3, 4, 8, 8)),
        ({}, (1, 4, 8, 64, 64)),  # channels
    ],
)
def test_shape_errors_are_those_of_output_shapes(changes: dict, shape: tuple[int, ...]) -> None:
    config = ResNet3dConfig(**{**TINY, **changes})
    with pytest.raises(ConfigError) as expected:
        output_shapes(config, shape)
    with pytest.raises(ConfigError) as got:
        cost(config, shape)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("norm_cfg.type", {"norm_cfg": {"type": "LN"}}),
        ("act_cfg.type", {"act_cfg": {"type": "Dropout"}}),
        ("conv_cfg.type", {"conv_cfg": {"type": "deconv3d"}}),
        (
            "non_local_cfg.norm_cfg.type",
            {"non_local": ((1,), (0,)), "non_local_cfg": {"norm_cfg": {"type": "BN2d"}}},
        ),
    ],
)
def test_layer_types_without_a_rule_are_rejected_by_name(field: str, changes: dict) -> None:
    # NOTE: the config refuses them already (one static table for config and cost).
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        cost(ResNet3dConfig(**{**TINY, **changes}), (1, 3, 8, 32, 32))


@pytest.mark.parametrize("num_classes", [0, -3, True, 2.5])
def test_bad_num_classes(num_classes: object) -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        cost(preset("i3d_r50"), SMALL, include_head=True, num_classes=num_classes)  # type: ignore[arg-type]
