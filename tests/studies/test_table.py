"""The tabular benchmark's life cycle on a tiny space, through the real study machinery:
build (every architecture x seed), latency pass, export (CSV + the spec beside it), load,
retrain a row (identical top-1 on CPU)."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from runners.tabular import COLUMNS, BenchmarkTable
from search_space.errors import ConfigError
from studies.cli import main
from studies.toml_text import dumps_toml

TINY_TABLE = """
[study]
name = "tiny-table"
objectives = ["top1:max", "gflops:min"]
sampler = "grid"
seed = 0
n_trials = 8

[space]
input_shape = [1, 3, 8, 16, 16]

[space.base]
depth = 50
stage_blocks = [1, 1, 1, 1]
base_channels = 4
inflate = [0, 0, 0, 0]
zero_init_residual = false

[space.dimensions]
layer4.inflate = ["none", "all"]
inflate_style = ["3x1x1", "3x3x3"]

[data]
kind = "motion_events"
num_classes = 8
clip_len = 8
resolution = 16
num_train_clips = 16
num_val_clips = 16
noise = 0.1
seed = 0

[train]
epochs = 2
batch_size = 8
optimizer = "adamw"
lr = 0.003
seed = 0
device = "cpu"
num_threads = 1
keep_checkpoints = "none"

[measure]
measure_latency = false

[wandb]
mode = "disabled"
"""


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "tiny_table.toml"
    spec.write_text(TINY_TABLE)
    storage = f"sqlite:///{tmp_path / 'table.db'}"
    assert main(["table", "build", str(spec), "--seeds", "2", "--storage", storage, "-q"]) == 0
    return tmp_path, storage


def test_build_latency_export_retrain(built: tuple[Path, str]) -> None:
    folder, storage = built
    study = ["--study", "tiny-table", "--storage", storage]
    assert main(["table", "latency", *study, "--repeats", "3", "--warmup", "1",
                 "--isolation", "none", "-q"]) == 0  # fmt: skip
    out = folder / "tables" / "tiny.csv"
    assert main(["table", "export", *study, "--out", str(out)]) == 0

    table = BenchmarkTable.load(out)
    # 2 x 2 grid points, but with layer4 not inflated both styles build one network: 3 x 2 seeds
    assert len(table.digests) == 3 and table.seeds == (0, 1) and len(table) == 6
    header = out.read_text().splitlines()[0].split(",")
    assert tuple(header) == COLUMNS
    for row in table.rows:
        assert len(row.val_top1) == len(row.train_loss) == row.epochs == 2
        assert row.val_top1[-1] == row.top1
        assert 0 <= row.top1 <= 100 and row.gflops > 0 and row.train_s > 0
        assert math.isfinite(row.latency_ms) and row.latency_ms > 0 and row.latency_threads == 1
        assert "torch" in row.versions
    # the two seeds of one network are different runs
    first = table.digests[0]
    assert table.lookup(first, 0) != table.lookup(first, 1)

    # the spec beside the table is a spec r3dnas loads, equal to the one that built it
    spec_text = out.with_suffix(".toml").read_text()
    assert tomllib.loads(spec_text)["data"]["kind"] == "motion_events"

    # honesty: a row retrained from its stored config and seed gives the stored top-1
    row = table.lookup(first, 1)
    assert row is not None
    assert main(["table", "retrain", "--table", str(out), "--digest", first[:8],
                 "--seed", "1"]) == 0  # fmt: skip


def test_table_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", "export", "--storage", f"sqlite:///{tmp_path / 'no.db'}",
                 "--study", "x", "--out", "t.csv"]) == 2  # fmt: skip
    assert not (tmp_path / "no.db").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        BenchmarkTable.load(tmp_path / "missing.csv")
    assert main(["table", "retrain", "--table", str(tmp_path / "missing.csv"),
                 "--digest", "abc"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("r3dnas") for line in err)


def test_toml_writer_round_trips_specs() -> None:
    raw = tomllib.loads(TINY_TABLE)
    assert tomllib.loads(dumps_toml(raw, header="a header\nof two lines")) == raw
    with pytest.raises(ConfigError, match="data.noise"):
        dumps_toml({"data": {"noise": float("nan")}})
