"""Pick a trial and export its network: ResNet3d keyword JSON or an mmaction2 config file.

``json`` is exactly the ``ResNet3d`` keyword arguments, so ``ResNet3d(**json.load(f))`` builds
the network both here and in mmaction2. ``mmaction2`` is a Python config that mmengine's
``Config.fromfile`` parses: a ``Recognizer3D`` with this backbone and an ``I3DHead`` and, when
the study trained on real videos, its data pipelines, loaders and schedule
(:mod:`studies.mmaction2_config`), with ``load_from`` naming the trial's trained weights when the
study kept them. Class-folder datasets are written as annotation lists into ``<out stem>_lists/``
beside the config. ``checkpoint`` copies those weights (mmengine's checkpoint format, see
:mod:`studies.checkpoints`) to ``out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_space.errors import ConfigError
from studies.mmaction2_config import TrainedWith, mmaction2_config_text

__all__ = ["PICKS", "export", "mmaction2_config_text", "select_trial"]

PICKS = ("top1", "knee", "min-latency")
EXPORT_FORMATS = ("json", "mmaction2", "checkpoint")


def select_trial(
    study: Any, *, storage: str | None = None, trial: int | None = None, pick: str | None = None
) -> Any:
    """The trial asked for by number, or picked from the Pareto front.

    ``top1``: the highest top-1 among completed feasible trials; ``min-latency``: the lowest
    latency; ``knee``: the front trial closest (Euclidean, after scaling each objective to
    [0, 1]) to the ideal point of the front.
    """
    from optuna.trial import TrialState

    from studies.pareto import _as_study, pareto

    study = _as_study(study, storage)
    if trial is not None:
        numbers = {t.number: t for t in study.get_trials(deepcopy=False)}
        if trial not in numbers:
            raise ConfigError(
                f"study {study.study_name!r} has no trial {trial} (trials 0..{len(numbers) - 1})"
            )
        chosen = numbers[trial]
        if chosen.state != TrialState.COMPLETE or "config" not in chosen.user_attrs:
            reason = chosen.user_attrs.get("fail_reason", chosen.state.name.lower())
            raise ConfigError(f"trial {trial} did not complete ({reason}); pick a completed one")
        return chosen
    pick = pick or "knee"
    if pick not in PICKS:
        raise ConfigError(f"--pick must be one of {', '.join(PICKS)}; got {pick!r}")
    front = pareto(study)
    if not len(front):
        raise ConfigError(f"study {study.study_name!r} has no completed feasible trial yet")
    if pick == "top1":
        column, best = _metric_column(front, "top1"), "max"
    elif pick == "min-latency":
        column, best = _metric_column(front, "latency_ms"), "min"
    else:
        return study.trials[_knee(front)]
    values = front[column]
    row = values.idxmax() if best == "max" else values.idxmin()
    return study.trials[int(front.loc[row, "trial"])]


def _metric_column(front: Any, name: str) -> str:
    if name not in front.columns:
        raise ConfigError(f"the study's trials have no {name!r} metric to pick by")
    return name


def _knee(front: Any) -> int:
    scaled = []
    for name, direction in zip(front.attrs["objectives"], front.attrs["directions"], strict=True):
        column = front[name].astype(float)
        span = column.max() - column.min()
        norm = (column - column.min()) / span if span > 0 else column * 0.0
        scaled.append(1.0 - norm if direction == "maximize" else norm)
    distance = sum(s**2 for s in scaled) ** 0.5
    return int(front.loc[distance.idxmin(), "trial"])


def _stored_spec(study: Any) -> Any:
    """The study's spec as parsed at launch (None for a study r3dnas did not make)."""
    from studies.spec import parse_spec

    raw = study.user_attrs.get("spec")
    if raw is None:
        return None
    return parse_spec(raw, source=f"study {study.study_name!r}", base_dir=Path.cwd())


def _recipe(study: Any) -> tuple[int, Any, Any]:
    """``(num_classes, data, train)`` for the mmaction2 export.

    A study whose stored spec does not parse (made by hand, or by another tool) still exports
    its network; the data and training recipe are then left out of the config.
    """
    try:
        spec = _stored_spec(study)
    except ConfigError:
        spec = None
    if spec is not None:
        return spec.data.num_classes, spec.data, spec.train
    raw_data = (study.user_attrs.get("spec") or {}).get("data", {})
    return int(raw_data.get("num_classes", 400)), None, None


def export(
    study: Any = None,
    *,
    storage: str | None = None,
    trial: int | None = None,
    pick: str | None = None,
    fmt: str = "json",
    out: str | Path | None = None,
    decoder: str = "auto",
    runs_dir: str | Path | None = None,
) -> str:
    """The chosen trial's network as text (and written to ``out`` when given).

    Args:
        decoder: mmaction2 format: the video decoder its pipelines use (see
            :mod:`studies.mmaction2_config`).
        runs_dir: the study's runs folder: where its SQLite file (default storage) and its
            weights are (default: ``runs`` to find the study, and for the weights the folder
            the study was launched with).

    ``fmt="checkpoint"`` copies the trial's weights to ``out`` (required) and returns that path;
    a trial without weights is a :class:`ConfigError` that says why.
    """
    import json

    from studies.checkpoints import trial_checkpoint
    from studies.pareto import _as_study

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(EXPORT_FORMATS)}; got {fmt!r}")
    if fmt == "checkpoint" and out is None:
        raise ConfigError("--format checkpoint needs --out FILE (e.g. --out best.pth)")
    study = _as_study(study, storage, runs_dir=runs_dir if runs_dir is not None else "runs")
    chosen = select_trial(study, trial=trial, pick=pick)
    config = chosen.user_attrs["config"]
    if fmt == "checkpoint":
        import shutil

        assert out is not None  # checked above
        source = trial_checkpoint(study, chosen, runs_dir=runs_dir)
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
                trial_checkpoint(study, chosen, runs_dir=runs_dir).resolve()
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
