"""A tabular benchmark: every architecture of a space trained and timed once, read back by digest.

Why: a search method (a sampler, a pruner, a training-free score) is judged by how it ranks
architectures, which needs ground truth for all of them. A table row holds what a real trial
measured for one architecture and one training seed (final and per-epoch accuracy, training
loss, training seconds, FLOPs, parameters, CPU latency), so a study can run against the table
instead of training: same samplers, pruners and storage, with a simulated clock.

The file is a CSV written by ``r3dnas table export`` (one row per architecture x seed; list and
mapping columns are JSON), next to the spec that built it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_space._files import read_text
from search_space.errors import ConfigError, DataError

__all__ = ["COLUMNS", "BenchmarkTable", "TableRow", "load_table"]

# column -> how to read it back from CSV text
_FLOAT_COLUMNS = (
    "params",
    "params_m",
    "gflops",
    "top1",
    "top5",
    "train_s",
    "latency_ms",
    "latency_cv",
)
_JSON_COLUMNS = ("config", "factors", "val_top1", "train_loss", "train_top1", "versions")
# NOTE: columns added after tables were committed; an older CSV without them still loads.
_OPTIONAL_COLUMNS = ("train_top1",)
COLUMNS = (
    "digest",
    "seed",
    "arch",
    "config",
    "factors",
    "params",
    "params_m",
    "gflops",
    "top1",
    "top5",
    "val_top1",
    "train_loss",
    "train_top1",
    "epochs",
    "train_s",
    "latency_ms",
    "latency_cv",
    "latency_threads",
    "latency_mode",
    "machine",
    "versions",
    "trial",
)


@dataclass(frozen=True, slots=True)
class TableRow:
    """One architecture trained with one seed, as a real trial measured it.

    ``factors`` are the space's parameters of the grid point that built it (for an
    architecture that several grid points build, the first one's; parameters that did not
    shape the network, like the inflate style of a network with nothing inflated, are kept
    as sampled).

    ``val_top1``, ``train_loss`` and ``train_top1`` (running training accuracy, dropout on)
    have one entry per epoch (the last ``val_top1`` is ``top1``; ``train_top1`` beside it says
    whether the network memorised its training clips); ``latency_ms`` is NaN where the latency
    pass has not reached the row yet, ``train_top1`` empty in tables exported before it existed.
    """

    digest: str
    seed: int
    arch: str
    config: dict[str, Any]
    factors: dict[str, Any]
    params: float
    params_m: float
    gflops: float
    top1: float
    top5: float
    val_top1: tuple[float, ...]
    train_loss: tuple[float, ...]
    epochs: int
    train_s: float
    latency_ms: float
    latency_cv: float
    latency_threads: int
    latency_mode: str
    machine: str
    versions: dict[str, str]
    trial: int
    train_top1: tuple[float, ...] = ()

    def to_csv_row(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in COLUMNS:
            value = getattr(self, name)
            if name in _JSON_COLUMNS:
                out[name] = json.dumps(list(value) if isinstance(value, tuple) else value)
            elif isinstance(value, float):
                out[name] = "" if math.isnan(value) else repr(value)
            else:
                out[name] = str(value)
        return out

    @classmethod
    def from_csv_row(cls, row: Mapping[str, str | None], *, where: str = "table") -> TableRow:
        """Parse one CSV row; a malformed or missing value is a :class:`DataError` naming
        ``where`` (file and row) and the column."""
        values: dict[str, Any] = {}
        for name in COLUMNS:
            if name in _OPTIONAL_COLUMNS and name not in row:
                continue
            text = row.get(name)
            if text is None:
                raise DataError(f"{where}, column {name}: no value (a truncated row?)")
            try:
                values[name] = _parse(name, text)
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                kind = "JSON" if name in _JSON_COLUMNS else "a number"
                raise DataError(f"{where}, column {name}: {text[:40]!r} is not {kind}") from exc
        return cls(**values)


def _parse(name: str, text: str) -> Any:
    """The value of column ``name`` from its CSV text (ValueError when it is malformed)."""
    if name in _JSON_COLUMNS:
        value = json.loads(text)
        return tuple(value) if isinstance(value, list) else value
    if name in _FLOAT_COLUMNS:
        return float(text) if text != "" else math.nan
    if name in ("seed", "epochs", "latency_threads", "trial"):
        return int(text) if text != "" else 0
    return text


class BenchmarkTable:
    """The rows of a benchmark table, indexed by ``(digest, seed)``."""

    def __init__(self, rows: Iterable[TableRow], *, source: str = "<memory>") -> None:
        self.source = source
        self.rows: tuple[TableRow, ...] = tuple(rows)
        self._index: dict[tuple[str, int], TableRow] = {}
        for row in self.rows:
            key = (row.digest, row.seed)
            if key in self._index:
                raise ConfigError(
                    f"{source}: architecture {row.digest} has two rows for seed {row.seed}"
                )
            self._index[key] = row
        self.seeds: tuple[int, ...] = tuple(sorted({row.seed for row in self.rows}))
        self.digests: tuple[str, ...] = tuple(sorted({row.digest for row in self.rows}))
        # NOTE: a simulated search looks up whatever network it proposes, so it may only use a
        # seed every network has (bench_v2's third seed covers 64 of 192)
        self.full_seeds: tuple[int, ...] = tuple(
            s for s in self.seeds if all((d, s) in self._index for d in self.digests)
        )

    @classmethod
    def load(cls, path: str | Path) -> BenchmarkTable:
        """Read a table written by :meth:`write`; a missing file or column is one clear error, a
        malformed value a :class:`DataError` naming its row (the file's line) and column."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"table: {path} does not exist (build one with r3dnas table)")
        text = read_text(path, failure="table: cannot read {path}: {reason}")
        with io.StringIO(text, newline="") as handle:
            reader = csv.DictReader(handle)
            present = reader.fieldnames or ()
            missing = [c for c in COLUMNS if c not in present and c not in _OPTIONAL_COLUMNS]
            if missing:
                raise ConfigError(f"table: {path} lacks the columns {', '.join(missing)}")
            rows = [
                TableRow.from_csv_row(row, where=f"table {path} row {reader.line_num}")
                for row in reader
            ]
        return cls(rows, source=str(path))

    def write(self, path: str | Path) -> Path:
        """Write the rows as CSV (atomically: a reader never sees half a table)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")
        with partial.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            for row in sorted(self.rows, key=lambda r: (r.digest, r.seed)):
                writer.writerow(row.to_csv_row())
        partial.replace(path)
        return path

    def __len__(self) -> int:
        return len(self.rows)

    def lookup(self, digest: str, seed: int) -> TableRow | None:
        """The row of ``digest`` trained with ``seed``, or None."""
        return self._index.get((digest, seed))

    def mean_top1(self) -> dict[str, float]:
        """Mean final top-1 over the seeds of each architecture."""
        sums: dict[str, list[float]] = {}
        for row in self.rows:
            sums.setdefault(row.digest, []).append(row.top1)
        return {digest: sum(v) / len(v) for digest, v in sums.items()}


_TABLES: dict[tuple[str, float], BenchmarkTable] = {}


def load_table(path: str | Path) -> BenchmarkTable:
    """The table at ``path``, read once per process (and again when the file changes).

    Why cached: a tabular study's trials, and the cost-aware sampler's candidates, all read the
    same table; one parse per process keeps a 100-trial study to seconds.
    """
    resolved = Path(path).resolve()
    key = (str(resolved), resolved.stat().st_mtime if resolved.exists() else 0.0)
    if key not in _TABLES:
        _TABLES[key] = BenchmarkTable.load(resolved)
    return _TABLES[key]
