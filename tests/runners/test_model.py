"""``I3DHead`` as a drop-in for mmaction2's: its arguments, their effect, and its numbers.

The oracle tests build mmaction2's own ``I3DHead`` and ``CrossEntropyLoss`` (executed by path,
see tests/mmaction_oracle.py) with the same arguments and expect the same ``state_dict`` keys,
the same outputs after copying weights (dropout included, under one seed) and the same losses.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from mmaction_oracle import load_reference_head, load_reference_loss

from runners.model import CrossEntropyLoss, I3DHead
from search_space.errors import ConfigError


def _features(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_positional_arguments_are_mmaction2s_order() -> None:
    head = I3DHead(4, 16, {"type": "CrossEntropyLoss", "loss_weight": 2.0}, None, 0.3, 0.02)
    assert (head.num_classes, head.in_channels) == (4, 16)
    assert head.loss_cls.loss_weight == 2.0
    assert head.spatial_type is None and head.avg_pool is None
    assert head.dropout_ratio == 0.3 and head.dropout is not None and head.dropout.p == 0.3
    assert head.init_std == 0.02
    defaults = I3DHead(num_classes=4, in_channels=16)
    assert defaults.spatial_type == "avg" and defaults.dropout_ratio == 0.5
    assert defaults.init_std == 0.01 and isinstance(defaults.loss_cls, CrossEntropyLoss)
    assert I3DHead(4, 16, dropout_ratio=0).dropout is None  # as mmaction2: no module at 0


def test_dropout_acts_in_train_mode_only() -> None:
    head = I3DHead(3, 64, dropout_ratio=0.5)
    head.init_weights()
    plain = I3DHead(3, 64, dropout_ratio=0.0)
    plain.load_state_dict(head.state_dict())
    x = _features(2, 64, 2, 3, 3)
    head.train()
    first, second = head(x), head(x)
    assert not torch.equal(first, second)  # a fresh mask each call
    head.eval()
    assert torch.equal(head(x), head(x))
    assert torch.equal(head(x), plain.eval()(x))


def test_without_spatial_type_the_head_does_not_pool() -> None:
    """mmaction2 flattens the whole (C, T, H, W) map then, so fc_cls sees C*T*H*W inputs."""
    x = _features(2, 8, 2, 3, 3)
    head = I3DHead(5, 8 * 2 * 3 * 3, spatial_type=None, dropout_ratio=0).eval()
    expected = head.fc_cls(x.reshape(2, -1))
    assert torch.equal(head(x), expected)
    with pytest.raises(RuntimeError):
        I3DHead(5, 8, spatial_type=None)(x)  # a map wider than 1x1x1 no longer fits


def test_init_std_sets_the_classifier_spread() -> None:
    torch.manual_seed(0)
    head = I3DHead(64, 512, init_std=0.1)
    head.init_weights()
    assert 0.095 < float(head.fc_cls.weight.detach().std()) < 0.105
    assert torch.count_nonzero(head.fc_cls.bias) == 0


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("spatial_type", {"spatial_type": "max"}),
        ("dropout_ratio", {"dropout_ratio": 1.0}),
        ("dropout_ratio", {"dropout_ratio": -0.1}),
        ("init_std", {"init_std": -1}),
        ("num_classes", {"num_classes": 0}),
        ("label_smooth_eps", {"label_smooth_eps": 1.5}),
        ("loss_cls type", {"loss_cls": {"type": "FocalLoss"}}),
        ("loss_cls has unknown", {"loss_cls": {"type": "CrossEntropyLoss", "gamma": 2}}),
        ("loss_cls.loss_weight", {"loss_cls": {"type": "CrossEntropyLoss", "loss_weight": -1}}),
    ],
)
def test_invalid_values_are_config_errors_naming_the_field(
    field: str, kwargs: dict[str, Any]
) -> None:
    arguments: dict[str, Any] = {"num_classes": 4, "in_channels": 8, **kwargs}
    with pytest.raises(ConfigError, match=field):
        I3DHead(**arguments)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("num_classes", {"num_classes": "4"}),
        ("in_channels", {"in_channels": 8.0}),
        ("dropout_ratio", {"dropout_ratio": "0.5"}),
        ("loss_cls", {"loss_cls": "CrossEntropyLoss"}),
    ],
)
def test_wrong_types_are_type_errors(field: str, kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"num_classes": 4, "in_channels": 8, **kwargs}
    with pytest.raises(TypeError, match=field) as info:
        I3DHead(**arguments)
    assert isinstance(info.value, ConfigError)


def test_loss_applies_label_smoothing_like_torch() -> None:
    scores, labels = _features(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    head = I3DHead(4, 8, label_smooth_eps=0.2)
    expected = torch.nn.functional.cross_entropy(scores, labels, label_smoothing=0.2)
    assert torch.allclose(head.loss(scores, labels), expected)
    weighted = I3DHead(4, 8, {"type": "CrossEntropyLoss", "loss_weight": 0.5})
    expected = 0.5 * torch.nn.functional.cross_entropy(scores, labels)
    assert torch.allclose(weighted.loss(scores, labels), expected)


# ---------------------------------------------------------------------- against mmaction2
@pytest.mark.parametrize(
    ("args", "shape"),
    [
        ((7, 32), (3, 32, 2, 4, 4)),
        ((7, 32, None, "avg", 0.0, 0.05), (3, 32, 1, 2, 2)),
        ((5, 48, None, None, 0.5), (2, 3, 2, 2, 4)),
    ],
    ids=["defaults", "no-dropout", "no-pooling"],
)
def test_matches_mmaction2s_head(args: tuple[Any, ...], shape: tuple[int, ...]) -> None:
    loss_class = load_reference_loss()
    # NOTE: our loss_cls is a config dict; mmaction2's gets its loss class (see the loader).
    theirs = load_reference_head()(*args[:2], {"type": loss_class}, *args[3:])
    ours = I3DHead(*args[:2], {"type": "CrossEntropyLoss"}, *args[3:])
    for name in ("num_classes", "in_channels", "spatial_type", "dropout_ratio", "init_std"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert (ours.avg_pool is None) == (theirs.avg_pool is None)
    assert (ours.dropout is None) == (theirs.dropout is None)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["fc_cls.weight", "fc_cls.bias"]
    torch.manual_seed(0)
    theirs.init_weights()
    torch.manual_seed(0)
    ours.init_weights()
    assert torch.equal(ours.fc_cls.weight, theirs.fc_cls.weight)
    x = _features(*shape)
    for train in (False, True):
        ours.train(train)
        theirs.train(train)
        torch.manual_seed(1)
        expected = theirs(x)
        torch.manual_seed(1)
        assert torch.equal(ours(x), expected), f"train={train}"


def test_signature_is_mmaction2s_up_to_its_kwargs() -> None:
    theirs = list(inspect.signature(load_reference_head()).parameters.values())
    ours = list(inspect.signature(I3DHead).parameters.values())
    assert theirs[-1].kind is inspect.Parameter.VAR_KEYWORD
    assert [p.name for p in ours[: len(theirs) - 1]] == [p.name for p in theirs[:-1]]
    for a, b in zip(ours, theirs[:-1], strict=False):
        assert a.kind == b.kind and a.default == b.default, a.name
    # what follows is keyword-only there too (BaseHead's **kwargs)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in ours[len(theirs) - 1 :])


@pytest.mark.parametrize("class_weight", [None, [1.0, 2.0, 0.5, 1.5]])
def test_loss_matches_mmaction2s(class_weight: list[float] | None) -> None:
    theirs = load_reference_loss()(loss_weight=0.7, class_weight=class_weight)
    ours = CrossEntropyLoss(loss_weight=0.7, class_weight=class_weight)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []
    scores, hard = _features(5, 4), torch.tensor([3, 0, 1, 1, 2])
    soft = torch.softmax(_features(5, 4, seed=1), dim=1)
    assert torch.allclose(ours(scores, hard), theirs(scores, hard))
    assert torch.allclose(ours(scores, soft), theirs(scores, soft))


def test_label_smoothed_loss_matches_mmaction2s_head() -> None:
    loss_class = load_reference_loss()
    theirs = load_reference_head()(4, 8, {"type": loss_class}, label_smooth_eps=0.1, topk=(1,))
    ours = I3DHead(4, 8, label_smooth_eps=0.1)
    scores, labels = _features(3, 4), torch.tensor([2, 0, 3])
    samples = [SimpleNamespace(gt_label=label.reshape(1)) for label in labels]
    expected = theirs.loss_by_feat(scores, samples)["loss_cls"]
    assert torch.allclose(ours.loss(scores, labels), expected)
