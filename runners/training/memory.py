"""Memory accounting of a training run: peak memory, snapshots, and out-of-memory failures.

Peak memory is the CUDA allocator's high-water mark on a GPU and the process's resident-set
high-water mark on CPU (reset through ``/proc/self/clear_refs`` where Linux allows it). An
out-of-memory becomes a :class:`~search_space.errors.TrialFailure` that says where it happened
and how much memory was involved, after the memory has been released for the next trial.
"""

from __future__ import annotations

import gc
import resource

import torch

from search_space.errors import TrialFailure

__all__ = [
    "first_line",
    "memory_snapshot",
    "out_of_memory_failure",
    "peak_memory_mb",
    "release_memory",
    "reset_peak_memory",
]

_MIB = 2**20


def release_memory(device: torch.device) -> None:
    """Collect unreachable tensors and hand cached CUDA blocks back to the driver."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def memory_snapshot(device: torch.device) -> dict[str, float]:
    """Memory figures in MiB: CUDA allocator state, or the process's resident set."""
    if device.type == "cuda":
        return {
            "allocated_mb": torch.cuda.memory_allocated(device) / _MIB,
            "reserved_mb": torch.cuda.memory_reserved(device) / _MIB,
            "total_mb": torch.cuda.get_device_properties(device).total_memory / _MIB,
        }
    status = _proc_status()
    peak = status.get("VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return {"rss_mb": status.get("VmRSS", float("nan")) / 1024, "peak_rss_mb": peak / 1024}


def _proc_status() -> dict[str, float]:
    """``/proc/self/status`` memory lines in KiB (empty off Linux)."""
    try:
        with open("/proc/self/status") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return {}
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = float(rest.split()[0])
    return values


def reset_peak_memory(device: torch.device) -> str:
    """Reset the peak-memory counter when possible; return what the peak will measure."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda_max_allocated"
    try:
        # "5" resets only the resident-set high-water mark (Linux >= 4.0).
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return "process_peak_rss_lifetime"
    return "process_peak_rss"


def peak_memory_mb(device: torch.device, source: str) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / _MIB
    if source == "process_peak_rss":
        return _proc_status().get("VmHWM", float("nan")) / 1024
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def out_of_memory_failure(
    message: str,
    *,
    device: torch.device,
    where: str,
    at_failure: dict[str, float] | None = None,
) -> TrialFailure:
    """Free cached memory, then describe an out-of-memory as a :class:`TrialFailure`.

    Call it after leaving the ``except`` block that caught the error, so that the tensors held
    by the traceback's frames can be collected. The reason names where it happened and the
    memory involved: for CUDA, allocated and reserved at the failure and after freeing, and the
    device total; for CPU, the process's resident set and its peak.
    """
    release_memory(device)
    after = memory_snapshot(device)
    if device.type == "cuda":
        before = at_failure or {}
        memory = (
            f"allocated {before.get('allocated_mb', float('nan')):.0f} MiB and reserved "
            f"{before.get('reserved_mb', float('nan')):.0f} MiB at the failure, "
            f"{after['allocated_mb']:.0f} / {after['reserved_mb']:.0f} MiB after freeing, "
            f"of {after['total_mb']:.0f} MiB total"
        )
    else:
        memory = f"process RSS {after['rss_mb']:.0f} MiB, peak {after['peak_rss_mb']:.0f} MiB"
    return TrialFailure(f"out of memory on {device} at {where}: {memory} ({message})")
