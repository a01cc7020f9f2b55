"""Rebuild a trial's network from its stored config and check the stored numbers.

FLOPs and parameters must come out equal to the stored values exactly (they are functions of
the config); latency is re-measured and shown beside the stored value (it depends on the
machine). When the study kept the trial's trained weights (``[train] keep_checkpoints``), they
are loaded and evaluated on the validation set without training: on CPU the top-1 must equal the
stored value exactly. With ``retrain`` the network is also trained again with the stored seed and
the study's spec, which on CPU gives the identical top-1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Unpack

from search_space.errors import R3dnasError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from search_space.config import ResNet3dConfig
    from studies.results.pareto import TrialChoice
    from studies.study.sections import StudySpec

__all__ = ["ReproduceResult", "ReproductionMismatch", "reproduce"]

# The stored metrics shown beside the re-measured ones.
STORED: tuple[str, ...] = ("gflops", "params", "latency_ms", "top1")


class ReproductionMismatch(R3dnasError):
    """A number that must reproduce exactly did not."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ReproduceResult:
    trial: int
    digest: str
    stored: dict[str, float]
    measured: dict[str, float]
    weights: str | None = None  # the checkpoint evaluated for ``top1``, if any
    how: dict[str, str] = field(default_factory=dict)  # measured key -> how it was obtained
    verdicts: tuple[str, ...] = ()  # what top-1 was compared with, and the outcome

    def format(self) -> str:
        rows = [("metric", "stored", "measured", "how")]
        for key, value in self.measured.items():
            before = self.stored.get(key.removesuffix("_retrained"))
            shown = "-" if before is None else f"{before:.6g}"
            rows.append((key, shown, f"{value:.6g}", self.how.get(key, "")))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"trial {self.trial} (digest {self.digest})"]
        for r in rows:
            cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]), r[3]]
            lines.append("  ".join(cells).rstrip())
        lines.extend(self.verdicts)
        return "\n".join(lines)


def reproduce(
    study: optuna.Study | str | None = None,
    *,
    retrain: bool = False,
    latency: bool = True,
    weights: bool = True,
    **choice: Unpack[TrialChoice],
) -> ReproduceResult:
    """Re-measure a trial (``r3dnas reproduce``); raises :class:`ReproductionMismatch`.

    Args:
        weights: evaluate the trial's stored weights when the study kept them (``top1``);
            with ``retrain`` too, the retrained accuracy is ``top1_retrained``.
        choice: which trial (:class:`~studies.results.pareto.TrialChoice`). Its ``runs_dir``
            is the study's runs folder, where its weights are (default: the one the study was
            launched with).
    """
    from search_space.config import ResNet3dConfig
    from studies.results.pareto import choose_trial
    from studies.study.storage import study_spec

    study, chosen = choose_trial(study, **choice)
    spec = study_spec(study)
    config = ResNet3dConfig.from_dict(chosen.user_attrs["config"])
    if config.digest() != chosen.user_attrs.get("digest"):
        raise ReproductionMismatch(
            f"trial {chosen.number}: stored config digests to {config.digest()}, "
            f"stored digest is {chosen.user_attrs.get('digest')}"
        )
    stored = {k: float(chosen.user_attrs[k]) for k in STORED if k in chosen.user_attrs}
    measured = _remeasure_cost(chosen.number, config, spec, stored, latency=latency)
    checkpoint = _stored_weights(study, chosen, choice.get("runs_dir")) if weights else None
    how = {k: "re-counted: must equal" for k in measured if k != "latency_ms"}
    if "latency_ms" in measured:
        how["latency_ms"] = "re-timed here (depends on the machine)"
    verdicts: list[str] = []
    if checkpoint is not None or retrain:
        top1, top1_how, verdicts = _remeasure_top1(
            study, chosen, config, spec, stored, checkpoint=checkpoint, retrain=retrain
        )
        measured |= top1
        how |= top1_how
    return ReproduceResult(
        trial=chosen.number,
        digest=str(chosen.user_attrs.get("digest")),
        stored=stored,
        measured=measured,
        weights=None if checkpoint is None else str(checkpoint),
        how=how,
        verdicts=tuple(verdicts),
    )


def _remeasure_cost(
    number: int,
    config: ResNet3dConfig,
    spec: StudySpec,
    stored: dict[str, float],
    *,
    latency: bool,
) -> dict[str, float]:
    """FLOPs and params (must equal the stored values exactly) and, if asked, latency."""
    from runners.scores.flops import measure_flops

    shape = spec.measure.input_shape
    flops = measure_flops(
        config, shape, include_head=spec.measure.include_head, num_classes=spec.data.num_classes
    )
    measured: dict[str, float] = {"gflops": flops.gflops, "params": float(flops.params)}
    for key in ("gflops", "params"):
        if key in stored and stored[key] != measured[key]:
            raise ReproductionMismatch(
                f"trial {number}: {key} re-measured {measured[key]!r} != stored {stored[key]!r}"
            )
    if latency:
        from runners.latency.measure import measure_latency

        result = measure_latency(config, shape, spec.measure.latency_config())
        measured["latency_ms"] = result.latency_ms
    return measured


def _remeasure_top1(
    study: optuna.Study,
    chosen: FrozenTrial,
    config: ResNet3dConfig,
    spec: StudySpec,
    stored: dict[str, float],
    *,
    checkpoint: Path | None,
    retrain: bool,
) -> tuple[dict[str, float], dict[str, str], list[str]]:
    """Top-1 from the stored weights and/or by training again with the stored seed, each
    judged (:mod:`studies.core.reproducibility`); ``(measured, how, verdict lines)``."""
    import dataclasses

    from runners.data.datasets import build_datasets

    train_set, val_set = build_datasets(spec.data)
    seed = int(chosen.user_attrs.get("seed", spec.train.seed))
    train_cfg = dataclasses.replace(spec.train, seed=seed)
    measured: dict[str, float] = {}
    how: dict[str, str] = {}
    verdicts: list[str] = []
    if checkpoint is not None:
        from runners.training.accuracy import evaluate_checkpoint

        evaluated = evaluate_checkpoint(
            config,
            val_set,
            train_cfg,
            num_classes=spec.data.num_classes,
            checkpoint_path=checkpoint,
            num_workers=spec.data.num_workers,
        )
        measured["top1"] = evaluated.top1
        how["top1"] = f"the stored weights evaluated (not retrained): {checkpoint}"
        verdicts.append(_check_top1(study, chosen, spec, stored, evaluated.top1,
                                    evaluated.device, "stored weights"))  # fmt: skip
    if retrain:
        from runners.training.accuracy import train_and_evaluate

        outcome = train_and_evaluate(
            config,
            train_set,
            val_set,
            train_cfg,
            num_classes=spec.data.num_classes,
            num_workers=spec.data.num_workers,
        )
        key = "top1_retrained" if "top1" in measured else "top1"
        measured[key] = outcome.top1
        how[key] = f"trained again with seed {seed}"
        verdicts.append(_check_top1(study, chosen, spec, stored, outcome.top1, outcome.device,
                                    f"retrained (seed {seed})"))  # fmt: skip
    return measured, how, verdicts


def _stored_weights(
    study: optuna.Study, trial: FrozenTrial, runs_dir: str | Path | None
) -> Path | None:
    """The trial's weights file, or None (then top-1 is re-measured only by retraining)."""
    from search_space.errors import ConfigError
    from studies.results.checkpoints import trial_checkpoint

    try:
        return trial_checkpoint(study, trial, runs_dir=runs_dir)
    except ConfigError:
        return None


def _check_top1(
    study: optuna.Study,
    chosen: FrozenTrial,
    spec: StudySpec,
    stored: dict[str, float],
    top1: float,
    device: str,
    how: str,
) -> str:
    """On CPU: identical where CPU model, threads and versions match the trial's, else within
    the study's seed spread; raises :class:`ReproductionMismatch` otherwise. Elsewhere (a GPU)
    the number is shown, not judged. Returns the verdict line."""
    from runners.latency.measure import library_versions
    from studies.core.reproducibility import judge_top1, seed_spread, training_setup

    if not device.startswith("cpu") or "top1" not in stored:
        return f"{how}: top1 {top1!r} on {device}: shown, not judged"
    verdict = judge_top1(
        stored["top1"],
        top1,
        stored_setup=chosen.user_attrs.get("versions", {}),
        here_setup=library_versions() | training_setup(spec.train.num_threads),
        spread=seed_spread(_seed_pairs(study)),
    )
    line = f"{how}: {verdict.text}"
    if not verdict.ok:
        raise ReproductionMismatch(f"trial {chosen.number}: {line}")
    return line


def _seed_pairs(study: optuna.Study) -> list[tuple[float, float]]:
    """Top-1 of the first two seeds of every architecture the study trained with two."""
    from optuna.trial import TrialState

    by_digest: dict[str, dict[int, float]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = t.user_attrs
        if "top1" in attrs and "digest" in attrs and "seed" in attrs:
            by_digest.setdefault(attrs["digest"], {}).setdefault(int(attrs["seed"]), attrs["top1"])
    pairs = []
    for seeds in by_digest.values():
        if len(seeds) >= 2:
            first, second = sorted(seeds)[:2]
            pairs.append((float(seeds[first]), float(seeds[second])))
    return pairs
