"""Accuracy runner and trained model: config validation, determinism, failures, mmaction2 keys.

Everything trains for real on tiny motion clips (16x16 pixels, 4 frames) on the CPU; nothing
about torch is mocked. Failures are provoked through the data: a huge learning rate, NaN clips,
and a dataset that raises a real ``torch.cuda.OutOfMemoryError`` inside the training step.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import random
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from loader_pids import PidRecording, loading_pids
from torch import nn
from torch.utils.data import Dataset

from runners.data.motion import MotionDataset
from runners.model import build_recognizer, head_in_channels
from runners.training.accuracy import (
    AccuracyResult,
    TrainConfig,
    out_of_memory_failure,
    train_and_evaluate,
)
from runners.training.loop import Schedule
from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError, TrialFailure
from search_space.resnet3d import build_resnet3d

ROOT = Path(__file__).resolve().parents[3]
HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")

TINY = ResNet3dConfig(
    depth=50, stage_blocks=(1, 1, 1, 1), base_channels=4, conv1_kernel=(3, 7, 7), with_pool2=False
)
FAST = TrainConfig(epochs=2, batch_size=8, lr=0.05, device="cpu", num_threads=1)


def _data(num_classes: int = 2, num_clips: int = 32, split: str = "train") -> MotionDataset:
    return MotionDataset(
        num_classes=num_classes,
        num_clips=num_clips,
        clip_len=4,
        resolution=16,
        noise=0.2,
        seed=0,
        split=split,
    )


def _train(cfg: TrainConfig = FAST, **kwargs: Any) -> AccuracyResult:
    num_classes = kwargs.pop("num_classes", 2)
    train_set = kwargs.pop("train_set", _data(num_classes))
    val_set = kwargs.pop("val_set", _data(num_classes, 16, "val"))
    config = kwargs.pop("config", TINY)
    return train_and_evaluate(config, train_set, val_set, cfg, num_classes=num_classes, **kwargs)


def _without_seconds(history: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


# ---------------------------------------------------------------------- TrainConfig
def test_train_config_round_trips_through_dict() -> None:
    cfg = TrainConfig(optimizer="adamw", grad_clip=1.0, amp=False, num_threads=2)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("batch_size", 2.0),
        ("optimizer", "adam"),
        ("lr", 0),
        ("lr", float("inf")),
        ("momentum", 1.0),
        ("weight_decay", -1e-4),
        ("warmup_epochs", 11),
        ("label_smoothing", 1.0),
        ("dropout", -0.1),
        ("seed", -1),
        ("device", "tpu"),
        ("device", "cuda:x"),
        ("amp", "yes"),
        ("channels_last", None),
        ("num_threads", 0),
        ("grad_clip", 0.0),
        ("eval_every", 0),
    ],
)
def test_invalid_train_config_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_from_dict_rejects_unknown_keys_by_name() -> None:
    with pytest.raises(ConfigError, match="'learning_rate'"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_num_workers_is_a_data_setting_now() -> None:
    """One home for the loader workers: an old train config says where the key went."""
    with pytest.raises(ConfigError, match=r"move it to \[data\] num_workers") as info:
        TrainConfig.from_dict({"epochs": 2, "num_workers": 8})
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="num_workers must be an int >= 0; got -1"):
        _train(num_workers=-1)


def test_schedule_warms_up_linearly_then_decays_to_zero() -> None:
    schedule = Schedule(base_lr=0.4, warmup_steps=4, total_steps=12)
    assert [schedule.lr(s) for s in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert schedule.lr(4) == pytest.approx(0.4)
    assert schedule.lr(8) == pytest.approx(0.2)  # cosine half-way
    assert schedule.lr(11) == pytest.approx(0.4 * 0.5 * (1 + math.cos(7 / 8 * math.pi)))
    assert Schedule(base_lr=0.4, warmup_steps=0, total_steps=10).lr(0) == pytest.approx(0.4)


# ---------------------------------------------------------------------- the model
def test_state_dict_uses_mmaction2_recognizer_keys() -> None:
    torch.manual_seed(0)
    model = build_recognizer(TINY, num_classes=7)
    keys = list(model.state_dict())
    head_keys = [k for k in keys if not k.startswith("backbone.")]
    assert head_keys == ["cls_head.fc_cls.weight", "cls_head.fc_cls.bias"]
    backbone_keys = [k.removeprefix("backbone.") for k in keys if k.startswith("backbone.")]
    assert backbone_keys == list(build_resnet3d(TINY).state_dict())
    assert model.cls_head.fc_cls.weight.shape == (7, TINY.feat_dim)
    # I3DHead.init_weights: normal std 0.01, bias 0
    assert 0.005 < float(model.cls_head.fc_cls.weight.detach().std()) < 0.015
    assert torch.count_nonzero(model.cls_head.fc_cls.bias) == 0
    assert model(torch.randn(2, 3, 4, 16, 16)).shape == (2, 7)


def test_head_classifies_the_last_of_several_outputs() -> None:
    config = TINY.replace(out_indices=(0, 2))
    assert head_in_channels(config) == 4 * 4 * 2**2 != config.feat_dim
    model = build_recognizer(config, num_classes=3, dropout=0.0)
    assert model.cls_head.dropout is None  # mmaction2 builds no dropout at ratio 0
    assert model(torch.randn(2, 3, 4, 16, 16)).shape == (2, 3)


@pytest.mark.parametrize(("field", "value"), [("num_classes", 0), ("dropout", 1.0)])
def test_build_recognizer_validates(field: str, value: Any) -> None:
    kwargs = {"num_classes": 2, "dropout": 0.5, field: value}
    with pytest.raises(ConfigError, match=field):
        build_recognizer(TINY, **kwargs)


@functools.cache
def _reference_i3d_head() -> type:
    """mmaction2's ``I3DHead``, executed by path (its package import fails, see the oracle)."""
    from mmaction_oracle import load_reference

    load_reference()  # imports mmaction's registries as the oracle does
    from mmaction.registry import MODELS

    registered = MODELS.module_dict.get("I3DHead")
    if registered is not None:  # another test module got there first
        return registered
    spec = importlib.util.find_spec("mmaction")
    assert spec is not None and spec.origin is not None
    heads = Path(spec.origin).parent / "models" / "heads"
    package = types.ModuleType("_mmaction_heads_oracle")
    package.__path__ = [str(heads)]
    sys.modules[package.__name__] = package
    module_spec = importlib.util.spec_from_file_location(
        "_mmaction_heads_oracle.i3d_head", heads / "i3d_head.py"
    )
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    return module.I3DHead


def test_trained_checkpoint_loads_into_mmaction2_modules(tmp_path: Path) -> None:
    from mmaction_oracle import load_reference

    reference = load_reference()
    path = tmp_path / "trial.pth"
    _train(FAST.replace(epochs=1), checkpoint_path=path)
    checkpoint = torch.load(path, weights_only=False)
    state = checkpoint["state_dict"]
    assert checkpoint["meta"]["config"] == TINY.to_dict()

    class MMActionRecognizer(nn.Module):  # Recognizer3D's parameter layout
        def __init__(self) -> None:
            super().__init__()
            self.backbone = reference.ResNet3d(**TINY.to_dict())
            # NOTE: a class, not the registry name, so building the loss does not import
            # mmaction.models (which fails, see tests/mmaction_oracle.py).
            self.cls_head = _reference_i3d_head()(
                num_classes=2,
                in_channels=TINY.feat_dim,
                loss_cls={"type": nn.CrossEntropyLoss},
            )

    theirs = MMActionRecognizer()
    theirs.load_state_dict(state, strict=True)
    ours = build_recognizer(TINY, num_classes=2)
    ours.load_state_dict(state, strict=True)
    theirs.eval()
    ours.eval()
    x = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        expected = theirs.cls_head(theirs.backbone(x))
        assert torch.equal(ours(x), expected)


# ---------------------------------------------------------------------- training
def test_same_config_and_seed_give_identical_results(tmp_path: Path) -> None:
    a = _train(checkpoint_path=tmp_path / "a.pth")
    b = _train(checkpoint_path=tmp_path / "b.pth")
    assert a.top1 == b.top1 and a.top5 == b.top5
    assert _without_seconds(a.history) == _without_seconds(b.history)
    state_a = torch.load(tmp_path / "a.pth")["state_dict"]
    state_b = torch.load(tmp_path / "b.pth")["state_dict"]
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    c = _train(FAST.replace(seed=1))
    assert _without_seconds(c.history) != _without_seconds(a.history)


def test_training_leaves_the_callers_random_streams_where_they_were() -> None:
    def draw() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    def reseed() -> None:
        random.seed(123)
        np.random.seed(123)
        torch.manual_seed(123)

    reseed()
    expected = draw()
    reseed()
    _train(TrainConfig(epochs=1, batch_size=8, device="cpu", num_threads=1, seed=7))
    assert draw() == expected
    assert not torch.are_deterministic_algorithms_enabled()


def test_num_workers_reaches_the_data_loader(tmp_path: Path) -> None:
    """Training items load in ``num_workers`` other processes; the result does not change."""
    logs = {n: tmp_path / f"pids{n}.txt" for n in (0, 2)}
    results = {
        n: _train(FAST.replace(epochs=3), num_workers=n, train_set=PidRecording(_data(), log))
        for n, log in logs.items()
    }
    assert loading_pids(logs[0]) == {os.getpid()}
    assert len(loading_pids(logs[2])) == 2 and os.getpid() not in loading_pids(logs[2])
    assert _without_seconds(results[2].history) == _without_seconds(results[0].history)


def test_result_reports_history_timings_and_memory() -> None:
    result = _train(FAST.replace(epochs=3, eval_every=2), num_classes=3)
    assert result.epochs_run == 3 and result.topk == 3
    assert result.top5 == 100.0  # top-3 of 3 classes
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[0]["val_top1"] is None
    assert result.history[1]["val_top1"] is not None
    assert result.top1 == result.history[-1]["val_top1"]
    assert result.history[-1]["lr"] < result.history[0]["lr"]
    assert result.wall_s >= result.train_s + result.eval_s > 0
    assert result.peak_memory_mb > 0
    assert result.device == "cpu" and result.amp is False  # amp "auto" is off on CPU
    assert result.peak_memory_source in ("process_peak_rss", "process_peak_rss_lifetime")
    assert result.device == "cpu" and result.seed == 0
    assert result.num_params == sum(
        p.numel() for p in build_recognizer(TINY, num_classes=3).parameters()
    )


def test_callback_sees_every_epoch_and_can_stop_training() -> None:
    seen: list[tuple[int, dict[str, Any]]] = []
    _train(FAST.replace(epochs=3), on_epoch=lambda epoch, m: seen.append((epoch, m)))
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert all(m["epoch"] == epoch and m["val_top1"] is not None for epoch, m in seen)

    class Pruned(Exception):
        pass

    calls: list[int] = []

    def prune_at_two(epoch: int, metrics: dict[str, Any]) -> None:
        calls.append(epoch)
        if epoch == 2:
            raise Pruned

    threads = torch.get_num_threads()
    with pytest.raises(Pruned):
        _train(FAST.replace(epochs=5, num_threads=threads + 1), on_epoch=prune_at_two)
    assert calls == [1, 2]
    # process-wide settings are restored on the way out
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads


class _NaNClips(Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.full((3, 4, 16, 16), float("nan")), index % 2


class _OutOfMemoryAt(Dataset):
    """Real clips, but loading item ``fail_at`` raises a real CUDA out-of-memory error."""

    def __init__(self, fail_at: int) -> None:
        self.clips = _data()
        self.fail_at = fail_at

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if index == self.fail_at:
            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.11 GiB total)"
            )
        return self.clips[index]


def test_non_finite_loss_is_a_trial_failure_and_the_process_goes_on() -> None:
    with pytest.raises(TrialFailure, match=r"non-finite loss .* at epoch 1, step \d+ of 4"):
        _train(FAST.replace(lr=1e30, warmup_epochs=0))
    with pytest.raises(TrialFailure, match=r"non-finite loss nan at epoch 1, step 1 of 2"):
        _train(train_set=_NaNClips())
    assert not torch.are_deterministic_algorithms_enabled()
    assert _train().epochs_run == 2


def test_a_callbacks_own_trial_failure_propagates_unchanged() -> None:
    class Infeasible(TrialFailure):
        pass

    def reject(epoch: int, metrics: dict[str, Any]) -> None:
        raise Infeasible("constraint violated")

    with pytest.raises(Infeasible, match="constraint violated"):
        _train(on_epoch=reject)


def test_out_of_memory_in_a_training_step_is_a_trial_failure() -> None:
    # Every epoch loads item 5, so epoch 1 fails at whichever step the seeded sampler puts it.
    with pytest.raises(TrialFailure) as info:
        _train(train_set=_OutOfMemoryAt(fail_at=5))
    message = str(info.value)
    assert "out of memory on cpu at epoch 1, step" in message
    assert "(train)" in message and "MiB" in message
    assert "Tried to allocate 20.00 GiB" in message
    assert _train().epochs_run == 2


def test_out_of_memory_failure_names_where_and_how_much() -> None:
    failure = out_of_memory_failure(
        "CUDA out of memory", device=torch.device("cpu"), where="epoch 3, step 7 of 9 (eval)"
    )
    assert isinstance(failure, TrialFailure)
    assert str(failure).startswith("out of memory on cpu at epoch 3, step 7 of 9 (eval): ")
    assert "process RSS" in str(failure) and "peak" in str(failure)


def test_amp_on_cpu_and_unknown_or_empty_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="amp"):
        _train(FAST.replace(amp=True))
    with pytest.raises(ConfigError, match="val_set"):
        _train(val_set=_EmptySet())


class _EmptySet(Dataset):
    def __len__(self) -> int:
        return 0


@pytest.mark.skipif(HAS_CUDA, reason="checks the message given when CUDA is absent")
def test_cuda_device_without_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="device 'cuda'"):
        _train(FAST.replace(device="cuda"))


def test_progress_prints_one_line_per_epoch_only_when_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _train()
    assert capsys.readouterr().err == ""
    _train(progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]


def test_temporal_network_learns_motion_and_a_frame_wise_one_does_not() -> None:
    """The motion task in miniature: 2 opposite pan directions, chance 50%."""
    train_set = _data(num_clips=256)
    val_set = _data(num_clips=256, split="val")
    temporal = TINY.replace(base_channels=8, inflate=1)
    flat = temporal.replace(conv1_kernel=(1, 7, 7), inflate=0)
    # Seeds 0-3 gave 95-97% and 48-59% here; the bounds leave room for other CPUs' arithmetic.
    cfg = FAST.replace(epochs=10, batch_size=16, lr=0.1, dropout=0.0)
    learned = _train(cfg, config=temporal, train_set=train_set, val_set=val_set)
    frame_wise = _train(cfg, config=flat, train_set=train_set, val_set=val_set)
    assert learned.top1 >= 80.0, learned.history
    # Opposite directions are time reversals: per-frame evidence is exactly uninformative.
    assert frame_wise.top1 <= 65.0, frame_wise.history


@pytest.mark.slow
def test_motion_sanity_temporal_reaches_90_and_flat_stays_near_chance() -> None:
    spec = importlib.util.spec_from_file_location(
        "_sanity_motion", ROOT / "benchmarks" / "sanity_motion.py"
    )
    assert spec is not None and spec.loader is not None
    sanity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sanity)
    out = sanity.run_sanity()
    temporal, flat = out["results"]["temporal"], out["results"]["flat"]
    assert temporal.top1 >= 90.0, temporal.history
    assert flat.top1 <= out["chance"] + 15.0, flat.history


# ---------------------------------------------------------------------- CUDA only
@pytest.mark.parametrize("amp", [True, False])
@pytest.mark.gpu
@requires_cuda
def test_cuda_training_with_amp_and_channels_last(amp: bool) -> None:
    result = _train(FAST.replace(device="cuda", amp=amp, channels_last=True))
    assert result.device.startswith("cuda")
    assert result.peak_memory_source == "cuda_max_allocated" and result.peak_memory_mb > 0
    assert 0 <= result.top1 <= 100


class _HugeClips(Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.zeros(3, 16, 224, 224), index % 2


@pytest.mark.gpu
@requires_cuda
def test_real_cuda_out_of_memory_is_reported_and_memory_freed() -> None:
    # ~13 GB for conv1's output alone and >100 GB of activations in layer1: more than any GPU.
    huge = ResNet3dConfig(depth=50, stage_blocks=(1, 1, 1, 1), base_channels=512)
    with pytest.raises(
        TrialFailure, match=r"out of memory on cuda:\d+ at epoch 1, step 1"
    ) as info:
        _train(FAST.replace(device="cuda", batch_size=32), config=huge, train_set=_HugeClips())
    assert "allocated" in str(info.value) and "total" in str(info.value)
    assert torch.cuda.memory_allocated() < 2**30
    assert _train(FAST.replace(device="cuda")).epochs_run == 2


# ---------------------------------------------------------------------- saved weights
def test_saved_weights_evaluate_to_the_trained_accuracy(tmp_path: Path) -> None:
    from runners.training.accuracy import evaluate_checkpoint

    path = tmp_path / "w.pth"
    cfg = FAST.replace(epochs=1)
    trained = _train(cfg, checkpoint_path=path)
    val_set = _data(2, 16, "val")
    evaluated = evaluate_checkpoint(TINY, val_set, cfg, num_classes=2, checkpoint_path=path)
    assert (evaluated.top1, evaluated.top5) == (trained.top1, trained.top5)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
    other = ResNet3dConfig.from_dict({**TINY.to_dict(), "with_pool2": True})
    for kwargs, message in [
        ({"config": other}, "another configuration"),
        ({"num_classes": 3}, "has 2 classes; the data has 3"),
        ({"checkpoint_path": tmp_path / "missing.pth"}, "not found"),
    ]:
        call = {"config": TINY, "num_classes": 2, "checkpoint_path": path, **kwargs}
        with pytest.raises(ConfigError, match=message):
            evaluate_checkpoint(
                call["config"], val_set, cfg, num_classes=call["num_classes"],
                checkpoint_path=call["checkpoint_path"],
            )  # fmt: skip
