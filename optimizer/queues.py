"""Virtual energy queues: the Lyapunov device that turns long-term budgets into per-round prices."""

from __future__ import annotations

import numpy as np


class VirtualQueues:
    """Q_k(t+1) = max(Q_k(t) + a_k E_k^realised − E-bar_k, 0): backlog of energy over budget [J]."""

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
            raise ValueError(f"queue values must be {self._q.size} finite numbers >= 0")
        self._q = q

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


class ParticipationQueues:
    """Z_k(t+1) = max(Z_k(t) + r − a_k, 0): how many rounds device k is behind taking part in a
    share r of them. Minus Z_k, as a device's cost of taking part, makes the Lyapunov policy keep
    every device's long-run participation at r or more."""

    def __init__(self, devices: int, rate: float) -> None:
        if devices < 1:
            raise ValueError(f"devices={devices} must be >= 1")
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"min_participation={rate} must be in [0, 1)")
        self.rate = rate
        self._z = np.zeros(devices)

    @property
    def values(self) -> np.ndarray:
        return self._z.copy()

    def restore(self, values: np.ndarray) -> None:
        """Set the deficits (from `values` of a checkpoint)."""
        z = np.array(values, dtype=float)
        if z.shape != self._z.shape or not np.all(np.isfinite(z)) or np.any(z < 0):
            raise ValueError(f"participation deficits must be {self._z.size} finite numbers >= 0")
        self._z = z

    def update(self, scheduled: np.ndarray) -> None:
        a = np.asarray(scheduled, dtype=bool)
        if a.shape != self._z.shape:
            raise ValueError(f"scheduled has shape {a.shape}, expected {self._z.shape}")
        self._z = np.maximum(self._z + self.rate - a, 0.0)
