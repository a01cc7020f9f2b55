"""Multi-objective early stopping (``pruner = "pareto"``) and its MOASHA baseline: the pure
rules in closed form, the spec rules, and real tabular studies on SQLite (pruned trials keep
their curve and reason, stay off the front and are never reused; two worker processes)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from tables import SPACE, synthetic_table

from runners.scores.tabular import BenchmarkTable
from search_space.errors import ConfigError
from studies.results.pareto import pareto
from studies.run.budget import is_completed
from studies.run.launch import launch
from studies.run.pruning import (
    moasha_rule,
    moasha_rungs,
    nondominated_order,
    optimistic_top1,
    pareto_rule,
)
from studies.study.sections import StudySpec
from studies.study.spec import load_spec

# ---------------------------------------------------------------------- the bound


@pytest.mark.parametrize(
    ("expected", "curve", "finished", "margin"),
    [
        # best so far 40 + largest gain from epoch 2 (70 - 30 = 40) + margin 2
        ((82.0, 40.0), [25.0, 40.0], [[25.0, 30.0, 50.0, 70.0], [25.0, 60.0, 62.0, 64.0]], 2.0),
        # a dip does not lower the bound: the best so far (50) is the base
        ((70.0, 20.0), [50.0, 30.0], [[10.0, 20.0, 30.0, 40.0]], 0.0),
        # no finished curve rose: gain 0, the bound is the best so far + margin
        ((51.0, 0.0), [50.0], [[60.0, 55.0]], 1.0),
        # capped at 100
        ((100.0, 80.0), [30.0], [[10.0, 90.0]], 5.0),
    ],
)
def test_optimistic_top1_closed_form(
    expected: tuple[float, float], curve: list[float], finished: list[list[float]], margin: float
) -> None:
    assert optimistic_top1(curve, finished, margin=margin) == pytest.approx(expected)


FINISHED = [[25.0, 40.0, 60.0, 70.0], [25.0, 50.0, 70.0, 80.0]]  # gains from epoch 1: 45, 55


@pytest.mark.parametrize(
    ("stop", "costs", "curve", "front"),
    [
        # bound 25 + 55 + 2 = 82 < 85, at lower gflops: dominated
        (True, (2.0,), [25.0], [(7, 85.0, (1.0,))]),
        # the front point is more accurate but not cheaper: not dominated
        (False, (2.0,), [25.0], [(7, 85.0, (2.5,))]),
        # equal cost and equal top-1: not dominated (nothing strictly better)
        (False, (2.0,), [28.0], [(7, 85.0, (2.0,))]),
        # a higher curve escapes: bound 35 + gain from epoch 1 (55) + 2 = 92 > 85
        (False, (2.0,), [35.0], [(7, 85.0, (1.0,))]),
        # equal cost, strictly more accurate than the bound: dominated
        (True, (2.0,), [25.0], [(7, 85.0, (2.0,))]),
    ],
)
def test_pareto_rule_stops_only_what_the_front_dominates(
    stop: bool,
    costs: tuple[float, ...],
    curve: list[float],
    front: list[tuple[int, float, tuple[float, ...]]],
) -> None:
    decision = pareto_rule(costs=costs, curve=curve, finished=FINISHED, front=front, margin=2.0,
                           min_finished=2, cost_names=("gflops",))  # fmt: skip
    assert decision.stop is stop
    if stop:
        assert "trial 7" in decision.reason and f"gflops {front[0][2][0]:g})" in decision.reason
        assert decision.bound is not None and decision.bound < 85.0


def test_pareto_rule_waits_for_finished_curves() -> None:
    front = [(0, 99.0, (0.1,))]
    early = pareto_rule(costs=(5.0,), curve=[10.0], finished=FINISHED[:1], front=front,
                        margin=0.0, min_finished=2)  # fmt: skip
    assert not early.stop
    later = pareto_rule(costs=(5.0,), curve=[10.0], finished=FINISHED, front=front, margin=0.0,
                        min_finished=2)  # fmt: skip
    assert later.stop


# ---------------------------------------------------------------------- MOASHA
@pytest.mark.parametrize(
    ("expected", "epochs"), [((1, 3), 8), ((1, 3, 9), 27), ((1,), 3), ((1, 3, 9), 10)]
)
def test_moasha_rungs_are_syne_tunes(expected: tuple[int, ...], epochs: int) -> None:
    assert moasha_rungs(epochs) == expected


def test_nondominated_order_fronts_first() -> None:
    points = [(3.0, 3.0), (1.0, 2.0), (2.0, 1.0), (4.0, 4.0), (1.5, 1.5)]
    order = nondominated_order(points)
    assert set(order[:3]) == {1, 2, 4}  # the first front
    assert order[0] == 1  # seeded at the best first objective
    assert order[3:] == [0, 3]


def test_moasha_rule_keeps_the_top_third() -> None:
    recorded = [(-50.0, 1.0), (-60.0, 2.0), (-40.0, 3.0), (-30.0, 4.0), (-20.0, 5.0)]
    # dominates everything: position 1 of 6
    assert not moasha_rule(point=(-70.0, 0.5), recorded=recorded, epoch=1).stop
    # dominated by most: stopped, and the reason says where it ranked
    worst = moasha_rule(point=(-10.0, 6.0), recorded=recorded, epoch=3)
    assert worst.stop and "rank 6 of 6" in worst.reason and "epoch 3" in worst.reason
    # the first result at a rung always continues
    assert not moasha_rule(point=(-1.0, 9.0), recorded=[], epoch=1).stop


# ---------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    ("match", "override"),
    [
        ("needs top1 and at least one cost", 'study.objectives=["top1:max"]'),
        ("known before training.*top5", 'study.objectives=["top1:max", "top5:max"]'),
        ("pruner_margin must be float", 'study.pruner_margin="big"'),
        ("pruner_margin must be top-1 points", "study.pruner_margin=-1"),
        ("needs a single objective", 'study.pruner="median"'),
    ],
)
def test_spec_rules(tmp_path: Path, match: str, override: str) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(SPACE)
    with pytest.raises(ConfigError, match=match):
        load_spec(path, overrides=[override])


# ---------------------------------------------------------------------- real tabular studies
@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_table(tmp_path_factory.mktemp("prune"))


def _spec(table: Path, **study: object) -> StudySpec:
    overrides = [f'study.table="{table}"']
    overrides += [f"study.{k}={json.dumps(v)}" for k, v in study.items()]
    return load_spec(table.with_suffix(".toml"), overrides=overrides)


def _launch(spec: StudySpec, url: str, folder: Path, **kwargs: object) -> optuna.Study:
    launch(spec, storage=url, study_name="prune", wandb_mode="disabled", progress=False,
           runs_dir=folder, print_pareto=False, **kwargs)  # type: ignore[arg-type]  # fmt: skip
    return optuna.load_study(study_name="prune", storage=url)


def test_pareto_pruner_in_a_tabular_study(table: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prune.db'}"
    study = _launch(_spec(table), url, tmp_path, n_trials=5)
    trials = study.get_trials(deepcopy=False)
    # the budget counts trainings (studies.run.budget.is_counted): neither reused trials
    # (recorded PRUNED) nor those the pruner stopped
    complete = [t for t in trials if is_completed(t)]
    pruned = [t for t in trials if t.user_attrs.get("state") == "pruned"]
    trained = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trained) == 5 and pruned, [t.user_attrs.get("state") for t in trials]
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in pruned)
    rows = BenchmarkTable.load(table)
    for t in pruned:
        attrs = t.user_attrs
        epoch = len(attrs["history"])
        assert attrs["state"] == "pruned" and 1 <= epoch < 4
        assert attrs["fail_reason"].startswith(f"pruned at epoch {epoch}: its top1 can reach")
        row = rows.lookup(attrs["digest"], 0)
        assert row is not None
        # its curve as far as it ran, its known cost, and a clock charged for what ran
        assert [h["val_top1"] for h in attrs["history"]] == list(row.val_top1[:epoch])
        assert attrs["gflops"] == row.gflops and t.values is None
        assert attrs["timings"]["train_s"] == pytest.approx(40.0 * epoch / 4)
        # the trial named in the reason is complete, cheaper and more accurate than the bound
        number = int(attrs["fail_reason"].split("dominated by trial ")[1].split(" ")[0])
        other = study.trials[number]
        assert other.state == optuna.trial.TrialState.COMPLETE
        assert other.user_attrs["gflops"] <= row.gflops
    # the front holds complete trials only
    front = pareto(study)
    assert set(front["trial"]) <= {
        t.number for t in complete if t.user_attrs["state"] == "complete"
    }

    # a pruned architecture sampled again is never reused: judged again on its recorded curve,
    # it is still dominated, so it is stopped before training (0 epochs, the reason says why)
    again = pruned[0]
    last = _sample_again(study, again, _spec(table), url, tmp_path, n_trials=6)
    attrs = last.user_attrs
    assert "reused_from" not in attrs and attrs["state"] == "pruned" and last.values is None
    assert attrs["stopped_from"] == again.number and "history" not in attrs
    assert attrs["fail_reason"].startswith(
        f"pruned before training: trial {again.number} (same network and training) ran "
        f"{len(again.user_attrs['history'])} epochs and its curve is still stopped: pruned at "
    )
    assert attrs["gflops"] == again.user_attrs["gflops"] and "train_s" not in attrs["timings"]
    assert not is_completed(last)

    # resumed with a margin no curve can be dominated at, the same network is trained again
    loose = _spec(table, pruner_margin=100.0)
    last = _sample_again(study, again, loose, url, tmp_path, n_trials=7)
    assert last.user_attrs["state"] == "complete" and "stopped_from" not in last.user_attrs
    assert len(last.user_attrs["history"]) == 4


def _sample_again(
    study: optuna.Study, earlier: optuna.trial.FrozenTrial, spec: StudySpec, url: str,
    folder: Path, *, n_trials: int,
) -> optuna.trial.FrozenTrial:  # fmt: skip
    """Enqueue ``earlier``'s network, resume the study, return the trial that ran it."""
    config = json.dumps(earlier.user_attrs["config"])
    study.enqueue_trial({}, user_attrs={"enqueued_config": config})
    study = _launch(spec, url, folder, n_trials=n_trials)
    last = max(
        (t for t in study.get_trials(deepcopy=False) if "enqueued_config" in t.user_attrs),
        key=lambda t: t.number,
    )
    assert last.user_attrs["digest"] == earlier.user_attrs["digest"]
    return last


def test_moasha_baseline_in_a_tabular_study(table: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'moasha.db'}"
    study = _launch(_spec(table, pruner="moasha"), url, tmp_path, n_trials=5)
    pruned = [t for t in study.trials if t.user_attrs.get("state") == "pruned"]
    assert pruned
    for t in pruned:
        epoch = len(t.user_attrs["history"])
        assert epoch in (1, 3) and "MOASHA rung" in t.user_attrs["fail_reason"]


@pytest.mark.slow
def test_pareto_pruner_with_two_worker_processes(table: Path, tmp_path: Path) -> None:
    """Two ``r3dnas worker`` processes share one SQLite study: each decides from the other's
    finished trials, and the budget of complete trials stays exact."""
    url = f"sqlite:///{tmp_path / 'workers.db'}"
    study = _launch(_spec(table), url, tmp_path, workers=2, n_trials=5)
    trials = study.get_trials(deepcopy=False)
    trained = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.user_attrs.get("state") == "pruned"]
    assert len(trained) == 5 and pruned
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    for t in pruned:
        assert (
            t.user_attrs["state"] == "pruned"
            and "dominated by trial" in t.user_attrs["fail_reason"]
        )
