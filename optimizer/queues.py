"""Virtual queues: the Lyapunov device that turns long-term constraints into per-round prices."""

from __future__ import annotations

import numpy as np


class _Backlogs:
    """One non-negative backlog per device, readable and restorable (checkpoints)."""

    what = "backlog"

    def __init__(self, devices: int) -> None:
        if devices < 1:
            raise ValueError(f"devices={devices} must be >= 1")
        self._q = np.zeros(devices)

    @property
    def values(self) -> np.ndarray:
        return self._q.copy()

    def restore(self, values: np.ndarray) -> None:
        """Set the backlogs (from `values` of a checkpoint)."""
        q = np.array(values, dtype=float)
        if q.shape != self._q.shape or not np.all(np.isfinite(q)) or np.any(q < 0):
            raise ValueError(f"{self.what} values must be {self._q.size} finite numbers >= 0")
        self._q = q


class VirtualQueues(_Backlogs):
    """Q_k(t+1) = max(Q_k(t) + a_k E_k^realised − E-bar_k, 0): backlog of energy over budget [J].
    The run's, whatever its policy (optimizer/scheduler.py)."""

    what = "queue"

    def update(self, scheduled: np.ndarray, realised_energy_j: np.ndarray, budget_j: np.ndarray) -> None:
        """Charge what scheduled devices really spent (as measured, so model error is corrected)."""
        k = self._q.size
        a = np.asarray(scheduled, dtype=bool)
        spent = np.asarray(realised_energy_j, dtype=float)
        budget = np.broadcast_to(np.asarray(budget_j, dtype=float), (k,))
        for name, arr in (("scheduled", a), ("realised_energy_j", spent)):
            if arr.shape != (k,):
                raise ValueError(f"{name} has shape {arr.shape}, expected ({k},)")
        if not np.all(np.isfinite(spent[a])) or np.any(spent[a] < 0):
            raise ValueError("realised_energy_j of scheduled devices must be finite and >= 0")
        if not np.all(np.isfinite(budget)) or np.any(budget < 0):
            raise ValueError("energy budget must be finite and >= 0")
        self._q = np.maximum(self._q + np.where(a, spent, 0.0) - budget, 0.0)


class ParticipationQueues(_Backlogs):
    """Z_k(t+1) = max(Z_k(t) + r − a_k, 0): how many rounds device k is behind taking part in a
    share r of them. Minus Z_k, as a device's cost of taking part, makes the Lyapunov policy keep
    every device's long-run participation at r or more."""

    what = "participation deficit"

    def __init__(self, devices: int, rate: float) -> None:
        super().__init__(devices)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"min_participation={rate} must be in [0, 1)")
        self.rate = rate

    def update(self, scheduled: np.ndarray) -> None:
        a = np.asarray(scheduled, dtype=bool)
        if a.shape != self._q.shape:
            raise ValueError(f"scheduled has shape {a.shape}, expected {self._q.shape}")
        self._q = np.maximum(self._q + self.rate - a, 0.0)
