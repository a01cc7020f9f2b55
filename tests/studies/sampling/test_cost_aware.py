"""``sampler = "cost_aware"`` and the ``DistinctNetworks`` wrapper, in real tabular studies.

The studies replay the committed v1 benchmark table (372 networks, 2 seeds) or the synthetic
table of ``tests/tables.py`` through the run loop, storage and workers a user runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from search_space.errors import ConfigError
from studies.core.dominance import hypervolume
from studies.run.launch import launch, prepare_study
from studies.run.loop import make_objective, quiet_optuna
from studies.run.objective import TrialRunner
from studies.sampling import DistinctNetworks, space_exhausted
from studies.sampling.candidates import build_candidates
from studies.sampling.ehvi import best_improvement, expected_improvement
from studies.study.samplers import build_sampler
from studies.study.sections import StudySpec
from studies.study.spec import load_spec
from studies.study.storage import open_storage

ROOT = Path(__file__).resolve().parents[3]
TABLE = ROOT / "benchmarks" / "tables" / "bench_table.csv"
COMPLETE = optuna.trial.TrialState.COMPLETE
BUDGET = "\n[constraints]\nmax_gflops = 0.03\n"


def _v1_spec(*overrides: str) -> StudySpec:
    """The v1 table's own spec in tabular mode, objectives top-1, GFLOPs and latency."""
    base = [f'study.table="{TABLE}"', 'study.sampler="cost_aware"',
            'study.objectives=["top1", "gflops", "latency_ms"]']  # fmt: skip
    return load_spec(TABLE.with_suffix(".toml"), overrides=[*base, *overrides])


def _launch(spec: StudySpec, url: str, folder: Path, **kwargs: object) -> optuna.Study:
    launch(spec, storage=url, study_name="ca", wandb_mode="disabled", progress=False,
           runs_dir=folder, print_pareto=False, **kwargs)  # type: ignore[arg-type]  # fmt: skip
    return optuna.load_study(study_name="ca", storage=open_storage(url))


def _digests(study: optuna.Study) -> list[str]:
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    return [str(t.user_attrs["digest"]) for t in trials if "digest" in t.user_attrs]


# ---------------------------------------------------------------------- the closed form
@pytest.mark.parametrize("known", [0, 1, 2, 3])
def test_expected_improvement_equals_monte_carlo(known: int) -> None:
    rng = np.random.default_rng(known)
    front = rng.random((6, 1 + known))
    reference = np.full(1 + known, 1.1)
    costs = rng.random((4, known))
    mu, sd = rng.random(4) * 0.8, 0.05 + 0.3 * rng.random(4)
    exact = expected_improvement(mu, sd, costs, front, reference)
    base = hypervolume(front.tolist(), reference.tolist())
    draws = 3000
    for i in range(4):
        samples = rng.normal(mu[i], sd[i], draws)
        gains = [hypervolume([*front.tolist(), [y, *costs[i]]], reference.tolist()) - base
                 for y in samples]  # fmt: skip
        error = 4 * np.std(gains) / np.sqrt(draws) + 1e-9
        assert exact[i] == pytest.approx(np.mean(gains), abs=error), (i, exact, np.mean(gains))


def test_expected_improvement_of_a_dominated_certain_point_is_zero() -> None:
    front = np.array([[0.2, 0.2, 0.2]])
    gain = expected_improvement(np.array([0.5]), np.array([1e-9]), np.array([[0.3, 0.3]]),
                                front, np.ones(3))  # fmt: skip
    assert gain[0] == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------- candidates
def test_candidates_are_the_space_and_their_params_build_them() -> None:
    """Every network of the v1 space once; a trial given a candidate's parameters as
    fixed_params samples exactly them (the conditional inflate_style only where it matters)
    and builds that network."""
    spec = _v1_spec()
    candidates = build_candidates(spec)
    assert len(candidates) == 372 and candidates.complete
    assert candidates.latency_source == "table" and np.isfinite(candidates.latency_ms).all()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for digest, params in zip(candidates.digests, candidates.params, strict=True):
        study.enqueue_trial(params)
        trial = study.ask()
        assert spec.space.sample(trial).digest() == digest
        assert trial.params == params
        study.tell(trial, 0.0)
    no_style = [p for p in candidates.params if "inflate_style" not in p]
    assert no_style and all(all(v == "none" for k, v in p.items() if k.endswith("inflate"))
                            for p in no_style)  # fmt: skip


# ---------------------------------------------------------------------- real studies
def test_two_workers_never_measure_one_network_twice(tmp_path: Path) -> None:
    """Two ``r3dnas worker`` processes on one journal study: 12 trials, 12 networks, all
    trained; the first n_startup_trials spread, then the model picks."""
    url = f"journal://{tmp_path / 'ca.log'}"
    study = _launch(_v1_spec("study.n_trials=12"), url, tmp_path, workers=2)
    trials = study.get_trials(deepcopy=False)
    assert len({t.user_attrs["worker"] for t in trials if "worker" in t.user_attrs}) == 2
    # a trial either trained a network, or lost the last budget slot to the other worker
    measured = [t for t in trials if t.state == COMPLETE]
    others = [t.user_attrs.get("state") for t in trials if t.state != COMPLETE]
    assert len(measured) == 12 and set(others) <= {"over_budget"}, others
    digests = _digests(study)
    assert len(digests) == len(set(digests)) == 12
    phases = [t.system_attrs["cost_aware"]["phase"] for t in measured]
    assert phases.count("start") >= 4 and phases[-1] == "model"


def test_resume_rebuilds_the_state_from_the_trials(tmp_path: Path) -> None:
    """6 trials, then the study resumed to 12 by a fresh sampler, picks what one 12-trial run
    picks: the sampler keeps no state of its own."""
    once = _launch(_v1_spec("study.n_trials=12"), f"sqlite:///{tmp_path / 'once.db'}", tmp_path)
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    _launch(_v1_spec("study.n_trials=6"), url, tmp_path)
    twice = _launch(_v1_spec("study.n_trials=12"), url, tmp_path)
    assert _digests(twice) == _digests(once)
    assert len(set(_digests(twice))) == 12


def test_budgets_are_kept_before_training(tmp_path: Path) -> None:
    """A GFLOPs and a latency budget: no trial is infeasible, none proposed breaks them."""
    spec = _v1_spec("study.n_trials=10")
    candidates = build_candidates(spec)
    gflops, latency = np.median(candidates.gflops), np.median(candidates.latency_ms)
    text = TABLE.with_suffix(".toml").read_text() + (
        f"\n[constraints]\nmax_gflops = {gflops}\nmax_latency_ms = {latency}\n"
    )
    path = tmp_path / "budget.toml"
    path.write_text(text)
    spec = load_spec(path, overrides=[f'study.table="{TABLE}"', 'study.sampler="cost_aware"',
                                      'study.objectives=["top1", "gflops", "latency_ms"]',
                                      "study.n_trials=10"])  # fmt: skip
    study = _launch(spec, f"sqlite:///{tmp_path / 'b.db'}", tmp_path)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [COMPLETE] * 10
    assert all(t.user_attrs["gflops"] <= gflops for t in trials)
    assert all(t.user_attrs["latency_ms"] <= latency for t in trials)


def test_single_objective_with_a_budget_is_expected_improvement(tmp_path: Path) -> None:
    path = tmp_path / "single.toml"
    path.write_text(TABLE.with_suffix(".toml").read_text() + BUDGET)
    overrides = [f'study.table="{TABLE}"', 'study.sampler="cost_aware"',
                 'study.objectives=["top1"]', "study.n_trials=8"]  # fmt: skip
    spec = load_spec(path, overrides=overrides)
    study = _launch(spec, f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [COMPLETE] * 8
    assert all(t.user_attrs["gflops"] <= 0.03 for t in trials)


@pytest.mark.parametrize(
    ("objectives", "message"),
    [
        (["top1"], "needs costs to trade against top1.*no constraints"),
        (["top1", "top5", "gflops"], "exactly one of top1, top5.*got \\['top1', 'top5'"),
        (["gflops", "latency_ms"], "exactly one of top1, top5"),
    ],
)
def test_studies_it_cannot_serve_are_one_line_errors(objectives: list[str], message: str) -> None:
    spec = _v1_spec(f"study.objectives={json.dumps(objectives)}")
    with pytest.raises(ConfigError, match=message) as caught:
        build_sampler(spec)
    assert "\n" not in str(caught.value)


def test_the_cli_refuses_it_in_one_line_with_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "studies.cli", "launch", str(TABLE.with_suffix(".toml")),
         "--set", f'study.table="{TABLE}"', "--set", 'study.sampler="cost_aware"',
         "--set", 'study.objectives=["top1"]', "--runs-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "cost_aware" in proc.stderr


# ---------------------------------------------------------------------- the wrapper
def _wrapped_study(spec: StudySpec, inner: optuna.samplers.BaseSampler, folder: Path,
                   n_trials: int) -> optuna.Study:  # fmt: skip
    """A tabular study of ``n_trials`` trials with ``DistinctNetworks(inner)`` as its sampler."""
    url = f"journal://{folder / 'wrapped.log'}"
    with quiet_optuna():
        study = prepare_study(spec, study_name="w", storage_url=url, n_trials=n_trials,
                              runs_dir=folder)  # fmt: skip
        study.sampler = DistinctNetworks(inner, spec)
        objective = make_objective(study, TrialRunner(spec, runs_dir=folder), n_trials=n_trials)
        study.optimize(objective, n_trials=n_trials)
    return study


@pytest.mark.parametrize("inner", ["gp", "tpe_default", "nsga2"])
def test_the_wrapper_makes_every_trial_a_new_network(inner: str, tmp_path: Path) -> None:
    spec = _v1_spec('study.sampler="random"')
    samplers = {
        "gp": lambda: optuna.samplers.GPSampler(seed=0, n_startup_trials=4),
        "tpe_default": lambda: optuna.samplers.TPESampler(seed=0),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=0, population_size=8),
    }
    study = _wrapped_study(spec, samplers[inner](), tmp_path, n_trials=30)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [COMPLETE] * 30
    assert len(set(_digests(study))) == 30
    info = [t.system_attrs["distinct_networks"] for t in trials]
    assert all(1 <= i["asked"] <= 4 for i in info)


def test_an_exhausted_space_is_marked(tmp_path: Path) -> None:
    """Every network of the synthetic space trained, one per trial; the next trial is marked
    and reuses one."""
    from tables import synthetic_table

    table = synthetic_table(tmp_path)
    spec = load_spec(table.with_suffix(".toml"), overrides=[f'study.table="{table}"',
                                                             'study.pruner="none"'])  # fmt: skip
    size = len(build_candidates(spec))
    assert size == 12
    inner = optuna.samplers.RandomSampler(seed=0)
    study = _wrapped_study(spec, inner, tmp_path, n_trials=size + 1)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    assert [space_exhausted(t) for t in trials] == [False] * size + [True]
    assert len(set(_digests(study)[:size])) == size
    assert trials[size].user_attrs["state"] == "reused"


@pytest.mark.parametrize("known", [0, 1, 2, 3])
def test_best_improvement_is_the_argmax_of_the_full_computation(known: int) -> None:
    """The pruned pick equals an argmax of expected_improvement over the allowed candidates,
    value included, on fronts with enough levels for both rounds of bounds; repeated rows
    check that the first of equals wins."""
    rng = np.random.default_rng(10 + known)
    for _ in range(3):
        front = rng.random((60, 1 + known))
        reference = np.full(1 + known, 1.1)
        costs = np.repeat(rng.random((150, known)), 2, axis=0)
        mu = np.repeat(rng.random(150), 2)
        sd = np.repeat(0.02 + 0.3 * rng.random(150), 2)
        allowed = rng.random(300) < 0.8
        gain = expected_improvement(mu, sd, costs, front, reference)
        gain[~allowed] = -np.inf
        row, value = best_improvement(mu, sd, costs, front, reference, allowed)
        assert (row, value) == (int(np.argmax(gain)), float(gain.max()))
