"""canonicalize(): every merging rule builds the same network, and nothing else is merged.

"Same network" is checked the strict way: both spellings are built, their ``state_dict`` keys
(in order) and shapes match, and with one's weights copied into the other they give identical
outputs in eval mode and in train mode (batch-norm batch statistics included).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from random_configs import sample

from search_space import ARCH_SETTINGS, ResNet3d, ResNet3dConfig
from search_space.canonical import canonicalize

SHAPE = (2, 3, 8, 32, 32)
SMALL: dict[str, Any] = {"base_channels": 4, "stage_blocks": (1, 2, 1, 1)}
TWO_STAGES: dict[str, Any] = {
    "num_stages": 2,
    "out_indices": (1,),
    "spatial_strides": (1, 2),
    "temporal_strides": (1, 1),
    "dilations": (1, 1),
}
ONE_STAGE: dict[str, Any] = {
    "num_stages": 1,
    "out_indices": (0,),
    "spatial_strides": (1,),
    "temporal_strides": (1,),
    "dilations": (1,),
}


def _outputs(model: ResNet3d, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Eval-mode outputs, then train-mode outputs (batch statistics) of a fresh copy."""
    model.eval()
    with torch.no_grad():
        out = model(x)
        outs = out if isinstance(out, tuple) else (out,)
        train_out = model.train()(x)
    return outs + (train_out if isinstance(train_out, tuple) else (train_out,))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomized(config: ResNet3dConfig) -> ResNet3d:
    """The network with every parameter random (mmcv zero-inits a non-local's output conv,
    which would hide every non-local difference)."""
    torch.manual_seed(0)
    model = ResNet3d.from_config(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model


def assert_same_network(a: ResNet3dConfig, b: ResNet3dConfig, shape: tuple[int, ...]) -> None:
    net_a, net_b = _randomized(a), ResNet3d.from_config(b)
    state_a, state_b = net_a.state_dict(), net_b.state_dict()
    assert list(state_a) == list(state_b)
    assert [v.shape for v in state_a.values()] == [v.shape for v in state_b.values()]
    net_b.load_state_dict(state_a)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    for out_a, out_b in zip(_outputs(net_a, x), _outputs(net_b, x), strict=True):
        assert torch.equal(out_a, out_b)


def _differs(a: ResNet3dConfig, b: ResNet3dConfig, shape: tuple[int, ...]) -> bool:
    """True when the two networks differ in parameters or in outputs for the same weights."""
    net_a, net_b = _randomized(a), ResNet3d.from_config(b)
    state_a, state_b = net_a.state_dict(), net_b.state_dict()
    if [(k, v.shape) for k, v in state_a.items()] != [(k, v.shape) for k, v in state_b.items()]:
        return True
    net_b.load_state_dict(state_a)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    pairs = zip(_outputs(net_a, x), _outputs(net_b, x), strict=True)
    return any(not torch.equal(p, q) for p, q in pairs)


NON_LOCAL_DEFAULTS = {
    "sub_sample": False,
    "use_scale": True,
    "reduction": 2,
    "mode": "embedded_gaussian",
    "conv_cfg": {"type": "Conv3d"},
    "norm_cfg": None,
}
DOT = {"mode": "dot_product"}
GAUSS = {"mode": "gaussian"}

# (rule, spelling a, spelling b): a and b must build the same network and share one canonical
# form; b is already canonical.
SAME = [
    (
        "stage_blocks equal to the depth's default",
        {"depth": 50, "base_channels": 4, **TWO_STAGES, "stage_blocks": (3, 4)},
        {"depth": 50, "base_channels": 4, **TWO_STAGES},
    ),
    (
        "depth only picks block type and default blocks",
        {"depth": 101, **SMALL},
        {"depth": 50, **SMALL},
    ),
    (
        "depth 18 with depth 34's blocks",
        {"depth": 18, "base_channels": 4, **TWO_STAGES, "stage_blocks": (3, 4), "inflate": 0},
        {"depth": 34, "base_channels": 4, **TWO_STAGES, "inflate": 0},
    ),
    (
        "one stage of depth 152 is one stage of depth 50",
        {"depth": 152, "base_channels": 4, **ONE_STAGE},
        {"depth": 50, "base_channels": 4, **ONE_STAGE},
    ),
    (
        "inflate values other than 1",
        {**SMALL, "inflate": ((2,), (1, 7), 0, 1)},
        {**SMALL, "inflate": ((0,), (1, 0), 0, 1)},
    ),
    (
        "non_local values other than 1",
        {**SMALL, "non_local": ((2,), (0, 3), 0, 0), "non_local_cfg": {"mode": "dot_product"}},
        {**SMALL, "non_local": 0},
    ),
    (
        "inflate_style with nothing inflated",
        {**SMALL, "inflate": 0, "inflate_style": "3x3x3"},
        {**SMALL, "inflate": 0, "inflate_style": "3x1x1"},
    ),
    (
        "inflate_style of a BasicBlock network",
        {"depth": 18, "base_channels": 4, "inflate": (1, 0, 1, 1), "inflate_style": "3x3x3"},
        {"depth": 18, "base_channels": 4, "inflate": (1, 0, 1, 1), "inflate_style": "3x1x1"},
    ),
    (
        "non_local_cfg without non-local blocks",
        {**SMALL, "non_local_cfg": {"mode": "dot_product", "sub_sample": True, "reduction": 4}},
        {**SMALL, "non_local_cfg": {}},
    ),
    (
        "non_local_cfg entries equal to mmcv's defaults",
        {**SMALL, "non_local": (0, 1, 0, 0), "non_local_cfg": NON_LOCAL_DEFAULTS},
        {**SMALL, "non_local": (0, 1, 0, 0), "non_local_cfg": {}},
    ),
    (
        "use_scale outside embedded_gaussian (dot_product)",
        {**SMALL, "non_local": (1, 0, 0, 0), "non_local_cfg": {**DOT, "use_scale": False}},
        {**SMALL, "non_local": (1, 0, 0, 0), "non_local_cfg": DOT},
    ),
    (
        "use_scale outside embedded_gaussian (gaussian)",
        {**SMALL, "non_local": (0, 1, 0, 0), "non_local_cfg": {**GAUSS, "use_scale": False}},
        {**SMALL, "non_local": (0, 1, 0, 0), "non_local_cfg": GAUSS},
    ),
    (
        "style of a BasicBlock network",
        {"depth": 18, "base_channels": 4, "style": "caffe", "temporal_strides": (1, 2, 1, 1)},
        {"depth": 18, "base_channels": 4, "style": "pytorch", "temporal_strides": (1, 2, 1, 1)},
    ),
    (
        "style of a Bottleneck network without strides",
        {**SMALL, "spatial_strides": (1, 1, 1, 1), "style": "caffe"},
        {**SMALL, "spatial_strides": (1, 1, 1, 1), "style": "pytorch"},
    ),
    (
        "pool1 strides without pool1",
        {**SMALL, "with_pool1": False, "pool1_stride_s": 1, "pool1_stride_t": 2},
        {**SMALL, "with_pool1": False},
    ),
    (
        "out_indices order and repeats",
        {**SMALL, "out_indices": (3, 0, 3, 1)},
        {**SMALL, "out_indices": (0, 1, 3)},
    ),
    (
        "norm_cfg requires_grad default",
        {**SMALL, "norm_cfg": {"type": "BN3d"}},
        {**SMALL, "norm_cfg": {"type": "BN3d", "requires_grad": True}},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "a", "b"), SAME, ids=[rule for rule, _, _ in SAME])
def test_each_rule_merges_spellings_of_one_network(rule: str, a: dict, b: dict) -> None:
    config_a, config_b = ResNet3dConfig(**a), ResNet3dConfig(**b)
    assert config_a != config_b, rule
    assert canonicalize(config_b) is config_b, f"{rule}: b should already be canonical"
    assert canonicalize(config_a) == config_b
    assert config_a.digest() == config_b.digest()
    assert config_a.exact_digest() != config_b.exact_digest()
    assert_same_network(config_a, config_b, SHAPE)
    assert_same_network(config_a, canonicalize(config_a), SHAPE)


# (what stays apart, a, b): these build different networks and must keep different digests.
DIFFERENT = [
    (
        "inflate_style of an inflated Bottleneck",
        {**SMALL, "inflate": (0, 1, 0, 0), "inflate_style": "3x3x3"},
        {**SMALL, "inflate": (0, 1, 0, 0), "inflate_style": "3x1x1"},
    ),
    (
        "style of a strided Bottleneck",
        {**SMALL, "style": "caffe"},
        {**SMALL, "style": "pytorch"},
    ),
    (
        "use_scale in embedded_gaussian",
        {**SMALL, "non_local": (0, 1, 0, 0), "non_local_cfg": {"use_scale": False}},
        {**SMALL, "non_local": (0, 1, 0, 0), "non_local_cfg": {}},
    ),
    (
        "pool1 strides with pool1",
        {**SMALL, "pool1_stride_t": 2},
        {**SMALL, "pool1_stride_t": 1},
    ),
    (
        "explicit blocks that are no default",
        {"depth": 50, "base_channels": 4, "stage_blocks": (3, 4, 6, 2)},
        {"depth": 50, "base_channels": 4},
    ),
    (
        "block type",
        {"depth": 18, **SMALL},
        {"depth": 50, **SMALL},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("what", "a", "b"), DIFFERENT, ids=[w for w, _, _ in DIFFERENT])
def test_different_networks_keep_different_digests(what: str, a: dict, b: dict) -> None:
    config_a, config_b = ResNet3dConfig(**a), ResNet3dConfig(**b)
    assert _differs(config_a, config_b, SHAPE), f"{what}: the test case itself is wrong"
    assert canonicalize(config_a) != canonicalize(config_b)
    assert config_a.digest() != config_b.digest()


def test_depth_canonical_form_for_blocks_that_are_no_default() -> None:
    c = canonicalize(ResNet3dConfig(depth=152, stage_blocks=(1, 1, 1, 1)))
    assert (c.depth, c.stage_blocks) == (50, (1, 1, 1, 1))
    c = canonicalize(ResNet3dConfig(depth=34, stage_blocks=(1, 1, 1, 1)))
    assert (c.depth, c.stage_blocks) == (18, (1, 1, 1, 1))
    c = canonicalize(ResNet3dConfig(depth=101, **TWO_STAGES))  # (3, 4) is R50's default too
    assert (c.depth, c.stage_blocks) == (50, None)


def test_training_fields_are_kept() -> None:
    c = ResNet3dConfig(
        **SMALL,
        pretrained="x.pth",
        pretrained2d=False,
        frozen_stages=2,
        norm_eval=True,
        with_cp=True,
        zero_init_residual=False,
        conv1_kernel=(5, 7, 7),
    )
    assert canonicalize(c) is c


def _respell(config: ResNet3dConfig, rng: random.Random) -> ResNet3dConfig:
    """Another spelling of the same network, using every freedom the rules allow."""
    c = canonicalize(config)

    def zeros_respelled(per_stage: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(rng.choice((0, 2, -1)) if v != 1 else 1 for v in s) for s in per_stage)

    changes: dict[str, Any] = {
        "inflate": zeros_respelled(c.inflate),
        "non_local": zeros_respelled(c.non_local),
        "out_indices": tuple(rng.sample(c.out_indices * 2, len(c.out_indices) * 2)),
        "norm_cfg": {k: v for k, v in c.norm_cfg.items() if k != "requires_grad"},
    }
    if c.stage_blocks is None:
        changes["stage_blocks"] = c.blocks_per_stage
    same_type = [d for d, (kind, _) in ARCH_SETTINGS.items() if kind == c.block_type]
    changes["depth"] = rng.choice(same_type)
    if changes["depth"] != c.depth:
        changes["stage_blocks"] = c.blocks_per_stage
    if c.block_type == "basic" or not any(any(s) for s in c.inflate):
        changes["inflate_style"] = rng.choice(("3x1x1", "3x3x3"))
    if c.block_type == "basic" or set(c.spatial_strides + c.temporal_strides) == {1}:
        changes["style"] = rng.choice(("pytorch", "caffe"))
    if not any(any(s) for s in c.non_local):
        changes["non_local_cfg"] = {"mode": "gaussian", "sub_sample": rng.random() < 0.5}
    else:
        extra = {k: v for k, v in NON_LOCAL_DEFAULTS.items() if rng.random() < 0.5}
        if c.non_local_cfg.get("mode", "embedded_gaussian") != "embedded_gaussian":
            extra["use_scale"] = rng.random() < 0.5
        changes["non_local_cfg"] = {**extra, **c.non_local_cfg}
    if not c.with_pool1:
        changes["pool1_stride_s"], changes["pool1_stride_t"] = rng.randint(1, 3), rng.randint(1, 3)
    return c.replace(**changes)


@pytest.mark.parametrize("seed", range(10))
def test_random_configs_respelled_build_the_same_network(seed: int) -> None:
    kwargs, shape = sample(seed)
    config = ResNet3dConfig(**kwargs)
    canonical = canonicalize(config)
    assert canonicalize(canonical) == canonical  # idempotent
    assert canonical.digest() == config.digest()
    other = _respell(config, random.Random(seed))
    assert canonicalize(other) == canonical
    assert other.digest() == config.digest()
    assert_same_network(config, canonical, shape)
    assert_same_network(other, canonical, shape)


@pytest.mark.parametrize("seed", range(200))
def test_canonicalize_is_idempotent(seed: int) -> None:
    kwargs, _ = sample(seed, small_blocks=seed % 2 == 0)
    once = canonicalize(ResNet3dConfig(**kwargs))
    assert canonicalize(once) is once
    assert ResNet3dConfig.from_json(once.to_json()) == once
