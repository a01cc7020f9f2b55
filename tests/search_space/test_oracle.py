"""ResNet3d against mmaction2's own ResNet3d on random configurations.

Same arguments -> same state_dict keys (in order) and shapes, and with the weights copied
across, the same outputs in eval and in train mode, the same running statistics afterwards,
the same frozen parameters, and the same gradients.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from mmaction_oracle import load_reference
from random_configs import sample

from search_space import ResNet3d, ResNet3dConfig

QUICK_SEEDS = range(24)
SLOW_SEEDS = range(1000, 1200)


def _as_tuple(out: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 summation order (checkpoint recomputation reorders some sums)."""
    return bool((a - b).abs().max() <= 1e-5 * max(1.0, a.abs().max().item()))


def check_against_reference(seed: int) -> None:
    kwargs, shape = sample(seed, small_blocks=seed % 4 != 0)
    reference_module = load_reference()
    torch.manual_seed(seed)
    reference = reference_module.ResNet3d(**kwargs)
    ours = ResNet3d(**kwargs)
    ref_state, our_state = reference.state_dict(), ours.state_dict()
    assert list(our_state) == list(ref_state), f"seed {seed}: {kwargs}"
    for key, value in ref_state.items():
        assert our_state[key].shape == value.shape, key
    ours.load_state_dict(ref_state)

    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    # eval mode: identical outputs
    reference.eval()
    ours.eval()
    with torch.no_grad():
        for a, b in zip(_as_tuple(reference(x)), _as_tuple(ours(x)), strict=True):
            assert a.shape == b.shape
            assert torch.equal(a, b), f"seed {seed}: eval outputs differ by {(a - b).abs().max()}"
    # train mode (frozen stages / norm_eval re-applied): outputs, grads, running stats
    reference.train()
    assert ours.train() is ours
    for (name, p), (_, q) in zip(
        reference.named_parameters(), ours.named_parameters(), strict=True
    ):
        assert p.requires_grad == q.requires_grad, f"seed {seed}: requires_grad of {name}"
    for (name, m), (_, n) in zip(reference.named_modules(), ours.named_modules(), strict=False):
        assert m.training == n.training, f"seed {seed}: training flag of {name!r}"
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    out_a, out_b = _as_tuple(reference(xa)), _as_tuple(ours(xb))
    for a, b in zip(out_a, out_b, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), f"seed {seed}: train outputs differ"
    if kwargs["non_local"] != 0 and kwargs["non_local_cfg"].get("mode") == "concatenation":
        # NOTE: a reference quirk we reproduce: mmcv's "concatenation" non-local divides its
        # in-place ReLU output in place, so its backward fails in mmaction2 too.
        for outs in (out_a, out_b):
            with pytest.raises(RuntimeError, match="inplace operation"):
                sum(o.float().mean() for o in outs).backward()
        return
    sum(o.float().mean() for o in out_a).backward()
    sum(o.float().mean() for o in out_b).backward()
    assert _close(xa.grad, xb.grad), f"seed {seed}: input grad"
    for (name, p), (_, q) in zip(
        reference.named_parameters(), ours.named_parameters(), strict=True
    ):
        if p.grad is None or q.grad is None:
            assert p.grad is None and q.grad is None, f"seed {seed}: grad presence of {name}"
            continue
        assert _close(p.grad, q.grad), f"seed {seed}: grad {name}"
    for key, value in reference.state_dict().items():
        assert torch.allclose(ours.state_dict()[key].float(), value.float()), key


@pytest.mark.parametrize("seed", QUICK_SEEDS)
def test_matches_mmaction2(seed: int) -> None:
    check_against_reference(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_matches_mmaction2_many(seed: int) -> None:
    check_against_reference(seed)


def test_random_configs_cover_the_space() -> None:
    """The sweep really exercises every depth, style and feature it claims to."""
    seen: dict[str, set[object]] = {}
    for seed in list(QUICK_SEEDS) + list(SLOW_SEEDS):
        kwargs, _ = sample(seed, small_blocks=seed % 4 != 0)
        for key in (
            "depth",
            "style",
            "inflate_style",
            "with_pool1",
            "with_pool2",
            "with_cp",
            "norm_eval",
        ):
            seen.setdefault(key, set()).add(kwargs[key])
        seen.setdefault("non_local", set()).add(kwargs["non_local"] != 0)
        seen.setdefault("dilated", set()).add(max(kwargs["dilations"]) > 1)
        seen.setdefault("frozen", set()).add(kwargs["frozen_stages"] >= 0)
        seen.setdefault("t_stride", set()).add(max(kwargs["temporal_strides"]) > 1)
    assert seen["depth"] == {18, 34, 50, 101, 152}
    for key in ("style", "inflate_style"):
        assert len(seen[key]) == 2
    for key, values in seen.items():
        assert len(values) >= 2, key


def test_constructor_signature_is_mmaction2s() -> None:
    """Same parameter names, order and defaults; mmaction2 ends with ``**kwargs``, we don't."""
    theirs = list(inspect.signature(load_reference().ResNet3d).parameters.values())
    assert theirs[-1].kind is inspect.Parameter.VAR_KEYWORD
    ours = list(inspect.signature(ResNet3d).parameters.values())
    assert [p.name for p in ours] == [p.name for p in theirs[:-1]]
    for a, b in zip(ours, theirs, strict=False):
        assert a.kind == b.kind and a.default == b.default, a.name


@pytest.mark.parametrize("seed", range(3))
def test_positional_arguments_build_mmaction2s_network(seed: int) -> None:
    kwargs, shape = sample(seed, small_blocks=True)
    every = ResNet3dConfig(**kwargs).to_dict()  # all 30 arguments, as plain values
    ordered = [every[name] for name in inspect.signature(ResNet3d).parameters if name in every]
    assert len(ordered) == 30
    torch.manual_seed(seed)
    reference = load_reference().ResNet3d(*ordered)
    ours = ResNet3d(*ordered)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    reference.eval()
    ours.eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for a, b in zip(_as_tuple(reference(x)), _as_tuple(ours(x)), strict=True):
            assert torch.equal(a, b)
