"""Training-free scores: finite and deterministic on a real tiny ResNet3d, pure (the model is
left untouched), and equal to their closed forms on networks small enough to do by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from runners.scores.training_free import (
    SCORES,
    build_scoring_model,
    get_score,
    grad_norm,
    naswot,
    naswot_logdet,
    parse_score_names,
    snip,
    synflow,
    temporal_order,
    zico,
)
from search_space import ResNet3dConfig
from search_space.errors import ConfigError

TINY = ResNet3dConfig(depth=18, stage_blocks=(1, 1, 1, 1), base_channels=4, inflate=1)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    clips = torch.randn(4, 3, 4, 16, 16, generator=generator)
    return clips, torch.tensor([0, 1, 2, 0])


@pytest.mark.parametrize("name", sorted(SCORES))
def test_every_score_is_finite_deterministic_and_pure(
    name: str, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    torch.set_num_threads(1)
    model = build_scoring_model(TINY, num_classes=3, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = SCORES[name](model, batch)
    again = SCORES[name](build_scoring_model(TINY, num_classes=3, seed=0), batch)
    assert math.isfinite(first)
    assert first == again
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the score changed the model"
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # as built


def test_another_seed_gives_another_network_and_score(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    values = {grad_norm(build_scoring_model(TINY, num_classes=3, seed=s), batch) for s in (0, 1)}
    assert len(values) == 2


def _linear(weight: list[list[float]], bias: list[float] | None = None) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    return layer


def test_synflow_of_a_linear_chain_is_depth_times_the_path_sum() -> None:
    w1 = [[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]
    w2 = [[-1.0, 2.0], [0.5, 0.25], [4.0, -3.0]]
    model = nn.Sequential(_linear(w1), _linear(w2))
    paths = torch.ones(3) @ torch.tensor(w2).abs() @ torch.tensor(w1).abs() @ torch.ones(3)
    batch = (torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    assert synflow(model, batch) == pytest.approx(2 * float(paths), rel=1e-12)


def test_grad_norm_snip_and_zico_equal_the_cross_entropy_gradient_by_hand() -> None:
    weight = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]]
    model = nn.Sequential(_linear(weight, bias=[0.1, -0.2]))
    x = torch.tensor([[1.0, 0.0, 2.0], [0.5, -1.0, 1.0], [-1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])
    w = torch.tensor(weight)

    def gradient(rows: slice) -> torch.Tensor:
        # dCE/dW of a linear layer: (softmax(z) - onehot)^T x / N
        xs, ys = x[rows], y[rows]
        z = xs @ w.T + torch.tensor([0.1, -0.2])
        return (z.softmax(1) - F.one_hot(ys, 2).float()).T @ xs / len(xs)

    full = gradient(slice(None))
    assert grad_norm(model, (x, y)) == pytest.approx(float(full.norm()), rel=1e-5)
    assert snip(model, (x, y)) == pytest.approx(float((w * full).abs().sum()), rel=1e-5)
    halves = torch.stack([gradient(slice(0, 2)), gradient(slice(2, 4))]).flatten(1)
    std = halves.std(0, unbiased=False)
    live = std > 0
    expected = math.log(float((halves.abs().mean(0)[live] / std[live]).sum()))
    assert zico(model, (x, y)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_naswot_logdet_of_identity_codes(n: int) -> None:
    # K = (n-2) J + 2 I: eigenvalues 2 (n-1 times) and 2 + n(n-2)
    expected = (n - 1) * math.log(2) + math.log(2 + n * (n - 2))
    assert naswot_logdet(torch.eye(n)) == pytest.approx(expected, rel=1e-12)


def test_naswot_reads_the_relu_codes_of_the_batch() -> None:
    model = nn.Sequential(_linear(torch.eye(4).tolist()), nn.ReLU())
    batch = (torch.eye(4), torch.zeros(4, dtype=torch.long))
    assert naswot(model, batch) == pytest.approx(naswot_logdet(torch.eye(4)), rel=1e-12)
    twins = (torch.ones(2, 4), torch.zeros(2, dtype=torch.long))  # identical codes: singular
    assert naswot(model, twins) == -math.inf


def test_an_unknown_score_is_one_error_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="score must be one of grad_norm, naswot, .*; got 'x'"):
        get_score("x")
    with pytest.raises(ConfigError, match="got 'bogus'"):
        parse_score_names("synflow,bogus")
    with pytest.raises(ConfigError, match="repeated"):
        parse_score_names("snip,snip")
    assert parse_score_names("all") == tuple(SCORES)
    assert parse_score_names(" naswot , zico") == ("naswot", "zico")


def test_zico_needs_two_parts(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    model = build_scoring_model(TINY, num_classes=3, seed=0)
    with pytest.raises(ConfigError, match="splits"):
        zico(model, batch, splits=1)


def test_temporal_order_is_zero_without_temporal_mixing(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    frame_wise = TINY.replace(inflate=0, conv1_kernel=(1, 7, 7), with_pool2=False)
    flat = temporal_order(build_scoring_model(frame_wise, num_classes=3, seed=0), batch)
    assert flat == pytest.approx(0.0, abs=1e-9)
    assert temporal_order(build_scoring_model(TINY, num_classes=3, seed=0), batch) > 1e-6
