"""The trained model: a ResNet3d backbone plus mmaction2's I3D classification head.

Why mmaction2's layout: a configuration found by a study should be retrained or fine-tuned in
mmaction2 unchanged, and a checkpoint trained here should load there. So the attribute names
reproduce the ``state_dict`` keys of mmaction2's ``Recognizer3D`` with an ``I3DHead``
(``backbone.*``, ``cls_head.fc_cls.weight``, ``cls_head.fc_cls.bias``), and the head is
initialised as ``I3DHead.init_weights`` does (normal, std 0.01, bias 0).
"""

from __future__ import annotations

import torch
from torch import nn

from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError
from search_space.plan import plan_network
from search_space.resnet3d import ResNet3d, build_resnet3d

__all__ = ["I3DHead", "Recognizer3D", "build_recognizer", "head_in_channels"]


class I3DHead(nn.Module):
    """mmaction2's ``I3DHead``: global average pool, dropout, linear classifier.

    ``forward`` maps ``(N, C, T, H, W)`` features to ``(N, num_classes)`` logits. The loss lives
    in the training loop, not here (mmaction2 keeps it in the head, but it has no parameters).
    """

    def __init__(
        self, *, num_classes: int, in_channels: int, dropout: float = 0.5, init_std: float = 0.01
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.init_std = init_std
        # NOTE: names avg_pool / dropout / fc_cls are mmaction2's; dropout is None at p=0 as there.
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.dropout = nn.Dropout(p=dropout) if dropout != 0 else None
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def init_weights(self) -> None:
        """``mmengine.normal_init(fc_cls, std=init_std)``: weight ~ N(0, std), bias 0."""
        nn.init.normal_(self.fc_cls.weight, mean=0.0, std=self.init_std)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avg_pool(x)  # (N, C, T, H, W) -> (N, C, 1, 1, 1)
        if self.dropout is not None:
            x = self.dropout(x)
        x = x.flatten(1)  # (N, C)
        return self.fc_cls(x)  # (N, num_classes)


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
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive int; got {num_classes!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be a probability in [0, 1); got {dropout!r}")
    backbone = build_resnet3d(config)
    head = I3DHead(
        num_classes=num_classes, in_channels=head_in_channels(config), dropout=float(dropout)
    )
    head.init_weights()
    return Recognizer3D(backbone=backbone, cls_head=head)
