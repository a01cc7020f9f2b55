"""A dataset wrapper that shows which processes loaded its items, for the tests that check
``num_workers`` reaches a ``DataLoader`` (training, and a study spec's ``[data]``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from runners.data.motion import MotionDataset


class PidRecording(Dataset):
    """Motion clips that append the id of the process loading each one to a file (shared by
    DataLoader workers), so a test sees where items were loaded."""

    def __init__(self, data: MotionDataset, log: Path) -> None:
        self.data, self.log = data, log

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return self.data[index]


def loading_pids(log: Path) -> set[int]:
    """The ids of the processes that loaded items into ``log``."""
    return {int(line) for line in log.read_text().split()}
