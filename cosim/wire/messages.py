"""Typed Python views of what crosses the bridge each round.

Each object holds a copy of the records as a numpy structured array (field names carry units)
and turns into a tidy pandas DataFrame with ``to_frame()``: one row per device.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cosim.wire import layout
from cosim.wire.steps import STEP_KINDS, Step, lumped_steps


@dataclass(frozen=True)
class ChannelReport:
    """What the base station measured of every device at the start of a round."""

    round_index: int
    sim_time_s: float
    bandwidth_hz: float
    noise_psd_dbm_hz: float
    records: np.ndarray  # layout.REPORT_RECORD.dtype, one per device

    @property
    def snr_db(self) -> np.ndarray:
        return self.records["snr_db"]

    @property
    def present(self) -> np.ndarray:
        """Devices in the scenario now: a trace's device may not have entered yet, or have left."""
        return self.records["present"].astype(bool)

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.records)
        df.insert(0, "round", self.round_index)
        df.insert(1, "sim_time_s", self.sim_time_s)
        return df


_STEP_CODES = {kind: layout.STEP_KINDS["STEP_" + kind.upper()] for kind in STEP_KINDS}
_STEP_NAMES = {code: kind for kind, code in _STEP_CODES.items()}


@dataclass(frozen=True)
class RoundPlan:
    """What each device does this round: whether it goes, its share of the band and its round's steps
    (cosim/experiment/protocol.py). An unscheduled device has no steps. Validated at construction."""

    round_index: int
    scheduled: np.ndarray  # bool, one per device
    bandwidth_share: np.ndarray  # b_k in [0, 1]
    steps: Sequence[Sequence[Step]]  # per device, in order
    deadline_s: float
    server_count: int = 1  # accelerators of the server, serving requests in arrival order

    def __post_init__(self) -> None:
        scheduled = np.asarray(self.scheduled, dtype=bool)
        k = len(scheduled)
        b = np.asarray(self.bandwidth_share, dtype=float)
        if scheduled.shape != (k,) or b.shape != (k,):
            raise ValueError(f"plan.bandwidth_share has shape {b.shape}, expected ({k},)")
        if len(self.steps) != k:
            raise ValueError(f"plan.steps has {len(self.steps)} devices' steps, expected {k}")
        steps = tuple(tuple(device) if go else () for device, go in zip(self.steps, scheduled, strict=True))
        for device in steps:
            for step in device:
                if not isinstance(step, Step):
                    raise ValueError(f"plan.steps holds {step!r}, not a cosim.wire.steps.Step")
        object.__setattr__(self, "scheduled", scheduled)
        object.__setattr__(self, "bandwidth_share", b)
        object.__setattr__(self, "steps", steps)
        if not np.all(np.isfinite(b)) or np.any(b < 0) or np.any(b > 1):
            raise ValueError("plan.bandwidth_share must be finite and in [0, 1]")
        total = float(b[scheduled].sum())
        if total > 1 + 1e-9:
            raise ValueError(f"plan.bandwidth_share of scheduled devices sums to {total:.6f} > 1")
        if np.any(scheduled & (b <= 0)):
            bad = np.flatnonzero(scheduled & (b <= 0)).tolist()
            raise ValueError(f"plan schedules devices {bad} with a zero bandwidth share")
        if not (np.isfinite(self.deadline_s) and self.deadline_s > 0):
            raise ValueError(f"plan.deadline_s={self.deadline_s!r} must be > 0")
        if not (isinstance(self.server_count, int | np.integer) and self.server_count >= 1):
            raise ValueError(f"plan.server_count={self.server_count!r} must be an integer >= 1")

    @classmethod
    def lumped(cls, round_index: int, scheduled, bandwidth_share, uplink_bytes, downlink_bytes,
               compute_time_s, deadline_s: float, server_time_s=0.0, server_count: int = 1) -> RoundPlan:
        """Every device's round as the paper has it: compute, all bytes up, the server, all bytes down."""
        k = len(scheduled)
        cols = [np.broadcast_to(np.asarray(v), (k,)) for v in (uplink_bytes, downlink_bytes, compute_time_s,
                                                                 server_time_s)]
        if any(np.any(c < 0) for c in cols[:2]):
            raise ValueError("plan payload bytes must be >= 0")
        steps = [lumped_steps(*(c[i] for c in cols)) for i in range(k)]
        return cls(round_index, scheduled, bandwidth_share, steps, deadline_s, server_count)

    @classmethod
    def equal_shares(cls, round_index: int, scheduled, uplink_bytes, downlink_bytes,
                     deadline_s: float, compute_time_s=0.0, server_time_s=0.0) -> RoundPlan:
        """The simplest plan: the scheduled devices split the band equally, lumped rounds."""
        scheduled = np.asarray(scheduled, dtype=bool)
        n = max(int(scheduled.sum()), 1)
        return cls.lumped(round_index, scheduled, np.where(scheduled, 1.0 / n, 0.0), uplink_bytes,
                          downlink_bytes, compute_time_s, deadline_s, server_time_s)

    @property
    def num_devices(self) -> int:
        return len(self.scheduled)

    @property
    def num_steps(self) -> int:
        return sum(len(device) for device in self.steps)

    def _total(self, kind: str, attr: str) -> np.ndarray:
        return np.array([sum(getattr(s, attr) for s in device if s.kind == kind) for device in self.steps])

    @property
    def uplink_bytes(self) -> np.ndarray:
        return self._total("uplink", "bytes").astype(np.int64)

    @property
    def downlink_bytes(self) -> np.ndarray:
        return self._total("downlink", "bytes").astype(np.int64)

    @property
    def compute_time_s(self) -> np.ndarray:
        return self._total("device_compute", "seconds").astype(float)

    @property
    def server_time_s(self) -> np.ndarray:
        return self._total("server_compute", "seconds").astype(float)

    @functools.cached_property
    def wire(self) -> tuple[bytes, bytes, bytes]:
        """The plan as the bytes of its header, device records and steps, built once."""
        k, n = self.num_devices, self.num_steps
        header = np.zeros(1, layout.PLAN_HEADER.dtype)
        header[0] = (self.round_index, k, n, self.deadline_s, self.server_count)
        counts = np.array([len(device) for device in self.steps], dtype=np.int64)
        r = np.zeros(k, layout.PLAN_RECORD.dtype)
        r["device_id"] = np.arange(k)
        r["scheduled"] = self.scheduled
        r["bandwidth_share"] = np.where(self.scheduled, self.bandwidth_share, 0.0)
        r["first_step"] = np.cumsum(counts) - counts
        r["step_count"] = counts
        steps = np.zeros(n, layout.PLAN_STEP.dtype)
        steps[:] = [(d, _STEP_CODES[s.kind], s.local_step, i, s.bytes, s.seconds)
                    for d, device in enumerate(self.steps) for i, s in enumerate(device)]
        return header.tobytes(), r.tobytes(), steps.tobytes()

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "round": self.round_index,
            "device_id": np.arange(self.num_devices),
            "scheduled": self.scheduled,
            "bandwidth_share": self.bandwidth_share,
            "steps": [len(device) for device in self.steps],
            "uplink_bytes": self.uplink_bytes,
            "downlink_bytes": self.downlink_bytes,
            "compute_time_s": self.compute_time_s,
            "server_time_s": self.server_time_s,
        })


@dataclass(frozen=True)
class RoundOutcome:
    """What the simulated network did for every device in one round."""

    round_index: int
    round_start_s: float
    round_duration_s: float
    records: np.ndarray  # layout.OUTCOME_RECORD.dtype, one per device
    steps: np.ndarray  # layout.OUTCOME_STEP.dtype, one per plan step, in the plan's order

    @property
    def delivered(self) -> np.ndarray:
        """Devices whose every step (the update's upload included) finished by the deadline."""
        return self.records["deadline_met"].astype(bool)

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.records)
        for col in ("scheduled", "deadline_met"):
            df[col] = df[col].astype(bool)
        df.insert(0, "round", self.round_index)
        return df

    def steps_frame(self, plan: RoundPlan) -> pd.DataFrame:
        """One row per step of `plan` (the plan this outcome answers): what it was and when it ran."""
        df = pd.DataFrame(self.steps)
        planned = np.frombuffer(plan.wire[2], layout.PLAN_STEP.dtype)
        df.insert(0, "round", self.round_index)
        df.insert(3, "kind", [_STEP_NAMES[int(c)] for c in planned["kind"]])
        df.insert(4, "local_step", planned["local_step"].astype(int))
        df.insert(5, "bytes", planned["bytes"].astype(np.int64))
        df.insert(6, "seconds", planned["seconds"])
        return df


def read_report(header: bytes | np.ndarray, records: bytes | np.ndarray) -> ChannelReport:
    """Parse a report from the bytes (or raw uint8 views) of its header and records."""
    h = np.frombuffer(header, layout.REPORT_HEADER.dtype, count=1)[0].item()
    round_index, k, sim_time_s, bandwidth_hz, noise_psd = h
    recs = np.frombuffer(records, layout.REPORT_RECORD.dtype, count=k).copy()
    return ChannelReport(round_index, sim_time_s, bandwidth_hz, noise_psd, recs)


def read_outcome(header: bytes | np.ndarray, records: bytes | np.ndarray,
                 steps: bytes | np.ndarray) -> RoundOutcome:
    """Parse an outcome from the bytes (or raw uint8 views) of its header, records and steps."""
    round_index, k, n, start_s, duration_s = np.frombuffer(
        header, layout.OUTCOME_HEADER.dtype, count=1)[0].item()
    recs = np.frombuffer(records, layout.OUTCOME_RECORD.dtype, count=k).copy()
    return RoundOutcome(round_index, start_s, duration_s, recs,
                        np.frombuffer(steps, layout.OUTCOME_STEP.dtype, count=n).copy())


def read_plan(header: bytes | np.ndarray, records: bytes | np.ndarray,
              steps: bytes | np.ndarray) -> RoundPlan:
    """Parse a plan from its wire bytes (a resumed run replays the recorded plans into ns-3)."""
    round_index, k, n, deadline_s, server_count = np.frombuffer(
        header, layout.PLAN_HEADER.dtype, count=1)[0].item()
    r = np.frombuffer(records, layout.PLAN_RECORD.dtype, count=k)
    wire_steps = np.frombuffer(steps, layout.PLAN_STEP.dtype, count=n)
    per_device = []
    for rec in r:
        first, count = int(rec["first_step"]), int(rec["step_count"])
        if first + count > n:
            raise ValueError(f"plan gives device {int(rec['device_id'])} steps beyond the plan's {n}")
        per_device.append(tuple(_read_step(s) for s in wire_steps[first:first + count]))
    return RoundPlan(round_index, r["scheduled"].astype(bool), r["bandwidth_share"], per_device,
                     deadline_s, int(server_count))


def _read_step(s: np.void) -> Step:
    code = int(s["kind"])
    if code not in _STEP_NAMES:
        raise ValueError(f"plan step of kind {code}, not one of {sorted(_STEP_NAMES)}")
    return Step(_STEP_NAMES[code], int(s["bytes"]), float(s["seconds"]), int(s["local_step"]))
