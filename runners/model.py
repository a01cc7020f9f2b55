"""The trained model: a ResNet3d backbone plus mmaction2's I3D classification head.

Why mmaction2's layout: a configuration found by a study should be retrained or fine-tuned in
mmaction2 unchanged, and a checkpoint trained here should load there. So the attribute names
reproduce the ``state_dict`` keys of mmaction2's ``Recognizer3D`` with an ``I3DHead``
(``backbone.*``, ``cls_head.fc_cls.weight``, ``cls_head.fc_cls.bias``), and the head is
initialised as ``I3DHead.init_weights`` does (normal, std 0.01, bias 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError, ConfigTypeError
from search_space.plan import plan_network
from search_space.resnet3d import ResNet3d, build_resnet3d
from search_space.strict import check_positive_int

__all__ = [
    "CrossEntropyLoss",
    "I3DHead",
    "Recognizer3D",
    "build_loss",
    "build_recognizer",
    "head_in_channels",
]

SPATIAL_TYPES = ("avg", None)


def _check_number(name: str, value: Any, *, low: float, high: float | None = None) -> None:
    """``value`` is a real number in ``[low, high)`` (``[low, inf)`` without ``high``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigTypeError(f"{name} must be a number; got {value!r}")
    if not low <= value or (high is not None and not value < high) or value != value:
        allowed = f"[{low:g}, {high:g})" if high is not None else f">= {low:g}"
        raise ConfigError(f"{name} must be in {allowed}; got {value!r}")


class CrossEntropyLoss(nn.Module):
    """mmaction2's ``CrossEntropyLoss``: ``loss_weight`` times the (class-weighted) mean loss.

    Hard labels ``(N,)`` give ``F.cross_entropy``; soft labels shaped like the scores ``(N, K)``
    give ``-(label * log_softmax).sum(1)``, averaged (weighted by ``class_weight`` when set). It
    has no ``state_dict`` entries, as mmaction2's has none.
    """

    class_weight: torch.Tensor | None

    def __init__(self, loss_weight: float = 1.0, class_weight: Sequence[float] | None = None):
        super().__init__()
        _check_number("loss_cls.loss_weight", loss_weight, low=0.0)
        self.loss_weight = float(loss_weight)
        weight = None if class_weight is None else torch.tensor(class_weight, dtype=torch.float)
        # NOTE: a non-persistent buffer follows .to(device) and stays out of the state_dict.
        self.register_buffer("class_weight", weight, persistent=False)

    def forward(self, cls_score: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if cls_score.shape == label.shape:  # soft labels (N, K)
            log_p = F.log_softmax(cls_score, dim=1)
            if self.class_weight is None:
                loss = -(label * log_p).sum(1).mean()
            else:
                weight = self.class_weight.unsqueeze(0)
                loss = -(label * log_p * weight).sum() / (weight * label).sum()
        else:
            loss = F.cross_entropy(cls_score, label, weight=self.class_weight)
        return self.loss_weight * loss


LOSSES = ("CrossEntropyLoss",)
_LOSS_KEYS = ("type", "loss_weight", "class_weight")


def build_loss(cfg: Mapping[str, Any]) -> CrossEntropyLoss:
    """Build ``loss_cls`` from mmaction2's config dict; only ``CrossEntropyLoss`` is supported."""
    if not isinstance(cfg, Mapping):
        raise ConfigTypeError(f"loss_cls must be a dict with a 'type'; got {cfg!r}")
    kind = cfg.get("type")
    if kind not in LOSSES:
        raise ConfigError(
            f"loss_cls type must be one of {', '.join(map(repr, LOSSES))}; got {kind!r}"
        )
    unknown = sorted(set(cfg) - set(_LOSS_KEYS))
    if unknown:
        raise ConfigError(
            f"loss_cls has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(_LOSS_KEYS)}"
        )
    return CrossEntropyLoss(
        loss_weight=cfg.get("loss_weight", 1.0), class_weight=cfg.get("class_weight")
    )


_DEFAULT_LOSS: Mapping[str, Any] = MappingProxyType({"type": "CrossEntropyLoss"})


class I3DHead(nn.Module):
    """mmaction2's ``I3DHead``: global average pool, dropout, linear classifier.

    ``forward`` maps ``(N, C, T, H, W)`` features to ``(N, num_classes)`` logits. The
    constructor takes mmaction2's arguments in its order (``num_classes, in_channels, loss_cls,
    spatial_type, dropout_ratio, init_std``) and keeps them as attributes of the same names, so
    code and configs written for mmaction2's head work with this one. Of ``BaseHead``'s extra
    keywords only ``label_smooth_eps`` is taken (used by :meth:`loss`); the others concern
    mmaction2's evaluation loop, which r3dnas does not use.

    ``loss_cls`` and :meth:`loss` are there for code that trains through the head as mmaction2
    does; r3dnas's own trainer (``runners.training.accuracy``) computes the same cross-entropy with
    ``TrainConfig.label_smoothing`` itself.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        loss_cls: Mapping[str, Any] = _DEFAULT_LOSS,
        spatial_type: str | None = "avg",
        dropout_ratio: float = 0.5,
        init_std: float = 0.01,
        *,
        label_smooth_eps: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        if spatial_type not in SPATIAL_TYPES:
            raise ConfigError(
                f"spatial_type must be 'avg' (global average pool) or None (no pooling); "
                f"got {spatial_type!r}"
            )
        _check_number("dropout_ratio", dropout_ratio, low=0.0, high=1.0)
        _check_number("init_std", init_std, low=0.0)
        _check_number("label_smooth_eps", label_smooth_eps, low=0.0, high=1.0)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.loss_cls = build_loss(loss_cls)
        self.spatial_type = spatial_type
        self.dropout_ratio = dropout_ratio
        self.init_std = init_std
        self.label_smooth_eps = label_smooth_eps
        # NOTE: names avg_pool / dropout / fc_cls are mmaction2's; dropout is None at ratio 0 and
        # avg_pool None without spatial_type, as there.
        self.dropout = nn.Dropout(p=dropout_ratio) if dropout_ratio != 0 else None
        self.fc_cls = nn.Linear(in_channels, num_classes)
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1)) if spatial_type == "avg" else None

    def init_weights(self) -> None:
        """``mmengine.normal_init(fc_cls, std=init_std)``: weight ~ N(0, std), bias 0."""
        nn.init.normal_(self.fc_cls.weight, mean=0.0, std=self.init_std)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.avg_pool is not None:
            x = self.avg_pool(x)  # (N, C, T, H, W) -> (N, C, 1, 1, 1)
        if self.dropout is not None:
            x = self.dropout(x)
        # NOTE: without pooling mmaction2 flattens all of C*T*H*W, so fc_cls must match it.
        x = x.flatten(1)  # (N, C)
        return self.fc_cls(x)  # (N, num_classes)

    def loss(self, cls_score: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``loss_cls`` of the scores, with mmaction2's label smoothing when
        ``label_smooth_eps`` is set (``(1 - eps) * one_hot + eps / num_classes``)."""
        if self.label_smooth_eps != 0:
            if cls_score.shape != labels.shape:
                labels = F.one_hot(labels, num_classes=self.num_classes).to(cls_score.dtype)
            labels = (
                1 - self.label_smooth_eps
            ) * labels + self.label_smooth_eps / self.num_classes
        return self.loss_cls(cls_score, labels)


class Recognizer3D(nn.Module):
    """Backbone + head, with mmaction2 ``Recognizer3D``'s parameter names.

    ``forward`` maps a clip batch ``(N, C, T, H, W)`` to class logits ``(N, num_classes)``.
    When the backbone returns several stages (``out_indices`` with more than one entry) the head
    classifies the last one, as mmaction2's recognizers do with a single-input head.
    """

    def __init__(self, *, backbone: ResNet3d, cls_head: I3DHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.cls_head = cls_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        if isinstance(features, tuple):
            features = features[-1]
        return self.cls_head(features)


def head_in_channels(config: ResNet3dConfig) -> int:
    """Channels of the feature map the head sees: the last stage in ``out_indices``.

    Equals ``config.feat_dim`` when that is the last stage.
    """
    plan = plan_network(config)
    return plan.stages[max(config.out_indices)].blocks[-1].out_channels


def build_recognizer(
    config: ResNet3dConfig, *, num_classes: int, dropout: float = 0.5
) -> Recognizer3D:
    """Build and initialise backbone (``build_resnet3d``) and I3D head for ``num_classes``.

    Uses the global torch RNG, so seed it first for a reproducible initialisation.
    """
    check_positive_int("num_classes", num_classes)
    _check_number("dropout", dropout, low=0.0, high=1.0)
    backbone = build_resnet3d(config)
    head = I3DHead(
        num_classes=num_classes, in_channels=head_in_channels(config), dropout_ratio=dropout
    )
    head.init_weights()
    return Recognizer3D(backbone=backbone, cls_head=head)
