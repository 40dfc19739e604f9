"""What happened in the rounds before: the read-only view a policy gets in `RoundInputs.history`."""

from __future__ import annotations

import numpy as np


class History:
    """The rounds before this one, per device, read-only: a policy's view of what happened.

    Row t of each array is round t (columns: devices). `scheduled` and `delivered` are booleans
    (delivered: the update arrived and was aggregated); `delay_s` is the realised completion time
    (NaN where not scheduled or not completed); `energy_j` the realised energy (0 where not
    scheduled); `snr_db` the reported SNR of every device."""

    def __init__(self, devices: int) -> None:
        self.devices = devices
        self._rows: dict[str, list[np.ndarray]] = {k: [] for k in ("scheduled", "delivered", "delay_s",
                                                                    "energy_j", "snr_db")}

    def record(self, scheduled: np.ndarray, delivered: np.ndarray, delay_s: np.ndarray,
               energy_j: np.ndarray, snr_db: np.ndarray) -> None:
        """Append one round (the run does this after each round, and on resume from its tables)."""
        row = {"scheduled": np.asarray(scheduled, bool), "delivered": np.asarray(delivered, bool),
               "delay_s": np.asarray(delay_s, float), "energy_j": np.asarray(energy_j, float),
               "snr_db": np.asarray(snr_db, float)}
        for name, value in row.items():
            if value.shape != (self.devices,):
                raise ValueError(f"history {name} has shape {value.shape}, expected ({self.devices},)")
            self._rows[name].append(value.copy())

    @property
    def rounds(self) -> int:
        return len(self._rows["scheduled"])

    def _table(self, name: str, dtype: type) -> np.ndarray:
        rows = self._rows[name]
        table = np.array(rows, dtype=dtype) if rows else np.zeros((0, self.devices), dtype=dtype)
        table.flags.writeable = False
        return table

    @property
    def scheduled(self) -> np.ndarray:
        return self._table("scheduled", bool)

    @property
    def delivered(self) -> np.ndarray:
        return self._table("delivered", bool)

    @property
    def delay_s(self) -> np.ndarray:
        return self._table("delay_s", float)

    @property
    def energy_j(self) -> np.ndarray:
        return self._table("energy_j", float)

    @property
    def snr_db(self) -> np.ndarray:
        return self._table("snr_db", float)

    @property
    def participation(self) -> np.ndarray:
        """Rounds each device was scheduled in."""
        return self.scheduled.sum(axis=0)

    @property
    def deliveries(self) -> np.ndarray:
        """Rounds each device's update was delivered in."""
        return self.delivered.sum(axis=0)

    @property
    def last_snr_db(self) -> np.ndarray:
        """Each device's SNR reported in the last round (NaN before the first)."""
        return self.snr_db[-1] if self.rounds else np.full(self.devices, np.nan)
