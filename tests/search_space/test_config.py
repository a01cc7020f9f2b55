from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from search_space import ConfigError, ResNet3dConfig, output_shapes
from search_space.layer_types import LAYER_TYPES


def test_defaults_are_mmaction2s() -> None:
    c = ResNet3dConfig()
    assert c.depth == 50
    assert c.conv1_kernel == (3, 7, 7)
    assert (c.conv1_stride_t, c.pool1_stride_t) == (1, 1)
    assert c.with_pool1 and c.with_pool2
    assert c.inflate == ((1, 1, 1), (1, 1, 1, 1), (1, 1, 1, 1, 1, 1), (1, 1, 1))
    assert c.non_local == ((0, 0, 0), (0, 0, 0, 0), (0,) * 6, (0, 0, 0))
    assert c.norm_cfg == {"type": "BN3d", "requires_grad": True}
    assert c.act_cfg == {"type": "ReLU", "inplace": True}
    assert c.zero_init_residual and c.pretrained2d and not c.norm_eval


def test_field_names_are_the_constructor_arguments() -> None:
    names = [f.name for f in dataclasses.fields(ResNet3dConfig)]
    assert names == [
        "depth", "pretrained", "stage_blocks", "pretrained2d", "in_channels", "num_stages",
        "base_channels", "out_indices", "spatial_strides", "temporal_strides", "dilations",
        "conv1_kernel", "conv1_stride_s", "conv1_stride_t", "pool1_stride_s", "pool1_stride_t",
        "with_pool1", "with_pool2", "style", "frozen_stages", "inflate", "inflate_style",
        "conv_cfg", "norm_cfg", "act_cfg", "norm_eval", "with_cp", "non_local",
        "non_local_cfg", "zero_init_residual",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("inflate", "expected"),
    [
        (0, ((0, 0), (0, 0), (0, 0), (0, 0))),
        ((1, 0, 1, 0), ((1, 1), (0, 0), (1, 1), (0, 0))),
        (((1, 0), 1, (0, 1), 0), ((1, 0), (1, 1), (0, 1), (0, 0))),
        ([1, 1, 1, 1, 1], ((1, 1), (1, 1), (1, 1), (1, 1))),  # extras ignored, as mmaction2
    ],
)
def test_inflate_is_broadcast_twice(inflate: object, expected: object) -> None:
    assert ResNet3dConfig(depth=18, inflate=inflate).inflate == expected


def test_round_trip_through_json_is_exact() -> None:
    c = ResNet3dConfig(
        depth=101,
        inflate=((1, 1, 1), (1, 0, 1, 0), 1, (0, 1, 0)),
        non_local=(0, 1, 0, 0),
        non_local_cfg={"sub_sample": True, "mode": "dot_product"},
        dilations=[1, 1, 2, 2],
        out_indices=[1, 3],
        conv1_kernel=5,
        style="caffe",
    )
    again = ResNet3dConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    assert again.to_dict() == c.to_dict()
    assert again.digest() == c.digest()
    assert ResNet3dConfig.from_json(c.to_json()) == c


def test_digest_differs_when_the_architecture_differs() -> None:
    assert ResNet3dConfig().digest() != ResNet3dConfig(with_pool2=False).digest()
    assert len(ResNet3dConfig().digest()) == 12


def test_from_dict_rejects_unknown_keys_by_name() -> None:
    with pytest.raises(ConfigError, match="'inflate_styel'"):
        ResNet3dConfig.from_dict({"inflate_styel": "3x3x3"})


def test_from_dict_accepts_an_mmaction2_backbone_dict() -> None:
    c = ResNet3dConfig.from_dict({"type": "ResNet3d", "depth": 18, "init_cfg": None})
    assert c.depth == 18
    with pytest.raises(ConfigError, match="type"):
        ResNet3dConfig.from_dict({"type": "ResNet2Plus1d"})


def test_config_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ResNet3dConfig().depth = 18  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("depth", {"depth": 42}),
        ("num_stages", {"num_stages": 5}),
        ("spatial_strides", {"spatial_strides": (1, 2, 2)}),
        ("temporal_strides", {"temporal_strides": (1, 1, 1, 1, 1)}),
        ("dilations", {"dilations": (1, 0, 1, 1)}),
        ("spatial_strides", {"spatial_strides": (1, -2, 2, 2)}),
        ("conv1_stride_t", {"conv1_stride_t": 0}),
        ("pool1_stride_s", {"pool1_stride_s": 0}),
        ("conv1_kernel", {"conv1_kernel": (3, 7)}),
        ("style", {"style": "tf"}),
        ("inflate_style", {"inflate_style": "3x1"}),
        ("out_indices", {"out_indices": (4,)}),
        ("out_indices", {"out_indices": (-1,)}),
        ("out_indices", {"out_indices": ()}),
        ("frozen_stages", {"frozen_stages": 5}),
        ("inflate", {"inflate": (1, 1, 1)}),
        (
            "inflate\\[1\\].*layer2 has 8 blocks",
            {"depth": 152, "inflate": ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))},
        ),
        ("non_local\\[0\\]", {"non_local": ((1, 0), 0, 0, 0)}),
        ("stage_blocks", {"stage_blocks": (2, 2, 2)}),
        ("stage_blocks", {"stage_blocks": (2, 0, 2, 2)}),
        ("in_channels", {"in_channels": 0}),
        ("base_channels", {"base_channels": 0}),
        ("with_pool2", {"with_pool2": "yes"}),
        ("non_local_cfg", {"non_local_cfg": {"subsample": True}}),
        ("non_local_cfg.mode", {"non_local_cfg": {"mode": "softmax"}}),
        ("norm_cfg.type", {"norm_cfg": {"type": "BatchNorm9d"}}),
        ("norm_cfg", {"norm_cfg": None}),
        ("conv_cfg.type", {"conv_cfg": {"type": "Conv2d"}}),
        ("act_cfg.type", {"act_cfg": {"type": "Relu"}}),
        ("temporal_strides\\[0\\]", {"depth": 18, "temporal_strides": (2, 1, 1, 1)}),
        ("pretrained", {"pretrained": 3}),
    ],
)
def test_invalid_values_name_the_field(field: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        ResNet3dConfig(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_temporal_stride_is_fine_where_a_downsample_exists() -> None:
    # R50 layer1 changes channels (64 -> 256), so it has a downsample.
    assert ResNet3dConfig(depth=50, temporal_strides=(2, 1, 1, 1)).temporal_strides[0] == 2
    # R18 layer1 with a spatial stride also gets one.
    ResNet3dConfig(depth=18, temporal_strides=(2, 1, 1, 1), spatial_strides=(2, 2, 2, 2))


def test_mmaction2_style_num_stages_three_with_default_inflate() -> None:
    c = ResNet3dConfig(
        num_stages=3,
        spatial_strides=(1, 2, 2),
        temporal_strides=(1, 1, 1),
        dilations=(1, 1, 1),
        out_indices=(2,),
    )
    assert len(c.inflate) == 3 and c.blocks_per_stage == (3, 4, 6)


@pytest.mark.parametrize(
    ("where", "kwargs", "input_shape"),
    [
        ("pool2", {"depth": 18}, (1, 3, 1, 64, 64)),
        ("pool2", {"conv1_stride_t": 2, "pool1_stride_t": 2}, (1, 3, 4, 64, 64)),
        ("conv1", {"conv1_kernel": (4, 7, 7)}, (1, 3, 1, 64, 64)),
        ("layer4", {"with_pool2": False, "temporal_strides": (1, 1, 1, 2)}, (0, 3, 1, 64, 64)),
    ],
)
def test_collapsing_input_shapes_are_rejected(
    where: str, kwargs: dict[str, object], input_shape: tuple[int, ...]
) -> None:
    config = ResNet3dConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="input shape|input_shape") as info:
        output_shapes(config, input_shape)
    if input_shape[0] > 0:
        assert where in str(info.value)


def test_non_local_sub_sample_needs_two_pixels() -> None:
    config = ResNet3dConfig(depth=18, non_local=(0, 0, 0, 1), non_local_cfg={"sub_sample": True})
    output_shapes(config, (1, 3, 8, 64, 64))  # layer4 is 2x2: fine
    with pytest.raises(ConfigError, match="non_local_block"):
        output_shapes(config, (1, 3, 8, 32, 32))  # layer4 is 1x1


def test_input_channels_must_match() -> None:
    with pytest.raises(ConfigError, match="in_channels"):
        output_shapes(ResNet3dConfig(), (1, 1, 8, 64, 64))


def test_validating_and_costing_a_config_imports_neither_torch_nor_mmcv() -> None:
    code = (
        "import sys\n"
        "from search_space import ResNet3dConfig, cost\n"
        "config = ResNet3dConfig(norm_cfg={'type': 'GN', 'num_groups': 2},\n"
        "                        act_cfg={'type': 'SiLU'})\n"
        "cost(config, (1, 3, 8, 64, 64)); config.digest()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'mmcv', 'mmengine'}))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("norm_cfg.type", {"norm_cfg": {"type": "LN"}}),
        ("norm_cfg.type", {"norm_cfg": {"type": "BN"}}),
        ("conv_cfg.type", {"conv_cfg": {"type": "deconv3d"}}),
        ("act_cfg.type", {"act_cfg": {"type": "Dropout"}}),
        ("non_local_cfg.norm_cfg.type", {"non_local_cfg": {"norm_cfg": {"type": "LN"}}}),
    ],
)
def test_layer_types_mmcv_has_but_cost_cannot_count_fail_the_config(
    field: str, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.") + " must be one of"):
        ResNet3dConfig(**kwargs)  # type: ignore[arg-type]


def test_every_layer_type_of_the_static_table_is_registered_in_mmcv() -> None:
    import mmcv.cnn  # noqa: F401  (registers mmcv's layers)
    from mmengine.registry import MODELS

    for kind, names in LAYER_TYPES.items():
        for name in names:
            assert MODELS.get(name) is not None, f"{kind} type {name!r} is not in mmcv"
