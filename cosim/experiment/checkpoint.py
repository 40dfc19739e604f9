"""A run's checkpoint: what the rounds after the last finished one depend on.

`checkpoint.pt` in the run folder is rewritten after every finished round (through a temporary
file and a rename, like the tables). It holds the number of rounds done, the plans sent to ns-3
as their wire bytes, the trainer's state (global LoRA and head, server optimiser moments, batch
samplers, torch's generator), the policy's state (queues, generators), the loop's own energy
queues, its server time and its rate calibration. A resumed run replays the recorded plans into a
fresh simulator with the same seed, which brings ns-3 back to where it was: ns-3 is deterministic
given its seed and what it was asked to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 4


class ResumeError(ValueError):
    """A run folder cannot be continued; the message says why and what to do instead."""


@dataclass(frozen=True)
class Checkpoint:
    rounds_done: int
    plans: list[tuple[bytes, bytes, bytes]]  # (header, records, steps) of every finished round's plan
    trainer: dict
    policy: dict
    queues: np.ndarray
    calibration: dict

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save({"version": CHECKPOINT_VERSION, "rounds_done": self.rounds_done, "plans": self.plans,
                    "trainer": self.trainer, "policy": self.policy, "queues": self.queues,
                    "calibration": self.calibration}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        try:
            # the run's own file, holding numpy generator states as well as tensors
            data = torch.load(path, weights_only=False)
        except Exception as err:  # torch raises several kinds for a damaged file
            raise ResumeError(f"{path} is unreadable ({type(err).__name__}: {err}); the finished rounds "
                              "are in rounds.parquet but this run cannot be continued: start a new "
                              "one") from None
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
            found = data.get("version") if isinstance(data, dict) else None
            raise ResumeError(f"{path} is checkpoint version {found!r}, this cosim reads version "
                              f"{CHECKPOINT_VERSION}; continue it with the cosim that wrote it")
        if len(data["plans"]) != data["rounds_done"]:
            raise ResumeError(f"{path} is inconsistent: {data['rounds_done']} rounds done but "
                              f"{len(data['plans'])} plans recorded")
        return cls(data["rounds_done"], data["plans"], data["trainer"], data["policy"],
                   np.asarray(data["queues"], float), data["calibration"])
