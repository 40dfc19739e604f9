"""Synthetic rounds for tests and benchmarks: devices in a cell, i.i.d. Rayleigh fading per round."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from optimizer.inputs import RoundInputs


@dataclass(frozen=True)
class RayleighChannel:
    """Each device has a mean SNR; every round draws |h|² ~ Exp(1) around it, independently."""

    base: RoundInputs
    mean_snr_db: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean_snr_db, dtype=float)
        if mean.shape != self.base.snr_db.shape or not np.all(np.isfinite(mean)):
            raise ValueError(f"mean_snr_db must be finite with shape {self.base.snr_db.shape}")
        object.__setattr__(self, "mean_snr_db", mean)

    def round(self, t: int, rng: np.random.Generator) -> RoundInputs:
        fading_db = 10.0 * np.log10(rng.exponential(1.0, self.mean_snr_db.size))
        return replace(self.base, snr_db=self.mean_snr_db + fading_db, round_index=t)


def random_inputs(rng: np.random.Generator, k: int, deadline_s: float = 10.0,
                  mean_snr_db: tuple[float, float] = (0.0, 30.0)) -> RoundInputs:
    """A random round around docs/design.md's defaults: 20 MHz, 200 mW, MB-scale payloads, 10 s deadline.

    The deadline is tuned so that roughly half the devices fit at equal shares for K around 10.
    """
    return RoundInputs(
        snr_db=rng.uniform(*mean_snr_db, k),
        uplink_bytes=rng.uniform(0.5e6, 3e6, k),
        downlink_bytes=rng.uniform(0.5e6, 3e6, k),
        compute_time_s=rng.uniform(0.5, 3.0, k),
        downlink_rate_bps=rng.uniform(20e6, 100e6, k),
        tx_power_w=0.2,
        compute_energy_j=rng.uniform(0.05, 0.3, k),
        energy_budget_j=rng.uniform(0.2, 0.8, k),
        server_time_s=0.5,
        deadline_s=deadline_s,
        bandwidth_hz=20e6,
    )
