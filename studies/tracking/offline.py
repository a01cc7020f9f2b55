"""Read offline wandb runs back from disk, without a server or ``wandb sync``.

An offline run writes only a binary transaction log, ``wandb/offline-run-*/run-<id>.wandb``: no
config or summary JSON. This module decodes that log so tests (and users checking what a study
sent) can compare a run with the Optuna storage.

The format, as wandb 0.31 writes it:

- a 7-byte file header: the ident ``:W&B``, the magic ``0xBEE1`` (little-endian uint16) and a
  version byte (0);
- then a leveldb log: 32 KiB blocks, each record fragment with a 7-byte header (CRC-32 of the
  type byte followed by the payload, little-endian uint32; payload length, uint16; type: 1 FULL,
  2 FIRST, 3 MIDDLE, 4 LAST). A block tail too short for a header is zero padding. Block
  boundaries are absolute file offsets, so the file header sits inside the first block;
- each reassembled payload is a ``wandb.proto.wandb_internal_pb2.Record``.

The log is complete only once wandb's service has flushed it, slightly after ``run.finish()``:
call ``wandb.teardown()`` (or :meth:`studies.tracking.tracker.StudyTracker.close`) before reading.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_space._imports import require
from search_space.errors import ConfigError

__all__ = ["OfflineRun", "find_offline_runs", "iter_records", "read_offline_run"]

_FILE_HEADER = struct.Struct("<4sHB")
_IDENT = b":W&B"
_MAGIC = 0xBEE1
_VERSIONS = (0,)
_BLOCK_LEN = 32 * 1024
_RECORD_HEADER = struct.Struct("<IHB")
_ZERO, _FULL, _FIRST, _MIDDLE, _LAST = 0, 1, 2, 3, 4
# NOTE: wandb keeps its own bookkeeping under this key of config and summary.
_INTERNAL_KEY = "_wandb"


@dataclass(frozen=True, kw_only=True, slots=True)
class OfflineRun:
    """What one wandb run recorded, decoded from its transaction log.

    Attributes:
        path: The ``run-<id>.wandb`` file read.
        run_id: wandb's run id (the suffix of the run directory).
        name: The display name given to ``wandb.init(name=...)``.
        group: The run group (r3dnas: the study name).
        job_type: ``trial`` or ``study`` for r3dnas runs.
        project: The project name.
        config: The run config after every update, without wandb's ``_wandb`` entry; values
            are JSON-decoded, so tuples come back as lists.
        history: One dict per ``run.log`` step, in order, including wandb's ``_step``,
            ``_runtime`` and ``_timestamp``.
        summary: The final summary (last value per key, explicit summary updates included),
            without wandb's ``_wandb`` entry.
        exit_code: The code given to ``run.finish``; ``None`` when the run never finished (its
            process died, or it is still running).
    """

    path: Path
    run_id: str
    name: str
    group: str
    job_type: str
    project: str
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None

    @property
    def files_dir(self) -> Path:
        """The run's ``files/`` directory, where media such as tables are written."""
        return self.path.parent / "files"

    def read_table(self, key: str) -> list[dict[str, Any]]:
        """The rows of a ``wandb.Table`` logged under ``key``, as dicts keyed by column.

        Raises:
            ConfigError: ``key`` is not a table in the summary, or its file is missing.
        """
        ref = self.summary.get(key)
        if not isinstance(ref, dict) or ref.get("_type") != "table-file":
            raise ConfigError(
                f"key {key!r} of run {self.run_id} is not a logged wandb.Table; "
                f"summary keys: {sorted(self.summary)}"
            )
        table_path = self.files_dir / ref["path"]
        if not table_path.is_file():
            raise ConfigError(f"table file {str(table_path)!r} of key {key!r} does not exist")
        table = json.loads(table_path.read_text())
        return [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]


def find_offline_runs(wandb_dir: str | Path) -> list[Path]:
    """The run directories under a ``wandb/`` directory (or the directory that holds it).

    Returns both ``offline-run-*`` and ``run-*`` (online) directories that contain a ``.wandb``
    log, sorted by name, i.e. by start time to the second; match runs by :attr:`OfflineRun.name`
    when several start within the same second.
    """
    root = Path(wandb_dir)
    if (root / "wandb").is_dir():
        root = root / "wandb"
    if not root.is_dir():
        return []
    runs = [
        path
        for path in root.iterdir()
        if path.is_dir()
        and not path.is_symlink()
        and path.name.startswith(("offline-run-", "run-"))
        and any(path.glob("run-*.wandb"))
    ]
    return sorted(runs, key=lambda path: path.name)


def iter_records(path: str | Path) -> Iterator[Any]:
    """Yield every ``wandb_internal_pb2.Record`` of a ``.wandb`` file, in write order.

    A record cut short at the end of the file (the writer still running or killed) ends the
    iteration quietly; corruption anywhere else raises.

    Raises:
        ConfigError: Not a wandb transaction log, an unknown version, or a bad checksum.
    """
    pb = require("wandb.proto.wandb_internal_pb2")
    path = Path(path)
    data = path.read_bytes()
    if len(data) < _FILE_HEADER.size:
        raise ConfigError(f"{str(path)!r} is not a wandb transaction log: only {len(data)} bytes")
    ident, magic, version = _FILE_HEADER.unpack_from(data, 0)
    if ident != _IDENT or magic != _MAGIC:
        raise ConfigError(
            f"{str(path)!r} is not a wandb transaction log: header {data[:7]!r}, expected "
            f"{_IDENT!r} with magic {_MAGIC:#06x}"
        )
    if version not in _VERSIONS:
        raise ConfigError(
            f"{str(path)!r} has transaction log version {version}; this reader knows {_VERSIONS}"
        )
    for payload in _iter_payloads(data, _FILE_HEADER.size, path):
        record = pb.Record()
        record.ParseFromString(payload)
        yield record


def _iter_payloads(data: bytes, pos: int, path: Path) -> Iterator[bytes]:
    """Reassemble leveldb-log fragments into whole payloads."""
    pending: bytearray | None = None
    while pos < len(data):
        block_left = _BLOCK_LEN - pos % _BLOCK_LEN
        if block_left < _RECORD_HEADER.size:
            pos += block_left  # zero padding at the end of a block
            continue
        if pos + _RECORD_HEADER.size > len(data):
            return  # a header cut short: the writer stopped mid-record
        crc, length, kind = _RECORD_HEADER.unpack_from(data, pos)
        start = pos + _RECORD_HEADER.size
        if kind == _ZERO and length == 0:
            pos += block_left  # preallocated / padded rest of the block
            continue
        if start + length > len(data):
            return
        payload = data[start : start + length]
        if zlib.crc32(payload, zlib.crc32(bytes((kind,)))) != crc:
            raise ConfigError(f"{str(path)!r}: checksum mismatch in the record at byte {pos}")
        pos = start + length
        if kind == _FULL:
            pending = None
            yield payload
        elif kind == _FIRST:
            pending = bytearray(payload)
        elif kind == _MIDDLE and pending is not None:
            pending += payload
        elif kind == _LAST and pending is not None:
            pending += payload
            yield bytes(pending)
            pending = None
        else:
            raise ConfigError(
                f"{str(path)!r}: record type {kind} at byte {pos - length - 7} is out of sequence"
            )


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Decode one run: its identity, config, per-step history, summary and exit code.

    Args:
        run_dir: An ``offline-run-*`` directory (see :func:`find_offline_runs`) or its
            ``run-<id>.wandb`` file.

    Raises:
        ConfigError: No ``.wandb`` log there, or the log is not one (see :func:`iter_records`).
    """
    path = Path(run_dir)
    if path.is_dir():
        logs = sorted(path.glob("run-*.wandb"))
        if len(logs) != 1:
            raise ConfigError(
                f"run_dir {str(path)!r} must hold exactly one run-*.wandb file; found {len(logs)}"
            )
        path = logs[0]
    elif not path.is_file():
        raise ConfigError(f"run_dir {str(path)!r} does not exist")

    ident = {"run_id": "", "name": "", "group": "", "job_type": "", "project": ""}
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    exit_code: int | None = None
    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            for key, value in (
                ("run_id", run.run_id),
                ("name", run.display_name),
                ("group", run.run_group),
                ("job_type", run.job_type),
                ("project", run.project),
            ):
                if value:
                    ident[key] = value
            _apply(config, run.config.update, run.config.remove)
            _apply(summary, run.summary.update, run.summary.remove)
        elif kind == "config":
            _apply(config, record.config.update, record.config.remove)
        elif kind == "summary":
            _apply(summary, record.summary.update, record.summary.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, _item_path(item), _history_value(item))
            history.append(row)
        elif kind == "exit":
            exit_code = record.exit.exit_code
    config.pop(_INTERNAL_KEY, None)
    summary.pop(_INTERNAL_KEY, None)
    return OfflineRun(
        path=path, config=config, history=history, summary=summary, exit_code=exit_code, **ident
    )


def _item_path(item: Any) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _apply(target: dict[str, Any], updates: Any, removes: Any) -> None:
    for item in updates:
        _set(target, _item_path(item), json.loads(item.value_json))
    for item in removes:
        keys = _item_path(item)
        parent = target
        for key in keys[:-1]:
            parent = parent.get(key, {})
        if isinstance(parent, dict):
            parent.pop(keys[-1], None)


def _set(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = target[key] = {}
        target = child
    target[keys[-1]] = value


def _history_value(item: Any) -> Any:
    """A history item's value: JSON in ``value_json`` or one of the typed fields."""
    if item.value_json:
        return json.loads(item.value_json)
    which = item.WhichOneof("value")
    if which is None or which == "none":
        return None
    if which == "json":
        return json.loads(item.json)
    return getattr(item, which)
