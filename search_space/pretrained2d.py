"""Load checkpoints into a ResNet3d: 2D ImageNet ResNets inflated (I3D), or 3D by key.

Inflation follows I3D and mmaction2's ``pretrained2d``: each 2D kernel ``W`` of shape
``(O, I, kh, kw)`` becomes ``W / kt`` repeated ``kt`` times along time, so a clip whose frames
are all one image produces the same activations as the 2D network on that image. The 2D names
are torchvision's (``conv1``/``bn1``, ``layerX.Y.convK``/``bnK``, ``downsample.0``/``.1``).

Nothing is skipped silently: every 3D parameter left without a 2D source, every shape mismatch
and every unused 2D key is named in the returned :class:`LoadReport` and in one warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from mmcv.cnn import ConvModule
from torch import nn

from search_space.errors import ConfigError

__all__ = ["LoadReport", "load_checkpoint_3d", "load_inflated_2d", "read_state_dict"]


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a checkpoint load did, by parameter name."""

    loaded: tuple[str, ...] = ()  # 3D names that received values
    missing: tuple[str, ...] = ()  # 3D names with no source in the checkpoint
    shape_mismatch: tuple[str, ...] = ()  # "name: 3d shape vs checkpoint shape"
    unused: tuple[str, ...] = field(default_factory=tuple)  # checkpoint keys nothing took
    head: tuple[str, ...] = ()  # the 2D classifier ("fc.*"), never part of a backbone

    @property
    def complete(self) -> bool:
        """True when every 3D tensor was loaded and every checkpoint tensor was used."""
        return not (self.missing or self.shape_mismatch or self.unused)

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} loaded"]
        for label, names in (
            ("missing", self.missing),
            ("shape mismatch", self.shape_mismatch),
            ("unused", self.unused),
        ):
            if names:
                shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
                parts.append(f"{len(names)} {label}: {shown}")
        return "; ".join(parts)


def read_state_dict(source: str | Path | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict from a local file (``{'state_dict': ...}`` wrappers unwrapped) or a mapping.

    Nothing is downloaded: a URL or missing file is a :class:`ConfigError`.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(
                f"pretrained must be a local checkpoint file; {str(source)!r} not found"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = dict(state["state_dict"])
    return {k.removeprefix("module."): v for k, v in state.items()}


def _source_names(module_name: str) -> tuple[str, str]:
    """torchvision names of the conv and BN a ConvModule corresponds to."""
    if "downsample" in module_name:
        return f"{module_name}.0", f"{module_name}.1"
    head, _, last = module_name.rpartition(".")
    bn = last.replace("conv", "bn")
    return module_name, f"{head}.{bn}" if head else bn


def load_inflated_2d(
    model: nn.Module, source: str | Path | Mapping[str, torch.Tensor], *, strict: bool = False
) -> LoadReport:
    """Inflate a 2D ResNet checkpoint into ``model``'s ConvModules (conv + norm).

    Args:
        strict: raise :class:`ConfigError` listing the problems instead of warning.
    """
    state_2d = read_state_dict(source)
    used: set[str] = set()
    loaded: list[str] = []
    missing: list[str] = []
    mismatch: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, ConvModule):
            continue
        conv_name, bn_name = _source_names(name)
        weight_key = f"{conv_name}.weight"
        weight_3d = module.conv.weight
        if weight_key not in state_2d:
            missing.append(f"{name}.conv.weight")
        else:
            weight_2d = state_2d[weight_key]
            expected = weight_3d.shape[:2] + weight_3d.shape[3:]
            if tuple(weight_2d.shape) != tuple(expected):
                mismatch.append(
                    f"{name}.conv.weight: {tuple(weight_3d.shape)} vs {weight_key} "
                    f"{tuple(weight_2d.shape)}"
                )
            else:
                kernel_t = weight_3d.shape[2]
                with torch.no_grad():
                    weight_3d.copy_(weight_2d.unsqueeze(2).expand_as(weight_3d) / kernel_t)
                used.add(weight_key)
                loaded.append(f"{name}.conv.weight")
        norm = module.norm if module.with_norm else None
        if norm is None:
            continue
        for tensor_name, tensor in list(norm.named_parameters()) + list(norm.named_buffers()):
            key = f"{bn_name}.{tensor_name}"
            target = f"{name}.{module.norm_name}.{tensor_name}"
            if key not in state_2d:
                missing.append(target)
            elif state_2d[key].shape != tensor.shape:
                mismatch.append(
                    f"{target}: {tuple(tensor.shape)} vs {key} {tuple(state_2d[key].shape)}"
                )
            else:
                with torch.no_grad():
                    tensor.copy_(state_2d[key])
                used.add(key)
                loaded.append(target)
    report = LoadReport(
        loaded=tuple(loaded),
        missing=tuple(missing),
        shape_mismatch=tuple(mismatch),
        unused=tuple(sorted(k for k in set(state_2d) - used if not k.startswith("fc."))),
        head=tuple(sorted(k for k in state_2d if k.startswith("fc."))),
    )
    _report(report, strict=strict, what="2D inflation")
    return report


def load_checkpoint_3d(
    model: nn.Module, source: str | Path | Mapping[str, torch.Tensor], *, strict: bool = False
) -> LoadReport:
    """Load a 3D checkpoint by key (``backbone.`` prefixes of a recognizer are stripped)."""
    state = read_state_dict(source)
    if any(k.startswith("backbone.") for k in state):
        state = {
            k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")
        }
    own = model.state_dict()
    loaded, mismatch = [], []
    to_load = {}
    for key, value in state.items():
        if key in own:
            if own[key].shape == value.shape:
                to_load[key] = value
                loaded.append(key)
            else:
                mismatch.append(f"{key}: {tuple(own[key].shape)} vs {tuple(value.shape)}")
    model.load_state_dict(to_load, strict=False)
    report = LoadReport(
        loaded=tuple(loaded),
        missing=tuple(k for k in own if k not in state),
        shape_mismatch=tuple(mismatch),
        unused=tuple(sorted(k for k in state if k not in own)),
    )
    _report(report, strict=strict, what="3D checkpoint load")
    return report


def _report(report: LoadReport, *, strict: bool, what: str) -> None:
    if report.complete:
        return
    message = f"{what} incomplete: {report.summary()}"
    if strict:
        raise ConfigError(message)
    warnings.warn(message, stacklevel=3)
