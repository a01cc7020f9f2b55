from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from random_configs import sample

from search_space import ResNet3dConfig, build_resnet3d, output_shapes, parse_input_shape

SEED_INPUT = (1, 3, 16, 320, 256)
SEED_TABLE = {
    False: {
        "stem": (1, 64, 4, 80, 64),
        "layer1": (1, 256, 4, 80, 64),
        "layer2": (1, 512, 4, 40, 32),
        "layer3": (1, 1024, 4, 20, 16),
        "layer4": (1, 2048, 4, 10, 8),
    },
    True: {
        "stem": (1, 64, 4, 80, 64),
        "layer1": (1, 256, 4, 80, 64),
        "pool2": (1, 256, 2, 80, 64),
        "layer2": (1, 512, 2, 40, 32),
        "layer3": (1, 1024, 2, 20, 16),
        "layer4": (1, 2048, 2, 10, 8),
    },
}


@pytest.mark.parametrize("with_pool2", [False, True])
def test_seed_table(with_pool2: bool) -> None:
    """The seed's printed table (input 1x3x16x320x256, I3D stem)."""
    config = ResNet3dConfig(
        conv1_kernel=(5, 7, 7), conv1_stride_t=2, pool1_stride_t=2, with_pool2=with_pool2
    )
    table = output_shapes(config, SEED_INPUT)
    assert dict(table.rows) == SEED_TABLE[with_pool2]
    assert table.names()[0] == "stem"


@pytest.mark.parametrize("with_pool2", [False, True])
def test_seed_table_matches_a_real_forward(with_pool2: bool) -> None:
    config = ResNet3dConfig(
        conv1_kernel=(5, 7, 7),
        conv1_stride_t=2,
        pool1_stride_t=2,
        with_pool2=with_pool2,
        out_indices=(0, 1, 2, 3),
    )
    model = build_resnet3d(config).eval()
    with torch.inference_mode():
        outs = model(torch.zeros(SEED_INPUT))
    expected = SEED_TABLE[with_pool2]
    first = expected["pool2"] if with_pool2 else expected["layer1"]
    assert [tuple(o.shape) for o in outs] == [
        first,
        expected["layer2"],
        expected["layer3"],
        expected["layer4"],
    ]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_inferred_shapes_equal_a_real_forward(seed: int) -> None:
    kwargs, shape = sample(seed)
    kwargs["out_indices"] = tuple(range(kwargs["num_stages"]))
    config = ResNet3dConfig(**kwargs)
    table = output_shapes(config, shape)
    model = build_resnet3d(config).eval()
    with torch.inference_mode():
        stem = model.conv1(torch.zeros(shape))
        if config.with_pool1:
            stem = model.maxpool(stem)
        outs = model(torch.zeros(shape))
    outs = outs if isinstance(outs, tuple) else (outs,)
    assert tuple(stem.shape) == table["stem"]
    assert tuple(tuple(o.shape) for o in outs) == table.outputs


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1,3,8,224,224", (1, 3, 8, 224, 224)), ("2x3x16x112x112", (2, 3, 16, 112, 112))],
)
def test_parse_input_shape(text: str, expected: tuple[int, ...]) -> None:
    assert parse_input_shape(text) == expected


@pytest.mark.parametrize("text", ["1,3,8,224", "a,b,c,d,e", "1,3,0,224,224"])
def test_parse_input_shape_rejects(text: str) -> None:
    from search_space import ConfigError

    with pytest.raises(ConfigError, match="input shape"):
        parse_input_shape(text)
