"""Trained weights kept by a study: policies none/front/all, export, reproduce, mmaction2.

Real studies (SQLite, real training of tests/studies/specs/tiny.toml on CPU, a few seconds per
trial); the front-pruning rules are also checked on hand-made trials in a real Optuna storage.
The weights are loaded by mmengine's ``load_checkpoint`` into mmaction2's own modules.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from torch import nn

from search_space import ConfigError
from studies.results.checkpoints import checkpoint_relpath, front_numbers, prune_off_front
from studies.results.export import export
from studies.results.reproduce import reproduce
from studies.run.launch import launch
from studies.study.spec import parse_spec

TINY = Path(__file__).parents[1] / "specs" / "tiny.toml"
COMPLETE = optuna.trial.TrialState.COMPLETE


def _run(tmp: Path, name: str, n_trials: int, **train: Any) -> optuna.Study:
    """The tiny study over (top1, gflops): deterministic on CPU, so its front is known."""
    data = tomllib.loads(TINY.read_text())
    data["study"].update(name=name, objectives=["top1:max", "gflops:min"], n_trials=n_trials)
    data["train"].update(train)
    spec = parse_spec(data, source=f"{name}.toml", base_dir=tmp)
    url = f"sqlite:///{tmp / f'{name}.db'}"
    launch(spec, storage=url, runs_dir=tmp, progress=False, wandb_mode="disabled",
           print_pareto=False)  # fmt: skip
    return optuna.load_study(study_name=name, storage=url)


@pytest.fixture(scope="module")
def front_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, optuna.Study]:
    """Default policy ("front"), 4 trials: one falls off the front, one is dominated at once,
    one reuses an earlier measurement."""
    tmp = tmp_path_factory.mktemp("front")
    return tmp, _run(tmp, "front", 4)


def _files(tmp: Path, name: str) -> set[str]:
    folder = tmp / name / "checkpoints"
    return {f"{name}/checkpoints/{p.name}" for p in folder.iterdir()} if folder.exists() else set()


def test_front_keeps_exactly_the_front_trials_weights(front_study) -> None:  # type: ignore[no-untyped-def]
    tmp, study = front_study
    trials = study.get_trials(states=(COMPLETE,))
    front = front_numbers(study)
    assert front and len(front) < len(trials)  # some trials are off the front
    on = {t.user_attrs["checkpoint"] for t in trials if t.number in front}
    off = {t.user_attrs["checkpoint"] for t in trials if t.number not in front} - on
    assert off, "the study should have trials whose weights were deleted"
    assert _files(tmp, "front") == on
    # every completed trial records where its weights go; a reused one shares the earlier file
    for t in trials:
        expected = checkpoint_relpath("front", t.user_attrs["digest"], t.user_attrs["signature"])
        assert t.user_attrs["checkpoint"] == expected
    assert not list((tmp / "front" / "checkpoints").glob("*.tmp"))


def test_all_keeps_every_trial_and_none_keeps_nothing(tmp_path: Path) -> None:
    study = _run(tmp_path, "all", 3, keep_checkpoints="all")
    trials = study.get_trials(states=(COMPLETE,))
    assert len(trials) == 3
    assert _files(tmp_path, "all") == {t.user_attrs["checkpoint"] for t in trials}
    assert len(front_numbers(study)) < 3  # "front" would have deleted some of them

    study = _run(tmp_path, "none", 1, keep_checkpoints="none")
    (trial,) = study.get_trials(states=(COMPLETE,))
    assert "checkpoint" not in trial.user_attrs
    assert not (tmp_path / "none").exists()
    with pytest.raises(ConfigError, match="keep_checkpoints is 'none'"):
        export(study, trial=trial.number, fmt="checkpoint", out=tmp_path / "w.pth")


def test_keep_checkpoints_is_checked_and_does_not_change_the_signature(tmp_path: Path) -> None:
    from studies.run.objective import TrialRunner

    data = tomllib.loads(TINY.read_text())
    signatures = set()
    for policy in (None, "none", "all"):
        if policy is not None:
            data["train"]["keep_checkpoints"] = policy
        spec = parse_spec(data, source="t.toml", base_dir=tmp_path)
        assert spec.keep_checkpoints == (policy or "front")
        signatures.add(TrialRunner(spec).training_signature(0))
    assert len(signatures) == 1  # a study can change the policy and still reuse measurements
    data["train"]["keep_checkpoints"] = "best"
    with pytest.raises(ConfigError, match=r"\[train\] keep_checkpoints must be one of.*'best'"):
        parse_spec(data, source="t.toml", base_dir=tmp_path)


def test_pruning_rules_on_a_real_storage(tmp_path: Path) -> None:
    """A trial that falls off the front loses its file; a file that a front trial or a running
    trial (same digest and signature) needs is kept, whoever else points to it."""
    study = optuna.create_study(
        study_name="p",
        storage=f"sqlite:///{tmp_path / 'p.db'}",
        directions=["maximize", "minimize"],
    )
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}

    def add(values: list[float], digest: str, path: str | None = None) -> str:
        path = path or checkpoint_relpath("p", digest, "sig")
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"weights")
        attrs = {"checkpoint": path, "digest": digest, "signature": "sig"}
        study.add_trial(optuna.create_trial(state=COMPLETE, values=values, params={"x": 0.5},
                                            distributions=dist, user_attrs=attrs))  # fmt: skip
        return path

    a = add([50.0, 2.0], "a")  # on the front until the finishing trial below dominates it
    b = add([60.0, 3.0], "b")  # stays on the front
    add([60.0, 3.0], "b")  # a reuse of b: same point, same file
    add([5.0, 9.0], "b", path=b)  # off the front, but its file is a front trial's
    c = add([10.0, 9.0], "c")  # off the front, but a running trial will write the same file
    running = study.ask()
    running.set_user_attr("digest", "c")
    running.set_user_attr("signature", "sig")
    assert front_numbers(study) == {0, 1, 2}
    finishing = (999, (55.0, 1.0), checkpoint_relpath("p", "d", "sig"))
    assert prune_off_front(study, runs_dir=tmp_path, current=finishing) == [tmp_path / a]
    assert not (tmp_path / a).exists() and (tmp_path / b).exists() and (tmp_path / c).exists()
    study.tell(running, state=optuna.trial.TrialState.FAIL)
    assert prune_off_front(study, runs_dir=tmp_path) == [tmp_path / c]
    assert (tmp_path / b).exists()


def test_export_checkpoint_and_load_from(front_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mmengine.config import Config

    runs, study = front_study
    best = max(study.get_trials(states=(COMPLETE,)), key=lambda t: t.user_attrs["top1"])
    stored = runs / best.user_attrs["checkpoint"]
    out = export(study, pick="top1", fmt="checkpoint", out=tmp_path / "best.pth")
    assert Path(out).read_bytes() == stored.read_bytes()
    cfg_path = tmp_path / "best_mmaction2.py"
    export(study, pick="top1", fmt="mmaction2", out=cfg_path)
    assert Config.fromfile(str(cfg_path)).load_from == str(stored.resolve())

    off = next(t for t in study.get_trials(states=(COMPLETE,)) if t.number not in
               front_numbers(study))  # fmt: skip
    with pytest.raises(ConfigError, match=f"trial {off.number}'s weights were deleted when it "
                       "fell off the Pareto front"):  # fmt: skip
        export(study, trial=off.number, fmt="checkpoint", out=tmp_path / "off.pth")
    text = export(study, trial=off.number, fmt="mmaction2")
    assert "load_from" not in text  # the network still exports, without weights
    with pytest.raises(ConfigError, match="needs --out"):
        export(study, pick="top1", fmt="checkpoint")


def test_cli_export_checkpoint_and_its_error(front_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runs, study = front_study
    url = f"sqlite:///{runs / 'front.db'}"
    off = min(set(range(len(study.trials))) - front_numbers(study))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        code = "import sys; from studies.cli import main; sys.exit(main())"
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)  # fmt: skip

    out = tmp_path / "best.pth"
    done = cli("export", "--study", "front", "--storage", url, "--pick", "top1",
               "--format", "checkpoint", "--out", str(out), "--runs-dir", str(runs))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert torch.load(out, weights_only=True)["state_dict"]
    done = cli("export", "--study", "front", "--storage", url, "--trial", str(off),
               "--format", "checkpoint", "--out", str(tmp_path / "x.pth"))  # fmt: skip
    assert done.returncode == 2
    assert "fell off the Pareto front" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_reproduce_evaluates_the_stored_weights_without_training(front_study) -> None:  # type: ignore[no-untyped-def]
    runs, study = front_study
    (number,) = front_numbers(study)
    trial = study.trials[number]
    result = reproduce(study, trial=number, latency=False)
    assert result.weights == str(runs / trial.user_attrs["checkpoint"])
    assert result.measured["top1"] == trial.user_attrs["top1"]  # exact on CPU
    assert "the stored weights evaluated (not retrained)" in result.format()


def test_reproduce_retrain_beside_the_stored_weights_says_which_is_which(front_study) -> None:  # type: ignore[no-untyped-def]
    runs, study = front_study
    (number,) = front_numbers(study)
    result = reproduce(study, trial=number, latency=False, retrain=True)
    lines = result.format().splitlines()
    table = [line for line in lines if line.split()[0] in ("metric", "gflops", "params",
                                                            "top1", "top1_retrained")]  # fmt: skip
    retrained = next(line for line in table if line.startswith("top1_retrained"))
    assert "not retrained" not in retrained and "trained again with seed" in retrained
    assert "not retrained" in next(line for line in table if line.startswith("top1 "))
    # aligned: the "measured" column ends at the same place on every row
    header = table[0]
    end = header.index("measured") + len("measured")
    assert all(line[end - 1] != " " and line[end : end + 2] == "  " for line in table[1:])
    # each top-1 says what it was compared with: identical on the setup the trial stored
    assert sum("identical (same CPU, threads, versions" in line for line in lines) == 2


# ---------------------------------------------------------------------- mmaction2 as the client
@functools.cache
def _mmaction_models_import() -> bool:
    """Whether ``mmaction.models`` imports here (it needs mmcv < 2.2 and the drn fix)."""
    code = "import mmaction.models"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _mmaction2_recognizer(model_cfg: dict[str, Any]) -> tuple[nn.Module, Any]:
    """mmaction2's model for the exported ``model`` dict, and ``clips -> logits``.

    With a working ``mmaction.models``: its ``Recognizer3D`` from the registry. Otherwise (see
    tests/mmaction_oracle.py) the same parameter layout from mmaction2's own ``ResNet3d`` and
    ``I3DHead`` classes, executed by path.
    """
    cfg = dict(model_cfg)
    if _mmaction_models_import():
        from mmaction.registry import MODELS
        from mmaction.utils import register_all_modules

        register_all_modules()
        model = MODELS.build(cfg)
        return model, lambda x: model._forward(x[:, None], stage="head")
    from mmaction_oracle import load_i3d_head, load_reference

    backbone_cfg = dict(cfg["backbone"])
    backbone_cfg.pop("type")
    head_cfg = dict(cfg["cls_head"])
    head_cfg.pop("type")
    head_cfg["loss_cls"] = {"type": nn.CrossEntropyLoss}

    class MMActionRecognizer3D(nn.Module):  # Recognizer3D's attributes
        def __init__(self) -> None:
            super().__init__()
            self.backbone = load_reference().ResNet3d(**backbone_cfg)
            self.cls_head = load_i3d_head()(**head_cfg)

    model = MMActionRecognizer3D()
    return model, lambda x: model.cls_head(model.backbone(x))


def test_mmaction2_recognizer3d_from_its_registry_gives_the_stored_top1(
    front_study, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The exported config as mmaction2 reads it: its registry builds ``Recognizer3D`` (in a
    process of its own, see mmaction2_runner.py), ``load_checkpoint(strict=True)`` loads the
    kept weights, and the study's validation clips give the stored top-1."""
    from runners.data.datasets import build_datasets
    from studies.study.storage import study_spec

    runs, study = front_study
    (number,) = front_numbers(study)
    cfg_path = tmp_path / "best.py"
    export(study, trial=number, fmt="mmaction2", out=cfg_path)
    _, val_set = build_datasets(study_spec(study).data)
    clips = torch.stack([val_set[i][0] for i in range(len(val_set))])
    labels = torch.tensor([int(val_set[i][1]) for i in range(len(val_set))])
    torch.save(clips, tmp_path / "clips.pt")
    script = Path(__file__).parents[1] / "mmaction2_runner.py"
    done = subprocess.run(
        [sys.executable, str(script), "--logits", str(cfg_path), str(tmp_path / "clips.pt"),
         str(tmp_path / "logits.pt")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "Recognizer3D"
    scores = torch.load(tmp_path / "logits.pt")
    top1 = 100.0 * int((scores.argmax(dim=1) == labels).sum()) / len(labels)
    assert top1 == study.trials[number].user_attrs["top1"]


def test_mmaction2_loads_the_exported_weights_and_gives_the_stored_top1(
    front_study, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from runners.data.datasets import build_datasets
    from runners.model import build_recognizer
    from search_space import ResNet3dConfig
    from studies.study.storage import study_spec

    runs, study = front_study
    (number,) = front_numbers(study)
    cfg_path = tmp_path / "best.py"
    export(study, trial=number, fmt="mmaction2", out=cfg_path)
    cfg = Config.fromfile(str(cfg_path))
    model, logits_of = _mmaction2_recognizer(cfg.model.to_dict())
    model.eval()
    _, val_set = build_datasets(study_spec(study).data)
    clips = torch.stack([val_set[i][0] for i in range(len(val_set))])
    labels = torch.tensor([int(val_set[i][1]) for i in range(len(val_set))])
    with torch.inference_mode():
        untrained = logits_of(clips)
        load_checkpoint(model, cfg.load_from, map_location="cpu", strict=True)
        logits = logits_of(clips)
    top1 = 100.0 * int((logits.argmax(dim=1) == labels).sum()) / len(labels)
    assert top1 == study.trials[number].user_attrs["top1"]
    # the same logits as r3dnas's own recognizer with these weights, and not the untrained ones
    ours = build_recognizer(ResNet3dConfig.from_dict(study.trials[number].user_attrs["config"]),
                            num_classes=cfg.model.cls_head.num_classes)  # fmt: skip
    ours.load_state_dict(torch.load(cfg.load_from, weights_only=True)["state_dict"])
    with torch.inference_mode():
        assert torch.equal(ours.eval()(clips), logits)
    assert not torch.equal(untrained, logits)
