"""The exported mmaction2 config runs in mmaction2 and reproduces the study's recipe.

mmaction2's own transforms (loaded by path, tests/mmaction_oracle.py) run the exported
pipelines over real encoded videos and must pick the frames our datasets pick; mmengine's own
schedulers, built from the exported ``param_scheduler``, must give our learning rate at every
step; mmengine builds the exported optimizer.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmaction_oracle import run_pipeline
from mmengine.config import Config
from videos import STEP, encode_video

from runners.data.datasets import DataConfig, build_datasets
from runners.data.video import VideoListDataset
from runners.training.accuracy import TrainConfig
from runners.training.loop import Schedule
from search_space import ConfigError, ResNet3dConfig
from studies.results.mmaction2_config import TrainedWith, mmaction2_config_text

pytest.importorskip("av")

NETWORK = ResNet3dConfig(depth=18, base_channels=8, inflate=(1, 0, 1, 0))


@pytest.fixture(scope="module")
def video_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mm_videos")
    for name, frames in (("a.mp4", 40), ("b.mp4", 24), ("c.mp4", 3), ("d.mp4", 30)):
        encode_video(root / name, frames)
    return root


def _lists(root: Path, folder: Path) -> tuple[str, str]:
    train = folder / "train.txt"
    train.write_text("a.mp4 0\nb.mp4 1\nc.mp4 1\nd.mp4 0\na.mp4 1\n")
    val = folder / "val.txt"
    val.write_text("a.mp4 0\nc.mp4 1\nd.mp4 1\n")
    return str(train), str(val)


def _video_data(tmp_path: Path, video_root: Path, **options: object) -> DataConfig:
    """A video-list DataConfig over the module's videos (lists written into ``tmp_path``)."""
    train_list, val_list = _lists(video_root, tmp_path)
    fields: dict = {  # type: ignore[type-arg]
        "kind": "video_list", "root": str(video_root), "train_list": train_list,
        "val_list": val_list, "num_classes": 2, "clip_len": 4, "resolution": 32,
    }  # fmt: skip
    return DataConfig(**{**fields, **options})


def _export(
    tmp_path: Path,
    data: DataConfig,
    train: TrainConfig,
    decoder: str = "auto",
    trained: TrainedWith | None = None,
) -> Config:
    text = mmaction2_config_text(
        NETWORK.to_dict(), num_classes=data.num_classes, data=data, train=train,
        list_dir=tmp_path / "lists", decoder=decoder, trained=trained,
    )  # fmt: skip
    path = tmp_path / "exported.py"
    path.write_text(text)
    return Config.fromfile(str(path))


def _their_frame_ids(cfg: Config, pipeline: str, video: str) -> np.ndarray:
    """Frame indices of every view mmaction2's pipeline makes of ``video``: ``(views, T)``."""
    results = {"filename": video, "label": 0, "start_index": 0, "modality": "RGB"}
    inputs = run_pipeline(list(cfg[pipeline]), results)["inputs"].float().numpy()
    return np.rint(inputs.mean(axis=(1, 3, 4)) / STEP).astype(np.int64)  # (views, C, T, H, W)


def _our_frame_ids(item: torch.Tensor, data: DataConfig) -> np.ndarray:
    mean = torch.tensor(data.mean).view(3, 1, 1, 1)
    std = torch.tensor(data.std).view(3, 1, 1, 1)
    views = item.reshape(-1, *item.shape[-4:])
    gray = torch.stack([(v * std + mean).mean(dim=(0, 2, 3)) for v in views]).numpy()
    return np.rint(gray / STEP).astype(np.int64)


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_clips": 3, "test_crop": "three"},
        {"num_clips": 2, "twice_sample": True, "out_of_bound": "repeat_last"},
        {"target_fps": 12.5, "frame_interval": 2},
    ],
    ids=["center", "three-crop", "twice-repeat-last", "target-fps"],
)
def test_exported_val_pipeline_picks_our_frames_in_mmaction2(
    tmp_path: Path, video_root: Path, options: dict, decoder: str
) -> None:  # type: ignore[type-arg]
    if decoder == "decord":
        pytest.importorskip("decord")
    data = _video_data(tmp_path, video_root, **options)
    if decoder == "pyav" and "target_fps" in options:
        with pytest.raises(ConfigError, match="PyAVInit does not record the frame rate"):
            _export(tmp_path, data, TrainConfig(epochs=2, batch_size=2), decoder)
        return
    cfg = _export(tmp_path, data, TrainConfig(epochs=2, batch_size=2), decoder)
    assert cfg.val_pipeline[0]["type"] == ("PyAVInit" if decoder == "pyav" else "DecordInit")
    assert cfg.val_dataloader.dataset.ann_file == data.val_list
    assert cfg.val_dataloader.dataset.data_prefix.video == str(video_root)
    _, val = build_datasets(data)
    assert isinstance(val, VideoListDataset)
    for index, (path, _) in enumerate(val.videos):
        ours = _our_frame_ids(val[index][0], data)
        theirs = _their_frame_ids(cfg, "val_pipeline", path)
        assert theirs.shape == ours.shape, path
        np.testing.assert_array_equal(theirs, ours, err_msg=path)


def test_exported_train_pipeline_runs_in_mmaction2(tmp_path: Path, video_root: Path) -> None:
    data = _video_data(tmp_path, video_root, frame_interval=3, short_side=40)
    cfg = _export(tmp_path, data, TrainConfig(epochs=2, batch_size=2))
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_dataloader.drop_last
    assert cfg.train_dataloader.sampler.shuffle
    results = {"filename": str(video_root / "a.mp4"), "label": 1, "start_index": 0}
    packed = run_pipeline(list(cfg.train_pipeline), {**results, "modality": "RGB"})
    assert tuple(packed["inputs"].shape) == (1, 3, 4, 32, 32)
    ids = _their_frame_ids(cfg, "train_pipeline", str(video_root / "a.mp4"))[0]
    np.testing.assert_array_equal(np.diff(ids), [3, 3, 3])  # frame_interval in mmaction2 too
    assert 0 <= ids[0] <= 40 - 12


@pytest.mark.parametrize(
    ("epochs", "warmup", "videos"), [(5, 1, 7), (3, 0, 9), (4, 2, 5), (2, 2, 9)]
)
def test_exported_schedule_gives_our_lr_at_every_step(
    tmp_path: Path, video_root: Path, epochs: int, warmup: float, videos: int
) -> None:
    from mmengine.registry import PARAM_SCHEDULERS

    train_list = tmp_path / "train.txt"
    train_list.write_text("a.mp4 0\n" * videos)
    data = DataConfig(
        kind="video_list", root=str(video_root), train_list=str(train_list),
        val_list=str(train_list), num_classes=2, clip_len=4, resolution=32,
    )  # fmt: skip
    train = TrainConfig(epochs=epochs, warmup_epochs=warmup, batch_size=2, lr=0.2)
    cfg = _export(tmp_path, data, train)
    steps_per_epoch = videos // train.batch_size  # the last incomplete batch is dropped
    total = epochs * steps_per_epoch
    ours = Schedule(train.lr, round(warmup * steps_per_epoch), total)

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=train.lr)
    schedulers = []
    for entry in cfg.param_scheduler:
        entry = dict(entry)
        kind = PARAM_SCHEDULERS.get(entry.pop("type"))
        assert entry.pop("by_epoch") and entry.pop("convert_to_iter_based")
        schedulers.append(
            kind.build_iter_from_epoch(optimizer, epoch_length=steps_per_epoch, **entry)
        )
    for step in range(total):
        lr = optimizer.param_groups[0]["lr"]
        assert math.isclose(lr, ours.lr(step), rel_tol=1e-9, abs_tol=1e-12), (step, lr)
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()


def test_exported_optimizer_builds_in_mmengine(tmp_path: Path, video_root: Path) -> None:
    from mmengine.optim import build_optim_wrapper

    data = _video_data(tmp_path, video_root)
    train = TrainConfig(
        epochs=2, lr=0.03, momentum=0.8, weight_decay=5e-4, amp=False, grad_clip=4.0,
        label_smoothing=0.1, dropout=0.3,
    )  # fmt: skip
    cfg = _export(tmp_path, data, train)
    wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
    group = wrapper.optimizer.param_groups[0]
    assert isinstance(wrapper.optimizer, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.03, 0.8, 5e-4)
    assert cfg.optim_wrapper.clip_grad.max_norm == 4.0
    assert cfg.model.cls_head.label_smooth_eps == 0.1
    assert cfg.model.cls_head.dropout_ratio == 0.3
    assert cfg.train_cfg.max_epochs == 2 and cfg.randomness.seed == train.seed
    adamw = _export(tmp_path, data, TrainConfig(optimizer="adamw", lr=1e-3))
    assert adamw.optim_wrapper.optimizer.type == "AdamW"


@pytest.mark.parametrize(
    ("amp", "trained", "wrapper", "says"),
    [
        (
            "auto",
            TrainedWith(amp=False, device="cpu"),
            "OptimWrapper",
            "trained on cpu in float32",
        ),
        (
            "auto",
            TrainedWith(amp=True, device="cuda:0"),
            "AmpOptimWrapper",
            "on cuda:0 in float16",
        ),
        ("auto", None, "OptimWrapper", "did not record its precision (amp = 'auto'"),
        (True, None, "AmpOptimWrapper", "the study set amp = true in float16"),
        (False, None, "OptimWrapper", "the study set amp = false in float32"),
    ],
)
def test_exported_precision_is_the_one_trained_with(
    tmp_path: Path, video_root: Path, amp: object, trained: TrainedWith | None, wrapper: str,
    says: str,
) -> None:  # fmt: skip
    """What the trial recorded wins over the spec's setting; a comment says how to switch."""
    data = _video_data(tmp_path, video_root)
    cfg = _export(tmp_path, data, TrainConfig(epochs=1, amp=amp), trained=trained)
    assert cfg.optim_wrapper.type == wrapper
    text = (tmp_path / "exported.py").read_text()
    assert says in text
    other = "type='OptimWrapper' trains on CPU" if wrapper == "AmpOptimWrapper" else (
        "type='AmpOptimWrapper' trains in float16"
    )  # fmt: skip
    assert other in text


def test_trained_with_reads_the_trial_attributes() -> None:
    attrs = {"amp": False, "train_device": "cpu", "skipped_videos": {"train": ["/v/x.mp4"]}}
    assert TrainedWith.from_user_attrs(attrs) == TrainedWith(
        amp=False, device="cpu", skipped={"train": ("/v/x.mp4",)}
    )
    assert TrainedWith.from_user_attrs({}) == TrainedWith()


def test_skipped_videos_leave_the_lists_with_a_comment(tmp_path: Path, video_root: Path) -> None:
    data = _video_data(tmp_path, video_root)  # train: a b c d a, val: a c d
    skipped = TrainedWith(amp=False, skipped={"train": (), "val": (str(video_root / "c.mp4"),)})
    cfg = _export(tmp_path, data, TrainConfig(epochs=1), trained=skipped)
    text = (tmp_path / "exported.py").read_text()
    for loader, expected in ((cfg.train_dataloader, 4), (cfg.val_dataloader, 2)):
        lines = Path(loader.dataset.ann_file).read_text().splitlines()
        assert len(lines) == expected and not any(line.startswith("c.mp4") for line in lines)
    assert text.count(f"#   {video_root / 'c.mp4'}") == 2  # named under each list
    assert "c.mp4 1" in Path(data.train_list).read_text()  # the user's list is untouched
    clean = _export(tmp_path, data, TrainConfig(epochs=1), trained=TrainedWith(skipped={}))
    assert clean.train_dataloader.dataset.ann_file == data.train_list
    with pytest.raises(ConfigError, match="c.mp4 was unreadable.*pass --out FILE"):
        mmaction2_config_text(
            NETWORK.to_dict(), num_classes=2, data=data, train=TrainConfig(), trained=skipped
        )
    unrecorded = mmaction2_config_text(
        NETWORK.to_dict(), num_classes=2, data=data, train=TrainConfig()
    )
    assert "did not record which videos it skipped" in unrecorded


def test_skipped_videos_are_named_when_the_list_is_not_here(tmp_path: Path) -> None:
    data = DataConfig(
        kind="video_list", root="/data/k400", train_list="/data/k400/train.txt",
        val_list="/data/k400/val.txt", num_classes=400, clip_len=4, resolution=32,
    )  # fmt: skip
    trained = TrainedWith(skipped={"train": ("/data/k400/bad.mp4",), "val": ()})
    text = mmaction2_config_text(
        NETWORK.to_dict(), num_classes=400, data=data, train=TrainConfig(), trained=trained
    )
    assert "remove any of them from /data/k400/train.txt" in text
    assert "#   /data/k400/bad.mp4" in text


def test_flip_label_map_is_exported_to_flip(tmp_path: Path, video_root: Path) -> None:
    data = _video_data(tmp_path, video_root, num_classes=3, flip_label_map={"0": 2, "2": 0})
    cfg = _export(tmp_path, data, TrainConfig(epochs=1))
    (flip,) = [step for step in cfg.train_pipeline if step["type"] == "Flip"]
    assert flip["flip_label_map"] == {0: 2, 2: 0} and flip["flip_ratio"] == 0.5
    no_flip = _export(tmp_path, data.replace(flip=False, flip_label_map=()), TrainConfig())
    assert not [step for step in no_flip.train_pipeline if step["type"] == "Flip"]


def test_class_folders_are_exported_as_lists_with_our_labels(
    tmp_path: Path, video_root: Path
) -> None:
    for split, classes in (("train", ("jump", "run", "walk")), ("val", ("jump", "walk"))):
        for cls in classes:
            (tmp_path / "data" / split / cls).mkdir(parents=True)
            for name in ("a.mp4", "d.mp4"):
                (tmp_path / "data" / split / cls / name).symlink_to(video_root / name)
    data = DataConfig(
        kind="class_folders", root=str(tmp_path / "data"), num_classes=3, clip_len=4,
        resolution=32,
    )  # fmt: skip
    cfg = _export(tmp_path, data, TrainConfig(epochs=1))
    ours_train, ours_val = build_datasets(data)
    for loader, ours in ((cfg.train_dataloader, ours_train), (cfg.val_dataloader, ours_val)):
        listed = VideoListDataset(
            loader.dataset.data_prefix.video, loader.dataset.ann_file, num_classes=3,
            pipeline=ours.pipeline,
        )  # fmt: skip
        assert listed.videos == ours.videos
    assert [label for _, label in ours_val.videos] == [0, 0, 2, 2]  # "walk" keeps label 2
    with pytest.raises(ConfigError, match="pass --out FILE"):
        mmaction2_config_text(NETWORK.to_dict(), num_classes=3, data=data, train=TrainConfig())


def test_motion_study_exports_the_model_only() -> None:
    text = mmaction2_config_text(
        NETWORK.to_dict(), num_classes=4, data=DataConfig(), train=TrainConfig()
    )
    namespace: dict[str, object] = {}
    exec(text, namespace)  # noqa: S102 - our own generated config
    assert namespace["model"]["type"] == "Recognizer3D"  # type: ignore[index]
    assert "train_dataloader" not in namespace and "param_scheduler" not in namespace
    assert "built-in motion dataset" in text


def test_auto_decoder_is_pyav_unless_target_fps(tmp_path: Path, video_root: Path) -> None:
    data = _video_data(tmp_path, video_root)
    plain = _export(tmp_path, data, TrainConfig(epochs=1))
    resampled = _export(tmp_path, data.replace(target_fps=10), TrainConfig(epochs=1))
    assert [plain.train_pipeline[0]["type"], plain.val_pipeline[2]["type"]] == [
        "PyAVInit", "PyAVDecode",
    ]  # fmt: skip
    assert [resampled.train_pipeline[0]["type"], resampled.val_pipeline[2]["type"]] == [
        "DecordInit", "DecordDecode",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="--decoder must be one of auto, pyav, decord"):
        mmaction2_config_text(NETWORK.to_dict(), num_classes=2, decoder="opencv")


def test_cli_exports_a_video_study_as_a_training_config(
    tmp_path: Path, video_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: a study trained on a video list (spec with relative paths), exported by the
    CLI from another folder; the config names the same lists and the study's recipe."""
    from studies.cli import main

    project = tmp_path / "project"
    project.mkdir()
    (project / "videos").symlink_to(video_root)
    _lists(video_root, project)
    spec = (Path(__file__).parents[1] / "specs" / "tiny.toml").read_text()
    spec = spec.split("[data]")[0] + (
        '[data]\nkind = "video_list"\nroot = "videos"\ntrain_list = "train.txt"\n'
        'val_list = "val.txt"\nnum_classes = 2\nclip_len = 4\nresolution = 32\n'
        "frame_interval = 2\nnum_clips = 2\n" + "[train]" + spec.split("[train]")[1]
    )
    spec = spec.replace("n_trials = 3", "n_trials = 1")
    (project / "video.toml").write_text(spec)
    url = f"sqlite:///{tmp_path / 'video.db'}"
    monkeypatch.chdir(tmp_path)
    args = ["--study", "tiny", "--storage", url, "--wandb", "disabled", "--quiet"]
    assert main(["launch", str(project / "video.toml"), *args]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = elsewhere / "best_mmaction2.py"
    export_args = ["--study", "tiny", "--storage", url, "--trial", "0", "--format", "mmaction2"]
    assert main(["export", *export_args, "--out", str(out)]) == 0
    cfg = Config.fromfile(str(out))
    assert cfg.train_dataloader.dataset.ann_file == str(project / "train.txt")
    assert cfg.val_dataloader.dataset.data_prefix.video == str(project / "videos")
    sample = cfg.val_pipeline[1]
    assert (sample["clip_len"], sample["frame_interval"], sample["num_clips"]) == (4, 2, 2)
    assert cfg.optim_wrapper.optimizer.type == "AdamW" and cfg.optim_wrapper.optimizer.lr == 0.003
    assert cfg.train_cfg.max_epochs == 1


def test_unreadable_training_list_falls_back_to_a_stated_warmup(tmp_path: Path) -> None:
    """Exporting on a machine without the data (the GPU box has it): the config still parses,
    and says why its warm-up start differs from r3dnas's."""
    data = DataConfig(
        kind="video_list", root="/data/k400", train_list="/data/k400/train.txt",
        val_list="/data/k400/val.txt", num_classes=400, clip_len=4, resolution=32,
    )  # fmt: skip
    text = mmaction2_config_text(
        NETWORK.to_dict(), num_classes=400, data=data, train=TrainConfig(epochs=4)
    )
    assert "warm-up starts at 0.1 x lr: the training list was not readable" in text
    path = tmp_path / "exported.py"
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    assert cfg.param_scheduler[0]["start_factor"] == 0.1
    assert cfg.train_dataloader.dataset.ann_file == "/data/k400/train.txt"
