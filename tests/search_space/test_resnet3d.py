from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
import torch
from resnet2d import Basic2d, Bottleneck2d, ResNet2d, randomize

from search_space import (
    PRESETS,
    ConfigError,
    ConfigTypeError,
    ResNet3d,
    ResNet3dConfig,
    build_resnet3d,
    load_inflated_2d,
    preset,
)
from search_space.blocks import BasicBlock3d, Bottleneck3d, make_res_layer


def test_train_returns_self_and_reapplies_frozen_stages_and_norm_eval() -> None:
    model = ResNet3d(depth=18, base_channels=4, frozen_stages=2, norm_eval=True)
    assert model.train() is model
    assert model.eval() is model
    model.train()
    assert not model.conv1.training and not model.layer1.training and not model.layer2.training
    assert all(not p.requires_grad for p in model.layer2.parameters())
    assert all(p.requires_grad for p in model.layer3.parameters())
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert bns and all(not m.training for m in bns)  # norm_eval
    assert model.layer3.training  # non-BN modules of unfrozen stages train


def test_init_weights_zeroes_the_last_bn_of_each_residual_branch() -> None:
    model = build_resnet3d(ResNet3dConfig(depth=50, base_channels=4, stage_blocks=(1, 2, 1, 1)))
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck3d)]
    assert len(blocks) == 5
    for block in blocks:
        assert torch.count_nonzero(block.conv3.bn.weight) == 0
        assert torch.count_nonzero(block.conv2.bn.weight) == block.conv2.bn.weight.numel()
    off = build_resnet3d(ResNet3dConfig(depth=18, base_channels=4, zero_init_residual=False))
    for block in (m for m in off.modules() if isinstance(m, BasicBlock3d)):
        assert torch.all(block.conv2.bn.weight == 1)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_forward_and_backward(name: str) -> None:
    config = preset(name).replace(base_channels=8)
    model = build_resnet3d(config).train()
    # NOTE: zero-init residual blocks give zero gradients to earlier BNs' inputs only through
    # the identity path; randomise so every parameter must receive a real gradient.
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    out = model(torch.randn(2, 3, 8, 64, 64))
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


def test_make_res_layer_follows_the_seed() -> None:
    layer = make_res_layer(
        Bottleneck3d, 64, 64, 3, spatial_stride=2, temporal_stride=1, inflate=(1, 0, 1)
    )
    assert len(layer) == 3
    first = layer[0]
    assert first.downsample.conv.stride == (1, 2, 2)
    assert first.conv1.conv.kernel_size == (3, 1, 1) and first.conv2.conv.stride == (1, 2, 2)
    assert layer[1].conv1.conv.kernel_size == (1, 1, 1) and layer[1].downsample is None
    with pytest.raises(ConfigError, match="one entry per block"):
        make_res_layer(Bottleneck3d, 64, 64, 3, inflate=(1, 0))


def _i3d_pair(
    block2d: type[Basic2d | Bottleneck2d], depth: int, inflate: object, kt: int
) -> tuple[ResNet2d, ResNet3d]:
    blocks = (1, 2, 1, 1)
    net2d = randomize(ResNet2d(block2d, blocks, base=8), seed=1).eval()
    config = ResNet3dConfig(
        depth=depth,
        stage_blocks=blocks,
        base_channels=8,
        conv1_kernel=(kt, 7, 7),
        inflate=inflate,
        with_pool2=False,
    )
    net3d = ResNet3d.from_config(config)
    report = load_inflated_2d(net3d, net2d.state_dict(), strict=True)
    assert report.complete and report.head == ("fc.bias", "fc.weight")
    return net2d, net3d.eval()


@pytest.mark.parametrize(
    ("block2d", "depth", "inflate", "kt"),
    [(Bottleneck2d, 50, 1, 5), (Basic2d, 18, 1, 3), (Bottleneck2d, 50, (0, 1, 0, 1), 1)],
)
def test_inflated_network_sees_a_static_clip_as_the_2d_network_sees_the_image(
    block2d: type[Basic2d | Bottleneck2d], depth: int, inflate: object, kt: int
) -> None:
    """The I3D property: kernels repeated over time / kt make a "boring video" look like its
    frame. Zero temporal padding only disturbs the first and last frames, so the check is on
    the middle frame, whose receptive field stays inside the clip."""
    net2d, net3d = _i3d_pair(block2d, depth, inflate, kt)
    image = torch.randn(1, 3, 64, 64)
    clip = image.unsqueeze(2).expand(1, 3, 24, 64, 64).contiguous()
    with torch.no_grad():
        feat2d = net2d.features(image).mean(dim=(2, 3))
        feat3d = net3d(clip)
    middle = feat3d[:, :, feat3d.shape[2] // 2].mean(dim=(2, 3))
    assert torch.allclose(middle, feat2d, rtol=1e-4, atol=1e-5)
    # and the inflation really happened: an un-inflated copy differs
    assert not torch.allclose(feat2d, torch.zeros_like(feat2d))


def test_without_temporal_kernels_every_frame_matches() -> None:
    net2d, net3d = _i3d_pair(Bottleneck2d, 50, 0, 1)
    image = torch.randn(1, 3, 64, 64)
    clip = image.unsqueeze(2).expand(1, 3, 4, 64, 64).contiguous()
    with torch.no_grad():
        feat2d = net2d.features(image)
        feat3d = net3d(clip)
    for t in range(feat3d.shape[2]):
        assert torch.allclose(feat3d[:, :, t], feat2d, rtol=1e-4, atol=1e-5)


def test_inflation_mismatches_are_reported_by_name(tmp_path: object) -> None:
    net2d = ResNet2d(Bottleneck2d, (1, 1, 1, 1), base=8)
    state = net2d.state_dict()
    del state["layer2.0.bn1.running_mean"]
    state["layer3.0.conv2.weight"] = torch.zeros(3, 3, 3, 3)
    state["extra.weight"] = torch.zeros(1)
    net3d = ResNet3d(depth=50, stage_blocks=(1, 1, 1, 1), base_channels=8)
    with pytest.warns(UserWarning, match="layer3.0.conv2.conv.weight"):
        report = load_inflated_2d(net3d, state)
    assert "layer2.0.conv1.bn.running_mean" in report.missing
    assert any(m.startswith("layer3.0.conv2.conv.weight") for m in report.shape_mismatch)
    assert set(report.unused) == {"extra.weight", "layer3.0.conv2.weight"}
    with pytest.raises(ConfigError, match="extra.weight"):
        load_inflated_2d(net3d, state, strict=True)


def test_pretrained_file_is_inflated_by_init_weights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    net2d = randomize(ResNet2d(Bottleneck2d, (1, 1, 1, 1), base=8), seed=3)
    path = tmp_path / "r50_2d.pth"
    torch.save({"state_dict": net2d.state_dict()}, path)
    config = ResNet3dConfig(
        depth=50, stage_blocks=(1, 1, 1, 1), base_channels=8, pretrained=str(path)
    )
    model = build_resnet3d(config)
    w3 = model.layer1[0].conv1.conv.weight  # (3,1,1) kernel: inflated over 3 frames
    w2 = net2d.layer1[0].conv1.weight
    assert torch.allclose(w3, w2.unsqueeze(2).expand_as(w3) / 3)
    with pytest.raises(ConfigError, match="not found"):
        build_resnet3d(config.replace(pretrained=str(tmp_path / "missing.pth")))


# ---------------------------------------------------------------------- mmaction2's constructor
def test_constructor_binds_the_config_fields_in_order() -> None:
    params = list(inspect.signature(ResNet3d).parameters.values())
    names = [p.name for p in params]
    assert names == [f.name for f in dataclasses.fields(ResNet3dConfig)] + ["init_cfg"]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
    small = {"base_channels": 4}
    assert ResNet3d(**small).config == ResNet3dConfig(**small)  # same defaults


def test_positional_arguments_build_what_keywords_build() -> None:
    kwargs = {
        "depth": 18,
        "pretrained": None,
        "stage_blocks": (1, 2, 1),
        "pretrained2d": False,
        "in_channels": 2,
        "num_stages": 3,
        "base_channels": 4,
        "out_indices": (1, 2),
        "spatial_strides": (1, 2, 1),
        "temporal_strides": (1, 2, 1),
        "dilations": (1, 1, 2),
        "conv1_kernel": (1, 3, 3),
        "conv1_stride_s": 1,
        "conv1_stride_t": 2,
        "pool1_stride_s": 1,
        "pool1_stride_t": 2,
        "with_pool1": False,
        "with_pool2": False,
        "style": "caffe",
        "frozen_stages": 1,
        "inflate": (0, (1, 0), 1),
        "inflate_style": "3x3x3",
        "conv_cfg": {"type": "Conv3d"},
        "norm_cfg": {"type": "BN3d", "requires_grad": False},
        "act_cfg": {"type": "ReLU", "inplace": False},
        "norm_eval": True,
        "with_cp": True,
        "non_local": (0, 0, 0),
        "non_local_cfg": {},
        "zero_init_residual": False,
    }
    by_position = ResNet3d(*kwargs.values())
    assert by_position.config == ResNet3d(**kwargs).config == ResNet3dConfig(**kwargs)
    assert by_position.config.style == "caffe" and by_position.config.frozen_stages == 1
    # mmaction2's own tests' spelling
    assert ResNet3d(18, None, pretrained2d=False, base_channels=4).config == ResNet3dConfig(
        depth=18, pretrained2d=False, base_channels=4
    )


@pytest.mark.parametrize("pretrained", [["resnet", "bninception"], 3, {"path": "x.pth"}])
def test_a_non_string_pretrained_is_a_type_error(pretrained: object) -> None:
    with pytest.raises(TypeError, match="pretrained") as info:
        ResNet3d(34, pretrained)  # type: ignore[arg-type]
    # still one-line ConfigError for the CLI
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("error", "call"),
    [
        (TypeError, lambda: ResNet3d(18, None, None, True, 3, 4, 4, (3,), base_channels=4)),
        (TypeError, lambda: ResNet3d(*[None] * 32)),  # one more than depth..init_cfg
        (TypeError, lambda: ResNet3d(18, base_channels=4, num_block=2)),
        (ConfigError, lambda: ResNet3d(18, base_channels=4, init_cfg={"type": "Kaiming"})),
        (ConfigError, lambda: ResNet3d(18, None, num_stages=5)),
    ],
    ids=["twice", "too-many", "unknown-keyword", "init_cfg", "num_stages"],
)
def test_constructor_rejects_what_python_or_the_config_rejects(
    error: type[Exception], call: Any
) -> None:
    with pytest.raises(error):
        call()


def test_wrong_types_are_type_errors_and_wrong_values_are_not() -> None:
    with pytest.raises(ConfigTypeError, match="spatial_strides"):
        ResNet3d(18, None, spatial_strides=2)  # type: ignore[arg-type]
    with pytest.raises(ConfigTypeError, match="norm_cfg"):
        ResNet3d(18, None, norm_cfg="BN3d")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="base_channels") as info:
        ResNet3d(18, None, base_channels=0)
    assert not isinstance(info.value, TypeError)
