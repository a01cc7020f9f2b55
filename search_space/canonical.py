"""One canonical :class:`ResNet3dConfig` per network: what ``config.digest()`` identifies.

mmaction2's ``ResNet3d`` reads many of its arguments only in some cases, so different keyword
sets build the same network (same modules, same ``state_dict``, same outputs for the same
weights). A study must not train such a network twice, so :func:`canonicalize` maps every
spelling to one representative, and ``ResNet3dConfig.digest()`` hashes that representative.

The rules, each proved by a test that builds both spellings and compares ``state_dict`` shapes
and outputs after copying weights (``tests/search_space/test_canonical.py``):

=============================  ==============================================================
field                          canonical value
=============================  ==============================================================
``depth``, ``stage_blocks``    the smallest depth of the same block type whose default
                               blocks (first ``num_stages``) equal the blocks built, with
                               ``stage_blocks=None``; when no default matches, the smallest
                               depth of that block type (18 or 50) with explicit blocks.
                               mmaction2 reads ``depth`` only to pick the block type and the
                               default blocks.
``inflate``, ``non_local``     per-block 0/1: any value other than 1 becomes 0 (mmaction2
                               tests ``== 1``).
``inflate_style``              '3x1x1' for a BasicBlock network (it ignores the field) and
                               when no block is inflated.
``style``                      'pytorch' for a BasicBlock network (it always strides conv1),
                               and when every spatial and temporal stride is 1 (no conv
                               strides, so it does not matter which one would).
``non_local_cfg``              ``{}`` when no block has a non-local module; otherwise without
                               the entries equal to mmcv's ``NonLocal3d`` defaults
                               (``sub_sample`` False, ``use_scale`` True, ``reduction`` 2,
                               ``mode`` 'embedded_gaussian', ``conv_cfg`` Conv3d, ``norm_cfg``
                               None), and without ``use_scale`` unless the mode is
                               'embedded_gaussian' (the only mode that reads it).
``pool1_stride_s/_t``          the defaults (2, 1) when ``with_pool1`` is false.
``out_indices``                sorted, without repeats (``forward`` tests ``i in
                               out_indices`` stage by stage).
``norm_cfg``                   ``requires_grad: True`` written out (mmcv's default).
=============================  ==============================================================

Everything else is kept as given: the stem (``conv1_kernel``, strides), the training-relevant
fields (``pretrained``, ``pretrained2d``, ``frozen_stages``, ``norm_eval``, ``with_cp``,
``zero_init_residual``) and the layer cfgs (apart from the ``requires_grad`` default). Every
rule merges configs that build identical modules, so FLOPs, parameters and train-mode
behaviour agree too. Merging is deliberately conservative: configs with different digests may
still compute the same function, never the other way round. Kept apart on purpose:

* ``conv1_stride_t=a, pool1_stride_t=b`` and ``conv1_stride_t=a*b, pool1_stride_t=1`` (pool1's
  temporal kernel is 1): equal in eval mode, but the stem's FLOPs and its batch-norm statistics
  in training differ;
* layer-cfg corner cases, e.g. two non-local ``reduction`` values giving the same width.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from search_space.arch import ARCH_SETTINGS, BlockType, InflateStyle, Style

if TYPE_CHECKING:
    from search_space.config import ResNet3dConfig

__all__ = ["canonicalize"]

# mmcv's NonLocal3d keyword defaults (mmcv/cnn/bricks/non_local.py, _NonLocalNd + NonLocal3d).
_NON_LOCAL_DEFAULTS: dict[str, Any] = {
    "sub_sample": False,
    "use_scale": True,
    "reduction": 2,
    "mode": "embedded_gaussian",
    "conv_cfg": {"type": "Conv3d"},
    "norm_cfg": None,
}


def canonicalize(config: ResNet3dConfig) -> ResNet3dConfig:
    """The canonical spelling of the network ``config`` builds (see the module table).

    Guarantees: ``canonicalize(c)`` builds a network with the same ``state_dict`` keys and
    shapes as ``c`` and, with the same weights, the same outputs; ``canonicalize`` is
    idempotent; and a config that is already canonical is returned unchanged (the same object).
    """
    changes: dict[str, Any] = {}
    changes.update(_blocks(config))
    inflate = _bits(config.inflate)
    non_local = _bits(config.non_local)
    if inflate != config.inflate:
        changes["inflate"] = inflate
    if non_local != config.non_local:
        changes["non_local"] = non_local
    basic = config.block_type == BlockType.BASIC
    inflated = any(any(stage) for stage in inflate)
    if (basic or not inflated) and config.inflate_style != InflateStyle.T3X1X1:
        changes["inflate_style"] = InflateStyle.T3X1X1.value
    unstrided = all(s == 1 for s in config.spatial_strides + config.temporal_strides)
    if (basic or unstrided) and config.style != Style.PYTORCH:
        changes["style"] = Style.PYTORCH.value
    non_local_cfg = _non_local_cfg(config.non_local_cfg, any(any(s) for s in non_local))
    if non_local_cfg != config.non_local_cfg:
        changes["non_local_cfg"] = non_local_cfg
    if not config.with_pool1:
        defaults = {f.name: f.default for f in dataclasses.fields(config)}
        for name in ("pool1_stride_s", "pool1_stride_t"):
            if getattr(config, name) != defaults[name]:
                changes[name] = defaults[name]
    out_indices = tuple(sorted(set(config.out_indices)))
    if out_indices != config.out_indices:
        changes["out_indices"] = out_indices
    if "requires_grad" not in config.norm_cfg:
        changes["norm_cfg"] = {**config.norm_cfg, "requires_grad": True}
    return config.replace(**changes) if changes else config


def _blocks(config: ResNet3dConfig) -> dict[str, Any]:
    """``depth`` / ``stage_blocks``: one spelling per (block type, blocks per stage)."""
    blocks = config.blocks_per_stage
    same_type = sorted(d for d, (kind, _) in ARCH_SETTINGS.items() if kind == config.block_type)
    depth: int = same_type[0]
    stage_blocks: tuple[int, ...] | None = blocks
    for candidate in same_type:
        if ARCH_SETTINGS[candidate][1][: config.num_stages] == blocks:
            depth, stage_blocks = candidate, None
            break
    changes: dict[str, Any] = {}
    if depth != config.depth:
        changes["depth"] = depth
    if stage_blocks != config.stage_blocks:
        changes["stage_blocks"] = stage_blocks
    return changes


def _bits(per_stage: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v == 1) for v in stage) for stage in per_stage)


def _non_local_cfg(cfg: dict[str, Any], used: bool) -> dict[str, Any]:
    if not used:
        return {}
    mode = cfg.get("mode", _NON_LOCAL_DEFAULTS["mode"])
    kept = {k: v for k, v in cfg.items() if v != _NON_LOCAL_DEFAULTS[k]}
    # NOTE: only embedded_gaussian reads use_scale (mmcv scales the pairwise weight there).
    if mode != "embedded_gaussian":
        kept.pop("use_scale", None)
    return kept
