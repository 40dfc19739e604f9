"""What the scheduler knows about one round, checked once so the solvers can trust it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.history import History

# per-device fields that may be given as one scalar for every device; (name, strictly positive?)
_PER_DEVICE = (
    ("uplink_bytes", True),
    ("downlink_bytes", False),
    ("compute_time_s", False),
    ("server_time_s", False),
    ("server_wait_s", False),
    ("downlink_rate_bps", True),
    ("tx_power_w", True),
    ("compute_energy_j", False),
    ("energy_budget_j", False),
    ("rate_efficiency", True),
    ("energy_queue_j", False),
)
_SCALARS = (("deadline_s", True), ("bandwidth_hz", True), ("snr_gap_db", False))


@dataclass(frozen=True)
class RoundInputs:
    """One round's channel, payloads and device parameters (arrays of K, or scalars broadcast to K).

    `snr_db[k]` is the received SNR when device k transmits over the whole band B; the rate model
    decides how it scales with a share b, and sees it `snr_gap_db` lower (the radio's link
    adaptation keeps that margin to Shannon's bound). Sizes are in bytes and rates in bit/s:
    downlink time is `8 · downlink_bytes / downlink_rate_bps`.
    `energy_budget_j` is the long-term average per-round budget E-bar_k. `rate_efficiency[k]` scales
    the rate model's uplink rate to what the radio achieves (1: the model as it is; the run loop
    learns it from the simulator's outcomes), so predicted delays and energies follow the radio.
    `server_time_s[k]` is the server's compute for device k's round and `server_wait_s[k]` the
    longest it may queue for a free server, which the plan allows for. A device that is not
    `present` (not yet in its mobility trace, or gone) cannot be scheduled. `energy_queue_j[k]` is
    the run's virtual energy queue Q_k, device k's backlog of realised energy over its budget
    (optimizer/scheduler.py keeps it; 0 in a round played on its own). `history` is the rounds
    before, per device (optimizer/history.py; None outside a run).
    """

    snr_db: np.ndarray
    uplink_bytes: np.ndarray | float
    downlink_bytes: np.ndarray | float
    compute_time_s: np.ndarray | float
    downlink_rate_bps: np.ndarray | float
    tx_power_w: np.ndarray | float
    compute_energy_j: np.ndarray | float
    energy_budget_j: np.ndarray | float
    server_time_s: np.ndarray | float
    deadline_s: float
    bandwidth_hz: float
    round_index: int = 0
    rate_efficiency: np.ndarray | float = 1.0
    snr_gap_db: float = 0.0
    server_wait_s: np.ndarray | float = 0.0
    present: np.ndarray | bool = True
    energy_queue_j: np.ndarray | float = 0.0
    history: History | None = None

    def __post_init__(self) -> None:
        snr = np.array(self.snr_db, dtype=float)
        if snr.ndim != 1 or snr.size == 0:
            raise ValueError(f"snr_db must be a non-empty 1-D array, got shape {snr.shape}")
        if not np.all(np.isfinite(snr)):
            bad = np.flatnonzero(~np.isfinite(snr)).tolist()
            raise ValueError(f"snr_db is not finite (NaN or inf) for devices {bad}")
        object.__setattr__(self, "snr_db", snr)
        for name, positive in _PER_DEVICE:
            arr = self._per_device(name, float)
            _check(name, arr, positive)
            object.__setattr__(self, name, arr)
        for name, positive in _SCALARS:
            value = float(getattr(self, name))
            _check(name, np.array([value]), positive)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "present", self._per_device("present", bool))
        if self.history is not None and (not isinstance(self.history, History)
                                         or self.history.devices != self.devices):
            raise ValueError(f"history must be a History of {self.devices} devices, got {self.history!r}")
        if int(self.round_index) < 0:
            raise ValueError(f"round_index={self.round_index} must be >= 0")

    def _per_device(self, name: str, dtype: type) -> np.ndarray:
        """Field `name` as one value per device (a scalar is every device's)."""
        arr, k = np.array(getattr(self, name), dtype=dtype), self.snr_db.size
        try:
            return np.broadcast_to(arr, (k,)).copy()
        except ValueError:
            raise ValueError(f"{name} has shape {arr.shape}, expected a scalar or ({k},)") from None

    @property
    def devices(self) -> int:
        return self.snr_db.size

    @property
    def rate_snr_linear(self) -> np.ndarray:
        """The full-band SNR the rate model takes: the reported one less the link adaptation's gap."""
        return 10.0 ** ((self.snr_db - self.snr_gap_db) / 10.0)

    @property
    def uplink_bits_at_model_rate(self) -> np.ndarray:
        """Uplink bits divided by the rate efficiency: what the rate model must carry in its time."""
        return self.uplink_bytes * 8.0 / self.rate_efficiency

    def fixed_time_s(self) -> np.ndarray:
        """Everything in a device's round except its uplink: compute, server (queue included), downlink."""
        return (self.compute_time_s + self.server_wait_s + self.server_time_s
                + self.downlink_bytes * 8.0 / self.downlink_rate_bps)


def _check(name: str, arr: np.ndarray, positive: bool) -> None:
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (got NaN or inf)")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0 (got {arr.min():g})")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 (got {arr.min():g})")
