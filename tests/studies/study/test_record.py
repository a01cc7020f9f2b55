"""A study's r3dnas attributes, written and read back through a real storage."""

from __future__ import annotations

from pathlib import Path

import optuna

from studies.core.defaults import RUNS_DIR
from studies.study.record import StudyRecord
from studies.study.storage import open_storage


def _study(storage_url: str) -> optuna.Study:
    return optuna.create_study(
        storage=open_storage(storage_url), directions=["maximize", "minimize"]
    )


def test_what_is_recorded_reads_back_from_another_handle(storage_url: str) -> None:
    study = _study(storage_url)
    record = StudyRecord(study)
    record.record_spec(objectives=["top1", "gflops"], spec={"study": {"n": 1}}, source="x.toml")
    record.record_budget(n_trials=12, runs_dir=Path("elsewhere"))
    record.record_ablation_grid('{"factors": ["depth"]}')
    record.record_table_latency({"abc": {"latency_ms": 1.5}})

    again = StudyRecord(
        optuna.load_study(study_name=study.study_name, storage=open_storage(storage_url))
    )
    assert again.made_by_r3dnas
    assert again.objectives == again.recorded_objectives == ["top1", "gflops"]
    assert again.spec == {"study": {"n": 1}}
    assert again.n_trials == 12
    assert again.runs_dir == Path("elsewhere")
    assert again.runs_dir_or(None) == Path("elsewhere")
    assert again.runs_dir_or("mine") == Path("mine")
    assert again.ablation_grid == '{"factors": ["depth"]}'
    assert again.table_latency == {"abc": {"latency_ms": 1.5}}


def test_a_study_r3dnas_did_not_make_reads_as_defaults(storage_url: str) -> None:
    record = StudyRecord(_study(storage_url))
    assert not record.made_by_r3dnas
    assert record.objectives == ["value0", "value1"]
    assert record.recorded_objectives is None and record.spec is None
    assert record.n_trials is None and record.runs_dir is None
    assert record.runs_dir_or(None) == Path(RUNS_DIR)
    assert record.table_latency == {}
