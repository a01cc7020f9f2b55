"""``r3dnas data``: every video probed, one item decoded per split, bad files named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runners.data.check import inspect_data
from runners.data.datasets import DataConfig
from studies.cli import main

pytest.importorskip("av")


@pytest.fixture()
def video_spec(tmp_path: Path, make_video) -> Path:  # type: ignore[no-untyped-def]
    """A spec over 3 good videos (one shorter than a clip) and one corrupt file."""
    root = tmp_path / "videos"
    root.mkdir()
    for name, frames in (("a.mp4", 40), ("b.mp4", 24), ("c.mp4", 3)):
        (root / name).symlink_to(make_video(name, frames))
    (root / "bad.mp4").write_bytes(b"not a video" * 50)
    (tmp_path / "train.txt").write_text("a.mp4 0\nb.mp4 1\nc.mp4 1\nbad.mp4 0\n")
    (tmp_path / "val.txt").write_text("a.mp4 0\nb.mp4 1\n")
    spec = tmp_path / "study.toml"
    spec.write_text(
        '[study]\nname = "check"\n[data]\nkind = "video_list"\nroot = "videos"\n'
        'train_list = "train.txt"\nval_list = "val.txt"\nnum_classes = 3\nclip_len = 8\n'
        "frame_interval = 2\nresolution = 32\nnum_clips = 2\n"
    )
    return spec


@pytest.mark.parametrize("workers", [1, 2])
def test_report_counts_frames_labels_and_names_the_corrupt_file(
    video_spec: Path, workers: int
) -> None:
    from studies.study.spec import load_spec

    report = inspect_data(load_spec(video_spec).data, workers=workers)
    train, val = report.splits
    assert not report.ok
    assert (train.videos, val.videos) == (4, 2)
    assert train.labels == {0: 2, 1: 2} and val.labels == {0: 1, 1: 1}
    assert train.frames == (3, 24, 40) and val.frames == (24, 32, 40)
    assert train.fps == (25.0, 25.0, 25.0)
    assert train.sizes == {"64x48": 3}
    assert train.too_short == 1  # c.mp4: 3 frames, a training clip spans 16
    assert [Path(p).name for p, _ in train.unreadable] == ["bad.mp4"] and not val.unreadable
    assert train.item_shape == (3, 8, 32, 32)
    assert val.item_shape == (2, 3, 8, 32, 32)  # two validation clips per video
    text = report.format()
    assert "bad.mp4" in text and "1 of 3 classes without a video" in text
    assert text.splitlines()[-1].startswith("NOT ok: 1 unreadable")


def test_cli_exits_1_on_unreadable_videos_and_prints_json(
    video_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", str(video_spec), "--quiet", "--workers", "1", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["splits"][0]["unreadable"][0][0].endswith("bad.mp4")
    (video_spec.parent / "train.txt").write_text("a.mp4 0\nb.mp4 1\nc.mp4 2\n")
    assert main(["data", str(video_spec), "--quiet", "--workers", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "ok: every video opens"


def test_cli_names_a_missing_list_before_probing(
    video_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (video_spec.parent / "val.txt").unlink()
    assert main(["data", str(video_spec), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "val_list" in err and "does not exist" in err and "\n" not in err


def test_motion_data_report() -> None:
    cfg = DataConfig(num_classes=3, num_train_clips=9, num_val_clips=6, clip_len=4, resolution=16)
    report = inspect_data(cfg)
    assert report.ok and report.kind == "motion"
    train, val = report.splits
    assert train.labels == {0: 3, 1: 3, 2: 3} and val.labels == {0: 2, 1: 2, 2: 2}
    assert train.item_shape == (3, 4, 16, 16) and train.frames is None
    assert report.format().splitlines()[-1] == "ok: generated in memory, nothing to open"
