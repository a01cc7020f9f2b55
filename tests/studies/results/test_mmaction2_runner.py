"""A real-video study, exported with ``--format mmaction2``, trains and tests in mmaction2's own
``Runner`` without any edit to the exported file.

The study runs on CPU with ``amp = "auto"`` and one corrupt video in both lists, the two things
that used to stop mmaction2: an ``AmpOptimWrapper`` (GPU only) although the study trained in
float32, and the corrupt file left in the lists (mmaction2's epoch dies on it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config
from study_specs import ONE_TRIAL, spec_toml
from videos import encode_video

pytest.importorskip("av")

RUNNER = Path(__file__).parents[1] / "mmaction2_runner.py"
SPEC = spec_toml(
    ONE_TRIAL,
    study={"name": "mm"},
    space={"input_shape": [1, 3, 4, 32, 32]},
    data={
        "kind": "video_list",
        "root": "videos",
        "train_list": "train.txt",
        "val_list": "val.txt",
        "frame_interval": 2,
        "resolution": 32,
        "num_train_clips": None,
        "num_val_clips": None,
    },
    train={"batch_size": 2, "lr": 0.01, "warmup_epochs": 0, "seed": 0, "amp": "auto"},
    wandb={"mode": "disabled"},
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``(config, corrupt video, project folder)``: a one-trial study on four encoded videos
    and a corrupt one, run and exported with the CLI."""
    from studies.cli import main

    project = tmp_path_factory.mktemp("mm_runner")
    videos = project / "videos"
    for i in range(4):
        encode_video(videos / f"v{i}.mp4", 12, width=40, height=32)
    corrupt = videos / "broken.mp4"
    corrupt.write_bytes((videos / "v0.mp4").read_bytes()[:200])
    (project / "train.txt").write_text("v0.mp4 0\nbroken.mp4 1\nv1.mp4 1\nv2.mp4 0\nv3.mp4 1\n")
    (project / "val.txt").write_text("v0.mp4 0\nv3.mp4 1\nbroken.mp4 0\n")
    (project / "study.toml").write_text(SPEC)
    url = f"sqlite:///{project / 'study.db'}"
    study = ["--study", "mm", "--storage", url]
    with pytest.warns(UserWarning, match="broken.mp4"):
        assert main(["launch", str(project / "study.toml"), *study, "--quiet"]) == 0
    out = project / "export" / "mm_i3d.py"
    assert (
        main(["export", *study, "--trial", "0", "--format", "mmaction2", "--out", str(out)]) == 0
    )
    return out, corrupt, project


def test_export_states_the_precision_and_leaves_the_corrupt_video_out(
    exported: tuple[Path, Path, Path],
) -> None:
    out, corrupt, project = exported
    text = out.read_text()
    cfg = Config.fromfile(str(out))
    # float32 on CPU, as the study trained, with the way to switch
    assert cfg.optim_wrapper.type == "OptimWrapper"
    assert "the study trained on cpu in float32 (no AMP)" in text
    assert "type='AmpOptimWrapper' trains in float16 mixed precision" in text
    # the corrupt video: named in a comment, absent from the lists the loaders read
    assert f"#   {corrupt}" in text
    for loader, kept in ((cfg.train_dataloader, 4), (cfg.val_dataloader, 2)):
        listed = Path(loader.dataset.ann_file).read_text().splitlines()
        assert len(listed) == kept and not any("broken" in line for line in listed)
        assert Path(loader.dataset.ann_file).parent == out.parent / "mm_i3d_lists"
    # the user's own lists are left as they were
    assert "broken.mp4 1" in (project / "train.txt").read_text()


@pytest.mark.skipif(
    importlib.util.find_spec("mmaction") is None, reason="mmaction2 is not installed"
)
def test_mmaction2_runner_trains_and_tests_the_export(
    exported: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    out, _, _ = exported
    before = out.read_text()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(out), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0.0 <= metrics["acc/top1"] <= 1.0
    assert (tmp_path / "work" / "epoch_1.pth").is_file()  # one whole epoch trained
    assert out.read_text() == before  # trained as exported
