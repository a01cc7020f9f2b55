"""What a retrained top-1 is compared with: bit-identity on the same setup, else the seed spread.

Training on CPU is deterministic for one CPU model, thread count and set of library versions:
the same seed gives the identical top-1. On another CPU type (same Python, torch and mmcv),
three table rows retrained to 31.5 / 59.4 / 57.0 against 46.4 / 60.7 / 55.7 (issue 20): float
sums run in another order and training amplifies the difference. So every trained trial stores
its setup beside its library versions (``cpu``, ``train_threads`` in the ``versions``
attribute and a table's ``versions`` column), and a retrain

* on the same setup must reproduce the stored top-1 exactly;
* elsewhere is judged against the measured seed spread: the standard deviation of one run's
  top-1 estimated from architectures trained with two seeds, ``std((s0 - s1) / sqrt(2))``; the
  difference passes within :data:`TOLERANCE_SD` of them. Without two seeds of anything there
  is no spread to judge by, and the check fails saying so.
"""

from __future__ import annotations

import math
import platform
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "SETUP_KEYS",
    "TOLERANCE_SD",
    "Verdict",
    "cpu_model",
    "judge_top1",
    "seed_spread",
    "training_setup",
]

# What must match for bit-identity (the keys of a trial's ``versions`` attribute).
SETUP_KEYS = ("cpu", "train_threads", "python", "torch", "mmcv", "mmengine", "cuda", "cudnn")
TOLERANCE_SD = 2.0


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def training_setup(threads: int | None) -> dict[str, str]:
    """This machine's setup for training with ``threads`` CPU threads (None: torch's current
    number): the CPU model and the thread count, to store beside the library versions."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return {"cpu": cpu_model(), "train_threads": str(threads)}


def setup_differences(stored: Mapping[str, object], here: Mapping[str, object]) -> list[str]:
    """``key stored -> here`` for each setup key that differs (or was not recorded)."""
    out = []
    for key in SETUP_KEYS:
        if key not in stored and key not in here:
            continue
        if str(stored.get(key, "not recorded")) != str(here.get(key, "none")):
            out.append(f"{key} {stored.get(key, 'not recorded')} -> {here.get(key, 'none')}")
    return out


def seed_spread(pairs: Iterable[tuple[float, float]]) -> tuple[float, int]:
    """``(sd, n)``: the standard deviation of one run's top-1, ``std((a - b) / sqrt(2))`` over
    ``n`` pairs of the same architecture trained with two seeds (NaN below two pairs)."""
    halves = [(a - b) / math.sqrt(2.0) for a, b in pairs]
    return (statistics.stdev(halves) if len(halves) >= 2 else math.nan), len(halves)


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    ok: bool
    text: str  # one line: what was compared, the numbers, the outcome


def judge_top1(
    stored: float,
    measured: float,
    *,
    stored_setup: Mapping[str, object],
    here_setup: Mapping[str, object],
    spread: tuple[float, int],
) -> Verdict:
    """Bit-identity where the setups match; elsewhere ``|measured - stored|`` against
    :data:`TOLERANCE_SD` seed standard deviations."""
    differences = setup_differences(stored_setup, here_setup)
    numbers = f"top1 {measured!r} vs stored {stored!r}"
    if not differences:
        same = stored == measured
        outcome = "identical" if same else "DIFFERENT"
        return Verdict(ok=same, text=f"{numbers}: {outcome} (same CPU, threads, versions: "
                       "must be identical)")  # fmt: skip
    sd, n = spread
    where = f"another setup ({'; '.join(differences)})"
    if math.isnan(sd):
        return Verdict(ok=False, text=f"{numbers}: {where}, and no seed spread to judge by (no "
                       "architecture trained with two seeds): CANNOT JUDGE")  # fmt: skip
    diff, limit = measured - stored, TOLERANCE_SD * sd
    ok = abs(diff) <= limit
    return Verdict(ok=ok, text=f"{numbers}: {where}; difference {diff:+.4g} against "
                   f"{TOLERANCE_SD:g} x seed sd {sd:.4g} (from {n} pairs) = {limit:.4g}: "
                   f"{'within' if ok else 'OUTSIDE'}")  # fmt: skip
