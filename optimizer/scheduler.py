"""A policy with what the run keeps for it across rounds: the energy queues and the history.

The queues are the run's account of its long-term energy constraint, kept whatever the policy: every
round's inputs carry them (`RoundInputs.energy_queue_j`), so the Lyapunov policy prices energy with
them, any other policy may read them, and the run reports them (`queue_j`). The history (what was
scheduled, delivered, how long it took, what it cost, what was reported) reaches the policy the same
way (`RoundInputs.history`). The run loop against ns-3 and the synthetic studies both go through here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from optimizer.history import History
from optimizer.inputs import RoundInputs
from optimizer.plan import Plan
from optimizer.policy import Policy
from optimizer.queues import VirtualQueues


class Scheduler:
    """`plan` hands the policy the round's inputs with the queues and the history; `observe` records
    the round and charges what was spent."""

    def __init__(self, policy: Policy, devices: int) -> None:
        self.policy = policy
        self.queues = VirtualQueues(devices)
        self.history = History(devices)

    def plan(self, inputs: RoundInputs) -> tuple[RoundInputs, Plan]:
        """The inputs as the policy saw them (queues and history included) and its plan."""
        inputs = replace(inputs, energy_queue_j=self.queues.values, history=self.history)
        return inputs, self.policy.plan(inputs)

    def observe(self, inputs: RoundInputs, plan: Plan, realised_energy_j: np.ndarray,
                delivered: np.ndarray | None = None, delay_s: np.ndarray | None = None) -> None:
        """What the scheduled devices spent (measured, so the model's error is corrected), which
        updates were delivered and when they completed (by default: as planned)."""
        spent = np.where(plan.scheduled, np.asarray(realised_energy_j, dtype=float), 0.0)
        self.policy.observe(plan, spent)
        self.queues.update(plan.scheduled, spent, inputs.energy_budget_j)
        delivered = plan.scheduled if delivered is None else np.asarray(delivered, bool) & plan.scheduled
        delay = np.where(plan.scheduled, plan.predicted_delay_s, np.nan) if delay_s is None else delay_s
        self.history.record(plan.scheduled, delivered, delay, spent, inputs.snr_db)
