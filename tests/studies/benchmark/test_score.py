"""``r3dnas score`` on the tiny spec (8 real networks scored on a batch of its own data), and
the score-guided candidate selection."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from cli_runs import files_under

from search_space.errors import ConfigError
from studies.benchmark.score import (
    enqueue_guided,
    enumerate_architectures,
    guided_picks,
    score_batch,
    score_space,
)
from studies.cli import main
from studies.study.spec import load_spec

TINY = Path(__file__).parents[1] / "specs" / "tiny.toml"


def test_score_ranks_every_architecture_of_a_tiny_space(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"
    assert main(["score", str(TINY), "--scores", "synflow,naswot", "-q", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:4] == ["rank", "digest", "synflow", "naswot"]
    assert "all 8 architectures of space" in lines[-1] and "ranked by synflow" in lines[-1]
    rows = lines[1:-1]
    assert [int(r.split()[0]) for r in rows] == list(range(1, 9))
    synflow = [float(r.split()[2]) for r in rows]
    assert synflow == sorted(synflow, reverse=True)
    with out.open() as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 8 and len({r["digest"] for r in written}) == 8
    assert {r["digest"] for r in written} == {r.split()[1] for r in rows}


def test_an_unknown_score_name_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(TINY), "--scores", "synflow,bogus"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and captured.out == ""
    assert (
        "grad_norm, naswot, snip, st_entropy, synflow, temporal_order, zico; got 'bogus'" in err[0]
    )
    assert main(["score", str(TINY), "--scores", "snip", "--rank-by", "zico"]) == 2
    assert "--rank-by must be one of snip; got 'zico'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("folder", "--out must be a file path, not an existing folder; got 'folder'"),
        ("", "--out must be a file path; got ''"),
        ("taken/scores.csv", "--out 'taken/scores.csv' cannot be written: "),
    ],
)
def test_an_out_it_cannot_write_is_refused_before_scoring(
    scratch: Path, capsys: pytest.CaptureFixture[str], out: str, message: str
) -> None:
    (scratch / "folder").mkdir()
    (scratch / "taken").write_text("mine\n")
    assert main(["score", str(TINY), "--scores", "synflow", "-q", "--out", out]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith(f"r3dnas score: error: {message}")
    assert files_under(scratch) == ["folder", "taken"]


def test_python_api_samples_and_is_reproducible() -> None:
    spec = load_spec(str(TINY))
    first = score_space(spec, scores="grad_norm", sample=3, seed=1, progress=False)
    again = score_space(spec, scores=["grad_norm"], sample=3, seed=1, progress=False)
    assert len(first.rows) == 3 and first.total_architectures == 8
    assert [(r.digest, r.scores) for r in first.rows] == [(r.digest, r.scores) for r in again.rows]
    assert first.batch_shape == (8, 3, 4, 32, 32)  # [train] batch_size of the spec's data
    with pytest.raises(ConfigError, match="rank by: 'snip' was not computed"):
        first.ranked("snip")


def test_guided_picks_are_enqueued_as_the_next_trials_of_a_study() -> None:
    import optuna

    spec = load_spec(str(TINY))
    result = score_space(spec, scores="synflow", progress=False)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    picked = enqueue_guided(study, result, score="synflow", n=3, pool=8, seed=0)
    assert len(picked) == 3
    for row in picked:
        trial = study.ask()
        config = spec.space.sample(trial)
        assert config.digest() == row.digest
    with pytest.raises(ConfigError, match="'naswot' was not computed"):
        enqueue_guided(study, result, score="naswot", n=1, pool=1, seed=0)


def test_enumeration_finds_each_distinct_architecture_once() -> None:
    space = load_spec(str(TINY)).space
    found, total = enumerate_architectures(space)
    assert total == len(found) == space.size()
    assert len({c.digest() for _, c in found}) == total
    assert all(space.config_from_params(f).digest() == c.digest() for f, c in found)


CANDIDATES = [f"a{i}" for i in range(10)]
SCORE = {c: float(i) for i, c in enumerate(CANDIDATES)}  # a9 best


def test_a_pool_of_everything_without_costs_is_greedy_by_score() -> None:
    seen: list[str] = []
    picks = guided_picks(CANDIDATES, score=SCORE, n=4, pool=10, seed=0, evaluate=seen.append)
    assert picks == ["a9", "a8", "a7", "a6"] == seen


def test_pool_one_is_random_sampling_without_replacement() -> None:
    picks = guided_picks(CANDIDATES, score=SCORE, n=20, pool=1, seed=3)
    assert sorted(picks) == sorted(CANDIDATES)  # n larger than the candidates: all, once
    assert picks != sorted(picks, key=SCORE.__getitem__, reverse=True)


def test_picks_with_costs_stay_on_the_score_cost_front() -> None:
    # cost grows with score, so every candidate is on the (score, cost) front: any pick is
    # allowed; with a flat cost only the best score is.
    rising = {c: [SCORE[c]] for c in CANDIDATES}
    flat = {c: [1.0] for c in CANDIDATES}
    spread = guided_picks(CANDIDATES, score=SCORE, costs=rising, n=10, pool=10, seed=0)
    assert spread != sorted(spread, key=SCORE.__getitem__, reverse=True)
    assert guided_picks(CANDIDATES, score=SCORE, costs=flat, n=3, pool=10, seed=0) == [
        "a9",
        "a8",
        "a7",
    ]


def test_guided_picks_reject_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="pool must be at least 1; got 0"):
        guided_picks(CANDIDATES, score=SCORE, n=1, pool=0, seed=0)
    with pytest.raises(ConfigError, match="no value for 1 candidate"):
        guided_picks([*CANDIDATES, "zz"], score=SCORE, n=1, pool=2, seed=0)


def test_on_real_videos_the_batch_is_the_studys_own_data(tmp_path: Path) -> None:
    from videos import encode_video

    for split in ("train", "val"):
        for label in ("left", "right"):
            for i in range(2):
                encode_video(tmp_path / "videos" / split / label / f"{i}.mp4", 12)
    text = (
        TINY.read_text()
        .replace('kind = "motion"', 'kind = "class_folders"\nroot = "videos"')
        .replace("num_train_clips = 16\nnum_val_clips = 8\n", "")
        .replace("noise = 0.1\n", "")
    )
    spec_path = tmp_path / "videos.toml"
    spec_path.write_text(text)
    spec = load_spec(str(spec_path))
    clips, labels = score_batch(spec, batch_size=4)
    assert tuple(clips.shape) == (4, 3, 4, 32, 32)
    assert sorted(labels.tolist()) == [0, 0, 1, 1]  # every training video, each with its label
    result = score_space(spec, scores="snip,st_entropy", sample=2, batch_size=4, progress=False)
    assert len(result.rows) == 2
    assert all(math.isfinite(v) for r in result.rows for v in r.scores.values())
