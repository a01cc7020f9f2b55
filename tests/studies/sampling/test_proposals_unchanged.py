"""The cost-aware sampler proposes the same networks as before its speed-up (issue 22).

The expected digests below were captured from the code BEFORE the proposal and enumeration
were optimised (commit a5d21df, ``studies/sampling`` as of then), by running these very
scenarios; a faster sampler must propose exactly these networks. Each scenario replays a small
study through :meth:`CostAwareSampler.propose`: seeded synthetic top-1 values (a smooth trend
in the costs plus seed noise), the proposal added as a completed trial, and so on; the
space-filling start and the model phase both take part, with and without a latency source,
and with a pending network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import optuna
import pytest

from studies.sampling import CostAwareSampler
from studies.sampling.candidates import Candidates
from studies.study.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
TABLE = ROOT / "benchmarks" / "tables" / "bench_table.csv"


def _synthetic_top1(candidates: Candidates, row: int, rng: np.random.Generator) -> float:
    """Top-1 rising with log GFLOPs, falling with parameters, plus seed noise (sd 3)."""
    trend = 10.0 * np.log(candidates.gflops[row]) - 2.0 * np.log(candidates.params_m[row])
    return float(60.0 + trend + rng.normal(0.0, 3.0))


def _replay(sampler: CostAwareSampler, names: tuple[str, ...], steps: int, seed: int) -> list[str]:
    """Digests of ``steps`` successive proposals; the last one is made with the one before
    it pending (another worker is measuring it), not observed."""
    candidates = sampler.candidates()
    rng = np.random.default_rng(seed)
    trials: list[optuna.trial.FrozenTrial] = []
    picked: list[str] = []
    for step in range(steps):
        pending = frozenset(picked[-1:]) if step == steps - 1 else frozenset()
        observed = {str(t.user_attrs["digest"]) for t in trials}
        pick = sampler.propose(trials, observed | set(pending), pending=pending)
        assert pick is not None
        row, _ = pick
        picked.append(candidates.digests[row])
        if pending:
            break
        metrics = {
            "top1": _synthetic_top1(candidates, row, rng),
            "gflops": float(candidates.gflops[row]),
            "params_m": float(candidates.params_m[row]),
            # measured latency: what the sampler estimates from when it has no source
            "latency_ms": float(3.0 * candidates.gflops[row] + abs(rng.normal(0.0, 0.01))),
        }
        trials.append(optuna.trial.create_trial(
            values=[metrics[n] for n in names],
            user_attrs={**metrics, "digest": candidates.digests[row], "state": "complete"},
        ))  # fmt: skip
    return picked


def _fingerprint(candidates: Candidates) -> str:
    """Order, networks, parameters and costs of the candidates (the proposals index them)."""
    text = repr((candidates.digests, candidates.params, candidates.gflops.tolist(),
                 candidates.params_m.tolist(), candidates.latency_ms.tolist(),
                 candidates.features.tolist(), candidates.groups))  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SCENARIOS = {
    # spec, overrides, steps, seed
    "v1 table, latency known": (
        str(TABLE.with_suffix(".toml")),
        [f'study.table="{TABLE}"', 'study.objectives=["top1", "gflops", "latency_ms"]'],
        14,
        0,
    ),
    "cpu_default, latency estimated": (
        "cpu_default",
        ['study.objectives=["top1", "gflops", "latency_ms"]'],
        14,
        1,
    ),
    "cpu_default, top1 and params": (
        "cpu_default",
        ['study.objectives=["top1", "params_m"]', "study.n_startup_trials=3"],
        10,
        2,
    ),
    # the case: 16 space-filling starts, then the model over 24,544 candidates
    "i3d_r50_gpu, 24,544 networks": ("i3d_r50_gpu", [], 20, 3),
}

EXPECTED: dict[str, tuple[str, list[str]]] = {  # captured before the speed-up
    "v1 table, latency known": (
        "6a704133d554a63c",
        [
            "6b675aa1f0fc",
            "0a2e1aa9cc46",
            "0e29467a9573",
            "8bae73e5e440",
            "21b639885cfe",
            "7374478b427a",
            "b939a82d8619",
            "76da27fbc3bc",
            "740fd52073f5",
            "16a21bbfc412",
            "7a3a15aeb668",
            "d40912ee565b",
            "5859acbd77fb",
            "f7e8de9a9007",
        ],
    ),
    "cpu_default, latency estimated": (
        "c1f1c899561033d5",
        [
            "fc866ee16569",
            "c8dd908cfc94",
            "1c8e178c5bb8",
            "9a7d83d655d1",
            "1185fa635d83",
            "0cc3524a6c05",
            "a9bbfe7c9fee",
            "2557d92731d8",
            "018f4c927845",
            "d1f86a7690d2",
            "7087ad29fbf4",
            "c2fec60480d7",
            "7fdd6315d05a",
            "7e811da65f45",
        ],
    ),
    "cpu_default, top1 and params": (
        "c1f1c899561033d5",
        [
            "fc866ee16569",
            "d1f86a7690d2",
            "1185fa635d83",
            "58e038dd47ca",
            "babb803e8156",
            "7b8b8b5808a2",
            "c357fdbd931a",
            "d4b363eabbb4",
            "4ff7dadfa2ea",
            "2bda17e35d58",
        ],
    ),
    "i3d_r50_gpu, 24,544 networks": (
        "dab784725aae6c8d",
        [
            "88728bd3aa52",
            "067563e476b7",
            "d42a22659e4c",
            "feb1fde91bfd",
            "eaa914175bd9",
            "ccd8c72b167d",
            "3844b776b0c5",
            "cd89757a7d01",
            "9909c26901a3",
            "6bd0e03b0efb",
            "a9837abca83e",
            "af0f37b771a7",
            "bca84373c7c1",
            "fa329d6f144f",
            "e6731e3c3b73",
            "cabfa065f9ab",
            "5b4b5d7d308b",
            "e93b97bac9d3",
            "8405e2eeaaf4",
            "000fa2093a3b",
        ],
    ),
}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n.startswith("i3d") else n for n in SCENARIOS],
)
def test_the_sampler_proposes_the_networks_it_proposed_before(name: str) -> None:
    spec_name, overrides, steps, seed = SCENARIOS[name]
    spec = load_spec(spec_name, overrides=['study.sampler="cost_aware"', *overrides])
    sampler = CostAwareSampler(spec)
    fingerprint = _fingerprint(sampler.candidates())
    picked = _replay(sampler, spec.objective_names, steps, seed)
    expected_fingerprint, expected = EXPECTED[name]
    assert fingerprint == expected_fingerprint
    assert [d[:12] for d in picked] == expected
