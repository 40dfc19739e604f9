"""A policy together with the run's energy queues: the one owner of Q_k.

The queues are the run's account of its long-term energy constraint, kept whatever the policy: every
round's inputs carry them (`RoundInputs.energy_queue_j`), so the Lyapunov policy prices energy with
them, any other policy may read them, and the run reports them (`queue_j`). The run loop against
ns-3 and the synthetic studies (optimizer/synthetic.py) both go through this class.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from optimizer.inputs import RoundInputs
from optimizer.plan import Plan
from optimizer.policies import Policy
from optimizer.queues import VirtualQueues


class QueuedPolicy:
    """`plan` hands the policy the round's inputs with the queues; `observe` charges what was spent."""

    def __init__(self, policy: Policy, devices: int) -> None:
        self.policy = policy
        self.queues = VirtualQueues(devices)

    def plan(self, inputs: RoundInputs) -> tuple[RoundInputs, Plan]:
        """The inputs as the policy saw them (queues included) and its plan."""
        inputs = replace(inputs, energy_queue_j=self.queues.values)
        return inputs, self.policy.plan(inputs)

    def observe(self, inputs: RoundInputs, plan: Plan, realised_energy_j: np.ndarray) -> None:
        """What the scheduled devices spent (measured, so the model's error is corrected)."""
        self.policy.observe(plan, realised_energy_j)
        self.queues.update(plan.scheduled, realised_energy_j, inputs.energy_budget_j)
