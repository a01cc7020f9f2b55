"""Which networks a study has measured or is measuring, and claiming one for a trial.

Shared by :class:`~studies.sampling.sampler.CostAwareSampler` and
:class:`~studies.sampling.distinct.DistinctNetworks`; read from the study's trials every time,
so several workers on several machines, a resumed study and a study another sampler started
all agree.

* **Measured**: a trial recorded the network's digest and ended complete, reused, pruned,
  infeasible or failed (a failed network would fail again; an interrupted trial is re-run by
  the run loop's own retry, so it does not count).
* **Pending**: a running or waiting trial other than this one holds the network, by its digest
  attribute or its ``fixed_params``.

**Claiming** (no two workers pick the same network): the trial's choice is written as its
``fixed_params`` system attribute (as ``study.enqueue_trial`` does, so
:meth:`SearchSpace.sample` suggests exactly those values), then the study's trials are read
again; if another one holds or has measured the same network (a choice can take seconds, and
another worker may have claimed and finished it meanwhile), this trial gives it up and chooses
again. Of two trials that claim one network, the one that writes second sees the first
(storage writes are ordered), so at most one keeps it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = [
    "EXHAUSTED_ATTR",
    "Taken",
    "claim",
    "mark_exhausted",
    "set_system_attr",
    "space_exhausted",
    "taken",
]

# Trial system attribute: the sampler found no network left to propose (the trial then samples
# as its inner sampler would, and is reused); the run loop may stop the study on it.
EXHAUSTED_ATTR = "r3dnas_space_exhausted"
_BACKOFF_S = 0.2
_MEASURED_STATES = ("complete", "reused", "pruned", "infeasible", "failed")

# (a trial's parameters) -> the digest of the network they build, or None
Resolve = Callable[[Mapping[str, Any]], "str | None"]


@dataclass(frozen=True, slots=True)
class Taken:
    """Digests measured and pending (see the module docstring)."""

    measured: frozenset[str]
    pending: frozenset[str]

    def __contains__(self, digest: object) -> bool:
        return digest in self.measured or digest in self.pending


def _held(trial: FrozenTrial, resolve: Resolve) -> str | None:
    """The digest a running or waiting trial holds (its attribute, else its fixed params)."""
    digest = trial.user_attrs.get("digest")
    if digest:
        return str(digest)
    fixed = trial.system_attrs.get("fixed_params")
    if fixed:
        return resolve(fixed)
    return None


def taken(study: optuna.Study, trial: FrozenTrial, resolve: Resolve) -> Taken:
    """What is measured and what other trials hold, read from ``study`` now."""
    from optuna.trial import TrialState

    measured, pending = set(), set()
    for other in study.get_trials(deepcopy=False):
        if other.number == trial.number:
            continue
        if other.state in (TrialState.RUNNING, TrialState.WAITING):
            held = _held(other, resolve)
            if held is not None:
                pending.add(held)
            continue
        attrs = other.user_attrs
        if not attrs.get("digest") or attrs.get("state") not in _MEASURED_STATES:
            continue
        if str(attrs.get("fail_reason", "")).startswith("interrupted"):
            continue
        measured.add(str(attrs["digest"]))
    return Taken(measured=frozenset(measured), pending=frozenset(pending))


def _storage(study: optuna.Study) -> BaseStorage:
    """``study``'s storage.

    NOTE: as :func:`studies.storage.study_storage` (Optuna has no public accessor), which this
    package cannot import: ``studies.storage`` builds the samplers, this one among them.
    """
    storage: BaseStorage = study._storage
    return storage


def set_system_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Write a system attribute of the running ``trial`` (what a sampler records about it)."""
    _storage(study).set_trial_system_attr(trial._trial_id, key, value)


def _write_fixed(study: optuna.Study, trial: FrozenTrial, params: Mapping[str, Any]) -> None:
    """Set ``fixed_params`` in storage and on the frozen trial ``optuna.Trial`` reads it from.

    NOTE: Optuna 5.0's ``Trial.__init__`` calls ``sampler.before_trial(study, frozen)`` and then
    reads ``frozen.system_attrs["fixed_params"]`` from that same object, so both are written.
    """
    _storage(study).set_trial_system_attr(trial._trial_id, "fixed_params", dict(params))
    trial.system_attrs["fixed_params"] = dict(params)


def claim(
    study: optuna.Study,
    trial: FrozenTrial,
    params: Mapping[str, Any],
    digest: str,
    resolve: Resolve,
) -> bool:
    """Claim ``digest`` (built by ``params``) for ``trial``; False when, read after the claim
    was written, another trial holds it or has measured it (choose again).

    A lost claim waits a random moment first, so that two workers that chose in step do not
    choose in step again.
    """
    _write_fixed(study, trial, params)
    if digest not in taken(study, trial, resolve):
        return True
    time.sleep(random.uniform(0.0, _BACKOFF_S))
    return False


def mark_exhausted(study: optuna.Study, trial: FrozenTrial) -> None:
    """Record on ``trial`` that no network was left to propose."""
    _storage(study).set_trial_system_attr(trial._trial_id, EXHAUSTED_ATTR, True)
    trial.system_attrs[EXHAUSTED_ATTR] = True


def space_exhausted(trial: FrozenTrial) -> bool:
    """Whether the sampler had no unmeasured network left when ``trial`` started."""
    return bool(trial.system_attrs.get(EXHAUSTED_ATTR))
