"""One step of a device's round as the plan carries it: a computation (seconds) or a message (bytes).

The run decides which steps a round has (cosim/experiment/protocol.py); ns-3 walks them
(ns3_scenarios/cosim-protocol.h). The wire format (cosim/wire/messages.py) encodes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STEP_KINDS = ("device_compute", "server_compute", "uplink", "downlink")  # the order of layout.STEP_KINDS
MESSAGE_KINDS = ("uplink", "downlink")


@dataclass(frozen=True)
class Step:
    """One step of a device's round: a computation of `seconds` or a message of `bytes`.

    `local_step` is the local training step (1..τ) it belongs to; 0 for the round's opening and
    closing (the global device part coming down, the update going up)."""

    kind: str
    bytes: int = 0
    seconds: float = 0.0
    local_step: int = 0

    def __post_init__(self) -> None:
        if self.kind not in STEP_KINDS:
            raise ValueError(f"step kind {self.kind!r} is not one of {STEP_KINDS}")
        if self.kind in MESSAGE_KINDS:
            if int(self.bytes) != self.bytes or self.bytes < 0 or self.seconds != 0:
                raise ValueError(f"a {self.kind} step has a whole number of bytes >= 0 and no seconds, "
                                 f"got bytes={self.bytes!r}, seconds={self.seconds!r}")
            object.__setattr__(self, "bytes", int(self.bytes))
        elif self.bytes != 0 or not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise ValueError(f"a {self.kind} step has finite seconds >= 0 and no bytes, "
                             f"got seconds={self.seconds!r}, bytes={self.bytes!r}")
        if int(self.local_step) != self.local_step or self.local_step < 0:
            raise ValueError(f"local_step={self.local_step!r} must be a whole number >= 0")

    @property
    def is_message(self) -> bool:
        return self.kind in MESSAGE_KINDS


def lumped_steps(uplink_bytes: int, downlink_bytes: int, compute_s: float = 0.0,
                 server_s: float = 0.0) -> tuple[Step, ...]:
    """The paper's round: compute, everything up, the server, everything down."""
    return (Step("device_compute", seconds=float(compute_s)), Step("uplink", bytes=int(uplink_bytes)),
            Step("server_compute", seconds=float(server_s)), Step("downlink", bytes=int(downlink_bytes)))
