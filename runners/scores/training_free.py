"""Training-free scores: rank networks at initialisation from one batch, in well under a second.

Each score is a pure function ``score(model, batch) -> float``: ``model`` maps a clip batch
``(N, C, T, H, W)`` to logits ``(N, classes)`` (a :class:`runners.model.Recognizer3D`),
``batch`` is ``(clips, labels)``. A score works on a deep copy, so the caller's model (weights,
batch-norm statistics, gradients, mode) is left as it was, and it draws no random numbers: the
same model and batch give the same value. Build the model with dropout 0 (as
:func:`build_scoring_model` does) so that the forward pass itself is deterministic. Higher is
better for every score.

The registry :data:`SCORES` maps names to functions; :func:`get_score` looks one up and names
the valid ones on a miss. Where a score's paper defines variants, the one implemented is the
zero-cost proxies library's (Abdelfattah et al.), which most later comparisons use.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError

__all__ = [
    "SCORES",
    "Batch",
    "ScoreFn",
    "build_scoring_model",
    "get_score",
    "grad_norm",
    "naswot",
    "naswot_logdet",
    "parse_score_names",
    "snip",
    "st_entropy",
    "synflow",
    "temporal_order",
    "zico",
]

Batch = tuple[torch.Tensor, torch.Tensor]
ScoreFn = Callable[[nn.Module, Batch], float]
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def build_scoring_model(config: ResNet3dConfig, *, num_classes: int, seed: int) -> nn.Module:
    """Backbone + I3D head initialised from ``seed``, with dropout 0 (a deterministic forward).

    The global torch RNG state is restored afterwards.
    """
    from runners.model import build_recognizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_recognizer(config, num_classes=num_classes, dropout=0.0)


def _weights(model: nn.Module) -> Iterator[torch.Tensor]:
    """The weights of convolutions and linear layers, which every score below sums over."""
    for module in model.modules():
        if isinstance(module, _WEIGHTED):
            yield module.weight


def _copy(model: nn.Module, *, train: bool, dtype: torch.dtype | None = None) -> nn.Module:
    clone = copy.deepcopy(model)
    if dtype is not None:
        clone = clone.to(dtype)
    clone.train(train)
    clone.zero_grad(set_to_none=True)
    return clone


def _loss_gradients(model: nn.Module, clips: torch.Tensor, labels: torch.Tensor) -> nn.Module:
    """A train-mode copy of ``model`` holding the cross-entropy gradients of one batch."""
    clone = _copy(model, train=True)
    F.cross_entropy(clone(clips), labels).backward()
    return clone


def synflow(model: nn.Module, batch: Batch) -> float:
    """Synaptic flow: ``sum |theta * dR/dtheta|`` with ``R`` the summed output of the network
    whose weights are replaced by their absolute values, on an all-ones input.

    Tanaka, Kunin, Yamins, Ganguli, "Pruning neural networks without any data by iteratively
    conserving synaptic flow", NeurIPS 2020; as a NAS score: Abdelfattah, Mehrotra, Dudziak,
    Lane, "Zero-Cost Proxies for Lightweight NAS", ICLR 2021 (their ``synflow``: batch norm
    off, float64). Batch norm is off here by eval mode at initialisation (running mean 0,
    variance 1, so it is the identity up to its epsilon). Data-free: only the batch's shape is
    used. ``R`` is linear in each layer's weights, so for a bias-free chain of ``L`` layers
    the score is ``L * 1^T |W_L| ... |W_1| 1``: the sum over every input-output path of the
    product of its absolute weights, once per layer.
    """
    clips, _ = batch
    clone = _copy(model, train=False, dtype=torch.float64)
    with torch.no_grad():
        for param in clone.parameters():
            param.abs_()
    ones = torch.ones((1, *clips.shape[1:]), dtype=torch.float64)
    clone(ones).sum().backward()
    return _sum_over_layers(clone, lambda w, g: (w * g).abs().sum())


def _sum_over_layers(
    model: nn.Module, term: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> float:
    """``sum term(weight, weight.grad)`` over the weighted layers that got a gradient."""
    total = 0.0
    with torch.no_grad():
        for weight in _weights(model):
            if weight.grad is not None:
                total += float(term(weight, weight.grad))
    return total


def snip(model: nn.Module, batch: Batch) -> float:
    """Connection sensitivity: ``sum |theta * dL/dtheta|`` of the cross-entropy of one batch.

    Lee, Ajanthan, Torr, "SNIP: Single-shot Network Pruning based on Connection Sensitivity",
    ICLR 2019; summed over convolution and linear weights as a NAS score by Abdelfattah et al.,
    ICLR 2021. Train mode (batch statistics), as a first training step would see it.
    """
    clips, labels = batch
    clone = _loss_gradients(model, clips, labels)
    return _sum_over_layers(clone, lambda w, g: (w * g).abs().sum())


def grad_norm(model: nn.Module, batch: Batch) -> float:
    """Sum over convolution and linear layers of the L2 norm of the weight gradient of the
    cross-entropy of one batch (train mode).

    Abdelfattah, Mehrotra, Dudziak, Lane, "Zero-Cost Proxies for Lightweight NAS", ICLR 2021
    (their ``grad_norm``: per-layer norms, summed).
    """
    clips, labels = batch
    clone = _loss_gradients(model, clips, labels)
    return _sum_over_layers(clone, lambda _w, g: g.norm())


def _outputs_of(
    model: nn.Module,
    clips: torch.Tensor,
    modules: Sequence[nn.Module],
    keep: Callable[[torch.Tensor], torch.Tensor],
) -> list[torch.Tensor]:
    """``keep`` of the outputs of ``modules`` (in call order) in one no-grad forward pass of
    ``model`` on ``clips``; the hooks are removed whatever happens. ``keep`` runs inside the
    hook, before an in-place operation later in the pass can change the output."""
    outputs: list[torch.Tensor] = []

    def record(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        outputs.append(keep(output.detach()))

    handles = [m.register_forward_hook(record) for m in modules]
    try:
        with torch.no_grad():
            model(clips)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def naswot_logdet(codes: torch.Tensor) -> float:
    """``log|K|`` of the NASWOT kernel of binary codes ``(N, units)``.

    ``K[i, j]`` is the number of units on which inputs ``i`` and ``j`` agree (both active or
    both inactive): ``units`` minus their Hamming distance. A singular kernel (two inputs with
    identical codes) gives ``-inf``.
    """
    c = codes.to(torch.float64)
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else -math.inf


def naswot(model: nn.Module, batch: Batch) -> float:
    """NASWOT: the log-determinant of the kernel of the batch's ReLU activation codes.

    Mellor, Turner, Storkey, Crowley, "Neural Architecture Search without Training", ICML 2021
    (the revised score ``log|K_H|``). The code of a clip is whether each ReLU output unit is
    positive, over every ReLU call of the forward pass (train mode, as in the paper's code).
    A network that maps different clips to different activation patterns scores high.
    """
    clips, _ = batch
    clone = _copy(model, train=True)
    relus = [m for m in clone.modules() if isinstance(m, nn.ReLU)]
    codes = _outputs_of(clone, clips, relus, keep=lambda out: (out > 0).flatten(1))
    if not codes:
        raise ConfigError("naswot: the network has no nn.ReLU module to read codes from")
    return naswot_logdet(torch.cat(codes, dim=1))


def zico(model: nn.Module, batch: Batch, *, splits: int = 2) -> float:
    """ZiCo: ``sum_layers log(sum_theta mean|g_theta| / std(g_theta))`` over mini-batches.

    Li, Yang, Wang, Marculescu, "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on
    Gradients", ICLR 2023. The paper takes the mean and standard deviation of each weight's
    cross-entropy gradient over mini-batches; here the one batch is split into ``splits``
    equal parts (its official code uses two batches). Weights whose gradient has zero
    deviation are left out, as in the official code.
    """
    clips, labels = batch
    if splits < 2 or clips.shape[0] < splits:
        raise ConfigError(
            f"zico: splits must be at least 2 and at most the batch size {clips.shape[0]}; "
            f"got {splits}"
        )
    per_layer: list[list[torch.Tensor]] = []
    for part_clips, part_labels in zip(clips.chunk(splits), labels.chunk(splits), strict=True):
        clone = _loss_gradients(model, part_clips, part_labels)
        weights = list(_weights(clone))
        if not per_layer:
            per_layer = [[] for _ in weights]
        for grads, weight in zip(per_layer, weights, strict=True):
            grad = weight.grad
            grads.append(torch.zeros_like(weight) if grad is None else grad.detach())
    total = 0.0
    for grads in per_layer:
        stacked = torch.stack(grads).flatten(1).to(torch.float64)  # (splits, weights)
        std = stacked.std(dim=0, unbiased=False)
        mean_abs = stacked.abs().mean(dim=0)
        live = std > 0
        ratio = float((mean_abs[live] / std[live]).sum())
        if ratio > 0:
            total += math.log(ratio)
    return total


def st_entropy(model: nn.Module, batch: Batch) -> float:
    """Spatio-temporal entropy of the feature maps, in the spirit of E3D.

    Wang, Sun, Zhou, Zheng, Wang, Yuan, Li, "Maximizing Spatio-Temporal Entropy of Deep 3D
    CNNs for Efficient Video Recognition" (E3D), ICLR 2023, score a 3D network by the
    differential entropy of its feature maps under a Gaussian assumption (``log`` of their
    standard deviation, without batch norm), refined so that spatial and temporal information
    both count. This is a measured version on the study's batch: for the output of the stem
    and of every residual stage, the Gaussian entropy ``log std`` of the features across space
    (``H, W``, per clip, channel and frame) plus that across time (``T``, per clip, channel and
    position), summed over those maps. Eval mode at initialisation, so batch norm is the
    identity and only the convolutions shape the spread, as in E3D's variance propagation. A
    map with one frame contributes no temporal term.
    """
    clips, _ = batch
    clone = _copy(model, train=False)
    backbone = getattr(clone, "backbone", None)
    if backbone is None:
        raise ConfigError("st_entropy: the model has no .backbone (a Recognizer3D is expected)")
    names = ("conv1", *(f"layer{i}" for i in range(1, 9)))
    stages = [getattr(backbone, name) for name in names if hasattr(backbone, name)]
    maps = _outputs_of(clone, clips, stages, keep=lambda out: out.to(torch.float64))
    tiny = 1e-12
    total = 0.0
    for fmap in maps:  # (N, C, T, H, W)
        spatial = fmap.flatten(3).std(dim=3, unbiased=False).mean()
        total += 0.5 * math.log(float(spatial) ** 2 + tiny)
        if fmap.shape[2] > 1:
            temporal = fmap.std(dim=2, unbiased=False).mean()
            total += 0.5 * math.log(float(temporal) ** 2 + tiny)
    return total


def temporal_order(model: nn.Module, batch: Batch) -> float:
    """How much the network's features depend on the order of frames: the mean cosine distance
    between the backbone's globally pooled features (what the head sees) for each clip and
    for the same clip played backwards.

    This project's own score (no published source): in a video task whose labels depend on
    the order of events (``motion_events``: a pan that reverses or stops), a network must
    tell a clip from its reversal, and at initialisation only its temporal kernels, strides
    and pools can. A network without any temporal mixing scores 0. Eval mode, so batch norm
    is the identity and the comparison is per clip.
    """
    clips, _ = batch
    clone = _copy(model, train=False)
    backbone = getattr(clone, "backbone", None)
    if backbone is None:
        raise ConfigError("temporal_order: the model has no .backbone (a Recognizer3D)")
    with torch.no_grad():
        forward = backbone(clips)
        backward = backbone(clips.flip(2))  # (N, C, T, H, W): time reversed
    if isinstance(forward, tuple):
        forward, backward = forward[-1], backward[-1]
    pooled = [f.double().flatten(2).mean(dim=2) for f in (forward, backward)]  # (N, C)
    cosine = F.cosine_similarity(pooled[0], pooled[1])
    return float((1 - cosine).mean())


SCORES: dict[str, ScoreFn] = {
    "grad_norm": grad_norm,
    "naswot": naswot,
    "snip": snip,
    "st_entropy": st_entropy,
    "synflow": synflow,
    "temporal_order": temporal_order,
    "zico": zico,
}


def get_score(name: str) -> ScoreFn:
    """The score called ``name``; an unknown name is a :class:`ConfigError` listing the valid."""
    try:
        return SCORES[name]
    except KeyError:
        raise ConfigError(
            f"score must be one of {', '.join(sorted(SCORES))}; got {name!r}"
        ) from None


def parse_score_names(text: str | Sequence[str]) -> tuple[str, ...]:
    """Score names from ``"a,b"`` or a sequence, each checked (``"all"`` means every score)."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    if names == ["all"]:
        return tuple(SCORES)
    if not names:
        raise ConfigError(f"scores: none given; allowed: {', '.join(sorted(SCORES))}, all")
    for name in names:
        get_score(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"scores: a name is repeated; got {names}")
    return tuple(names)
