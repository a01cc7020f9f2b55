"""Pick a trial and export its network: ResNet3d keyword JSON or an mmaction2 config file.

``json`` is exactly the ``ResNet3d`` keyword arguments, so ``ResNet3d(**json.load(f))`` builds
the network both here and in mmaction2. ``mmaction2`` is a Python config that mmengine's
``Config.fromfile`` parses: a ``Recognizer3D`` with this backbone and an ``I3DHead`` and, when
the study trained on real videos, its data pipelines, loaders and schedule
(:mod:`studies.results.mmaction2_config`), with ``load_from`` naming the trial's trained weights
when the study kept them. Class-folder datasets are written as annotation lists into ``<out
stem>_lists/`` beside the config. ``checkpoint`` copies those weights (mmengine's checkpoint
format, see :mod:`studies.results.checkpoints`) to ``out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Unpack

from search_space._files import output_file
from search_space.errors import ConfigError
from studies.results.mmaction2_config import TrainedWith, mmaction2_config_text
from studies.study.record import StudyRecord

if TYPE_CHECKING:
    import optuna

    from runners.data.datasets import DataConfig
    from runners.training.accuracy import TrainConfig
    from studies.results.pareto import TrialChoice

__all__ = ["EXPORT_FORMATS", "export"]

EXPORT_FORMATS = ("json", "mmaction2", "checkpoint")


def _recipe(study: optuna.Study) -> tuple[int, DataConfig | None, TrainConfig | None]:
    """``(num_classes, data, train)`` for the mmaction2 export.

    A study whose stored spec does not parse (made by hand, or by another tool) still exports
    its network; the data and training recipe are then left out of the config.
    """
    from studies.study.storage import stored_spec

    try:
        spec = stored_spec(study)
    except ConfigError:
        spec = None
    if spec is not None:
        return spec.data.num_classes, spec.data, spec.train
    raw_data = (StudyRecord(study).spec or {}).get("data", {})
    return int(raw_data.get("num_classes", 400)), None, None


def export(
    study: optuna.Study | str | None = None,
    *,
    fmt: str = "json",
    out: str | Path | None = None,
    decoder: str = "auto",
    **choice: Unpack[TrialChoice],
) -> str:
    """The chosen trial's network as text (and written to ``out`` when given).

    Args:
        decoder: mmaction2 format: the video decoder its pipelines use (see
            :mod:`studies.results.mmaction2_config`).
        choice: which trial (:class:`~studies.results.pareto.TrialChoice`). Its ``runs_dir``
            is the study's runs folder: where its SQLite file (default storage) and its weights
            are (default: ``runs`` to find the study, and for the weights the folder the study
            was launched with).

    ``fmt="checkpoint"`` copies the trial's weights to ``out`` (required) and returns that path;
    a trial without weights is a :class:`ConfigError` that says why.
    """
    import json

    from studies.results.checkpoints import trial_checkpoint
    from studies.results.pareto import choose_trial

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(EXPORT_FORMATS)}; got {fmt!r}")
    if fmt == "checkpoint" and out is None:
        raise ConfigError("--format checkpoint needs --out FILE (e.g. --out best.pth)")
    if out is not None:
        output_file(out, option="--out")  # NOTE: before the trial is chosen or anything written
    study, chosen = choose_trial(study, **choice)
    config = chosen.user_attrs["config"]
    if fmt == "checkpoint":
        import shutil

        assert out is not None  # checked above
        source = trial_checkpoint(study, chosen, runs_dir=choice.get("runs_dir"))
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return str(target)
    if fmt == "json":
        text = json.dumps(config, indent=2) + "\n"
    else:
        num_classes, data, train = _recipe(study)
        try:
            load_from: str | None = str(
                trial_checkpoint(study, chosen, runs_dir=choice.get("runs_dir")).resolve()
            )
        except ConfigError:
            load_from = None  # NOTE: the network is still worth exporting without weights
        header = (
            f"Exported by r3dnas from study {study.study_name!r}, trial {chosen.number} "
            f"(digest {chosen.user_attrs.get('digest')}).\n{chosen.user_attrs.get('arch', '')}"
        )
        text = mmaction2_config_text(
            config,
            num_classes=num_classes,
            header=header,
            data=data,
            train=train,
            decoder=decoder,
            trained=TrainedWith.from_user_attrs(chosen.user_attrs),
            list_dir=Path(out).with_name(f"{Path(out).stem}_lists") if out is not None else None,
            load_from=load_from,
        )
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text
