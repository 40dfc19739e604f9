"""Proportional fair over reported SNR: each round the k devices whose channel is best relative to
their own average so far, each given its deadline's minimum share plus an equal part of the rest.

Run it with `policy.name=proportional_fair:ProportionalFair` (this file's folder on PYTHONPATH)."""

import time
from dataclasses import dataclass

import numpy as np

from optimizer import Plan, Policy, RoundInputs, RoundProblem, empty_plan, make_plan


@dataclass(frozen=True)
class ProportionalFairConfig:
    k: int = 3  # devices per round: `policy.k`

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k={self.k} must be >= 1")


class ProportionalFair(Policy):
    Config = ProportionalFairConfig
    name = "proportional-fair"

    def plan(self, inputs: RoundInputs) -> Plan:
        start = time.perf_counter()
        # no queues, unit weight: the problem only supplies β_k, each device's deadline-minimum share
        problem = RoundProblem(inputs, np.zeros(inputs.devices), 1.0)
        snr = 10.0 ** (inputs.snr_db / 10.0)
        seen = inputs.history.snr_db if inputs.history is not None and inputs.history.rounds else None
        average = snr if seen is None else (10.0 ** (seen / 10.0)).mean(axis=0)
        candidates = problem.feasible[np.argsort(-(snr / average)[problem.feasible], kind="stable")]
        chosen = candidates[: self.config.k]
        while chosen.size and problem.beta[chosen].sum() > 1.0:  # keep the minimum shares within the band
            chosen = chosen[:-1]
        if chosen.size == 0:
            return empty_plan(problem, "no device can meet the deadline", solver=self.name, license="n/a",
                              solve_time_s=time.perf_counter() - start)
        chosen = np.sort(chosen)
        beta = problem.beta[chosen]
        shares = beta + (1.0 - beta.sum()) / chosen.size
        return make_plan(problem, chosen, shares, solver=self.name, license="n/a",
                         solve_time_s=time.perf_counter() - start, queues=False)
