"""Online calibration of the scheduler's rate model to the simulated radio.

The rate models (Shannon capacity of the share) promise more than a radio delivers: ns-3's radios
adapt their modulation with a margin, cap the spectral efficiency, lose packets and retransmit,
and LTE adds TCP and RLC. Plans sized by the model alone put devices at the share that just meets
the deadline, and then miss it. After every round each scheduled device's measured uplink rate
(delivered bits over the time its uplink took, or over its airtime when it did not finish) over
the rate the plan assumed at its share is an efficiency sample; each device keeps an exponentially
weighted mean of their logarithms, and devices not measured yet take the median of those that
were. The scheduler multiplies the model's rate by η_k (`RoundInputs.rate_efficiency`).
"""

from __future__ import annotations

import numpy as np

from optimizer import Plan, RoundInputs

EFFICIENCY_RANGE = (0.02, 2.0)  # samples are clipped to this: a lost upload is not a zero rate


class RateCalibration:
    """Per-device rate efficiency η_k learnt from outcomes (1 for every device until one is seen)."""

    def __init__(self, devices: int, weight: float = 0.5) -> None:
        if not 0 < weight <= 1:
            raise ValueError(f"weight={weight} must be in (0, 1]")
        self.weight = weight
        self._log = np.full(devices, np.nan)

    @property
    def efficiency(self) -> np.ndarray:
        known = np.isfinite(self._log)
        if not known.any():
            return np.ones(self._log.size)
        return np.exp(np.where(known, self._log, np.median(self._log[known])))

    def samples(self, inputs: RoundInputs, plan: Plan, records: np.ndarray) -> np.ndarray:
        """This round's efficiency per device (NaN where it says nothing: not scheduled, never sent)."""
        bits = records["uplink_delivered_bytes"] * 8.0
        finished = records["uplink_delivered_bytes"] >= inputs.uplink_bytes
        took = np.where(finished, records["uplink_transfer_s"], records["airtime_s"])
        model_time = plan.predicted_delay_s - inputs.fixed_time_s()  # uplink time the plan assumed
        model_rate = inputs.uplink_bits_at_model_rate / np.where(model_time > 0, model_time, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            sample = bits / took / model_rate
        sample = np.clip(sample, *EFFICIENCY_RANGE)
        informative = plan.scheduled & (took > 0) & np.isfinite(sample)
        return np.where(informative, sample, np.nan)

    def update(self, inputs: RoundInputs, plan: Plan, records: np.ndarray) -> None:
        sample = np.log(self.samples(inputs, plan, records))
        seen = np.isfinite(sample)
        old = np.where(np.isfinite(self._log), self._log, sample)
        self._log = np.where(seen, (1 - self.weight) * old + self.weight * sample, self._log)

    def state_dict(self) -> dict:
        return {"log_efficiency": self._log.copy(), "weight": self.weight}

    def load_state_dict(self, state: dict) -> None:
        self._log, self.weight = np.array(state["log_efficiency"], float), float(state["weight"])
