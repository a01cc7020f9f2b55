"""The drift reference: timed in alternating blocks, one cached baseline per machine.

Whether it makes latency repeatable on a drifting machine is measured, not asserted here:
``benchmarks/bench_latency_model.py --retest`` (with and without ``--no-reference``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import torch
from torch import nn

from runners.latency.measure import LatencyConfig, measure_latency, measure_model_latency
from runners.latency.reference import baseline_path, forget_baselines
from search_space import ConfigError, ResNet3dConfig
from studies.study.spec import parse_spec

TINY = ResNet3dConfig(depth=18, base_channels=4)
CLIP = (1, 3, 4, 32, 32)
ROOT = Path(__file__).resolve().parents[3]
TINY_SPEC = ROOT / "tests" / "studies" / "specs" / "tiny.toml"


def _quick(**changes: object) -> LatencyConfig:
    base = {"device": "cpu", "warmup": 1, "repeats": 6, "blocks": 3, "threads": 1,
            "isolation": "none", "reference": False}  # fmt: skip
    base.update(changes)
    return LatencyConfig.from_dict(base)


def test_referenced_latency_is_the_p10_ratio_times_the_baseline() -> None:
    result = measure_latency(TINY, CLIP, _quick(reference=True))
    assert result.reference_ms is not None and result.reference_ms > 0
    assert result.reference_baseline_ms is not None and result.reference_baseline_ms > 0
    assert result.p10_ms is not None
    assert result.min_ms <= result.p10_ms <= result.median_ms
    assert result.latency_ms == pytest.approx(
        result.p10_ms / result.reference_ms * result.reference_baseline_ms
    )
    assert result.to_dict()["latency_ms"] == result.latency_ms
    assert result.samples == 6  # the reference's runs are not the model's samples
    # throughput is corrected the same way (issue 20: 4.66 ms but 3.0 clips/s)
    assert result.throughput_clips_s == pytest.approx(1000.0 / result.latency_ms)
    batched = measure_latency(TINY, CLIP, _quick(reference=True, batch_size=2))
    assert batched.reference_ms is not None and batched.reference_baseline_ms is not None
    assert batched.throughput_clips_s > 0 and batched.batch_size == 2
    assert batched.throughput_clips_s != pytest.approx(2000.0 / batched.batch_median_ms)


def test_without_reference_latency_is_the_median() -> None:
    result = measure_latency(TINY, CLIP, _quick())
    assert result.reference_ms is None and result.reference_baseline_ms is None
    assert result.latency_ms == result.median_ms


class _Stamped(nn.Module):
    """Records when each of its timed calls starts."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.starts: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.starts.append(time.perf_counter_ns())
        return self.inner(x)


def test_reference_blocks_sit_between_the_model_blocks() -> None:
    # NOTE: a model that takes microseconds, so a gap of 3 reference runs (milliseconds) stands
    # out from the gaps inside a block.
    model = _Stamped(nn.Identity())
    measure_model_latency(model, CLIP, _quick(reference=True, warmup=0, repeats=9, blocks=3))
    timed = model.starts[-9:]  # after the first (untimed) call
    gaps = [b - a for a, b in zip(timed, timed[1:], strict=False)]
    between = [gaps[2], gaps[5]]  # after runs 3 and 6: a block of 3 reference runs
    within = [g for i, g in enumerate(gaps) if i not in (2, 5)]
    assert min(between) > max(within)
    assert min(between) > 1e6  # ns: 3 runs of a network of about 1-3 ms


def test_baseline_is_measured_once_and_shared_by_processes() -> None:
    forget_baselines()
    first = measure_latency(TINY, CLIP, _quick(reference=True))
    stored = json.loads(baseline_path().read_text())
    assert list(stored.values()) == [first.reference_baseline_ms]
    again = measure_latency(TINY, CLIP, _quick(reference=True))
    assert again.reference_baseline_ms == first.reference_baseline_ms
    code = (
        "from runners.latency.measure import LatencyConfig, measure_latency\n"
        "from search_space import ResNet3dConfig\n"
        "r = measure_latency(ResNet3dConfig(depth=18, base_channels=4), (1, 3, 4, 32, 32),\n"
        "    LatencyConfig(device='cpu', repeats=4, blocks=2, threads=1, reference=True,\n"
        "                  isolation='none'))\n"
        "print(repr(r.reference_baseline_ms))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert float(out.stdout.strip()) == first.reference_baseline_ms


def test_a_corrupt_baseline_file_is_measured_again() -> None:
    baseline_path().parent.mkdir(parents=True, exist_ok=True)
    baseline_path().write_text("{not json")
    result = measure_latency(TINY, CLIP, _quick(reference=True))
    assert json.loads(baseline_path().read_text()) == {
        next(iter(json.loads(baseline_path().read_text()))): result.reference_baseline_ms
    }


def test_reference_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="^reference must be true or false; got 'yes'"):
        LatencyConfig(reference="yes")  # type: ignore[arg-type]


def test_spec_key_is_checked_under_its_own_name(tmp_path: Path) -> None:
    data = tomllib.loads(TINY_SPEC.read_text())
    data.setdefault("measure", {})["latency_reference"] = "yes"
    with pytest.raises(ConfigError, match=r"^\[measure\] latency_reference must be true or false"):
        parse_spec(data, source="tiny-variant", base_dir=tmp_path)


def test_studies_time_beside_the_reference_by_default(tmp_path: Path) -> None:
    spec = parse_spec(tomllib.loads(TINY_SPEC.read_text()), source="tiny", base_dir=tmp_path)
    assert spec.measure.latency_config().reference is True
