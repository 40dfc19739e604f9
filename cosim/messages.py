"""Typed Python views of what crosses the bridge each round.

Each object holds a copy of the records as a numpy structured array (field names carry units)
and turns into a tidy pandas DataFrame with ``to_frame()``: one row per device.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cosim import layout


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


@dataclass(frozen=True)
class RoundPlan:
    """What each device does this round; validated at construction."""

    round_index: int
    scheduled: np.ndarray  # bool, one per device
    bandwidth_share: np.ndarray  # b_k in [0, 1]
    uplink_bytes: np.ndarray  # int
    downlink_bytes: np.ndarray  # int
    compute_time_s: np.ndarray  # device computation before its uplink
    deadline_s: float
    server_time_s: np.ndarray | float = 0.0  # server computation per device, queued in arrival order
    server_count: int = 1  # accelerators of the server

    def __post_init__(self) -> None:
        k = len(self.scheduled)
        cols = {
            "scheduled": np.asarray(self.scheduled, dtype=bool),
            "bandwidth_share": np.asarray(self.bandwidth_share, dtype=float),
            "uplink_bytes": np.asarray(self.uplink_bytes, dtype=np.int64),
            "downlink_bytes": np.asarray(self.downlink_bytes, dtype=np.int64),
            "compute_time_s": np.asarray(self.compute_time_s, dtype=float),
            "server_time_s": np.broadcast_to(np.asarray(self.server_time_s, dtype=float), (k,)).copy(),
        }
        for name, arr in cols.items():
            if arr.shape != (k,):
                raise ValueError(f"plan.{name} has shape {arr.shape}, expected ({k},)")
            object.__setattr__(self, name, arr)
        b = cols["bandwidth_share"]
        if not np.all(np.isfinite(b)) or np.any(b < 0) or np.any(b > 1):
            raise ValueError("plan.bandwidth_share must be finite and in [0, 1]")
        total = float(b[cols["scheduled"]].sum())
        if total > 1 + 1e-9:
            raise ValueError(f"plan.bandwidth_share of scheduled devices sums to {total:.6f} > 1")
        if np.any(cols["scheduled"] & (b <= 0)):
            bad = np.flatnonzero(cols["scheduled"] & (b <= 0)).tolist()
            raise ValueError(f"plan schedules devices {bad} with a zero bandwidth share")
        if np.any(cols["uplink_bytes"] < 0) or np.any(cols["downlink_bytes"] < 0):
            raise ValueError("plan payload bytes must be >= 0")
        for name in ("compute_time_s", "server_time_s"):
            if not np.all(np.isfinite(cols[name])) or np.any(cols[name] < 0):
                raise ValueError(f"plan.{name} must be finite and >= 0")
        if not (np.isfinite(self.deadline_s) and self.deadline_s > 0):
            raise ValueError(f"plan.deadline_s={self.deadline_s!r} must be > 0")
        if not (isinstance(self.server_count, int | np.integer) and self.server_count >= 1):
            raise ValueError(f"plan.server_count={self.server_count!r} must be an integer >= 1")

    @classmethod
    def equal_shares(cls, round_index: int, scheduled, uplink_bytes, downlink_bytes,
                     deadline_s: float, compute_time_s=0.0, server_time_s=0.0) -> RoundPlan:
        """The simplest plan: the scheduled devices split the band equally."""
        scheduled = np.asarray(scheduled, dtype=bool)
        k = len(scheduled)
        n = max(int(scheduled.sum()), 1)
        return cls(round_index, scheduled, np.where(scheduled, 1.0 / n, 0.0),
                   np.broadcast_to(uplink_bytes, (k,)), np.broadcast_to(downlink_bytes, (k,)),
                   np.broadcast_to(compute_time_s, (k,)), deadline_s, server_time_s)

    @property
    def num_devices(self) -> int:
        return len(self.scheduled)

    @functools.cached_property
    def wire(self) -> tuple[bytes, bytes]:
        """The plan as the bytes of its header and records, built once however often it is sent."""
        k = self.num_devices
        header = np.zeros(1, layout.PLAN_HEADER.dtype)
        header[0] = (self.round_index, k, self.deadline_s, self.server_count)
        r = np.zeros(k, layout.PLAN_RECORD.dtype)
        r["device_id"] = np.arange(k)
        r["scheduled"] = self.scheduled
        r["bandwidth_share"] = np.where(self.scheduled, self.bandwidth_share, 0.0)
        r["uplink_bytes"] = np.where(self.scheduled, self.uplink_bytes, 0)
        r["downlink_bytes"] = np.where(self.scheduled, self.downlink_bytes, 0)
        r["compute_time_s"] = self.compute_time_s
        r["server_time_s"] = self.server_time_s
        return header.tobytes(), r.tobytes()

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "round": self.round_index,
            "device_id": np.arange(self.num_devices),
            "scheduled": self.scheduled,
            "bandwidth_share": self.bandwidth_share,
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

    @property
    def delivered(self) -> np.ndarray:
        """Devices whose uplink and downlink both finished by the deadline."""
        return self.records["deadline_met"].astype(bool)

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.records)
        for col in ("scheduled", "deadline_met"):
            df[col] = df[col].astype(bool)
        df.insert(0, "round", self.round_index)
        return df


def read_report(header: bytes | np.ndarray, records: bytes | np.ndarray) -> ChannelReport:
    """Parse a report from the bytes (or raw uint8 views) of its header and records."""
    h = np.frombuffer(header, layout.REPORT_HEADER.dtype, count=1)[0].item()
    round_index, k, sim_time_s, bandwidth_hz, noise_psd = h
    recs = np.frombuffer(records, layout.REPORT_RECORD.dtype, count=k).copy()
    return ChannelReport(round_index, sim_time_s, bandwidth_hz, noise_psd, recs)


def read_outcome(header: bytes | np.ndarray, records: bytes | np.ndarray) -> RoundOutcome:
    """Parse an outcome from the bytes (or raw uint8 views) of its header and records."""
    round_index, k, start_s, duration_s = np.frombuffer(
        header, layout.OUTCOME_HEADER.dtype, count=1)[0].item()
    recs = np.frombuffer(records, layout.OUTCOME_RECORD.dtype, count=k).copy()
    return RoundOutcome(round_index, start_s, duration_s, recs)


def read_plan(header: bytes | np.ndarray, records: bytes | np.ndarray) -> RoundPlan:
    """Parse a plan from its wire bytes (a resumed run replays the recorded plans into ns-3)."""
    round_index, k, deadline_s, server_count = np.frombuffer(
        header, layout.PLAN_HEADER.dtype, count=1)[0].item()
    r = np.frombuffer(records, layout.PLAN_RECORD.dtype, count=k)
    return RoundPlan(round_index, r["scheduled"].astype(bool), r["bandwidth_share"], r["uplink_bytes"],
                     r["downlink_bytes"], r["compute_time_s"], deadline_s, r["server_time_s"],
                     int(server_count))
