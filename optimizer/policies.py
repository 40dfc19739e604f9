"""The Lyapunov policies, and the names of every built-in policy (optimizer/policy.py has the interface).

The energy queues are the run's, not a policy's: they arrive in `RoundInputs.energy_queue_j`
(optimizer/scheduler.py). The Lyapunov policies keep their participation queues, the baselines
(optimizer/baselines.py) their generators and pointers, through `state_dict()` / `load_state_dict()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer import baselines
from optimizer.convergence import Phi, partial_participation_phi, round_weight
from optimizer.exact import SOLVERS, ExactSolver
from optimizer.inputs import RoundInputs
from optimizer.lagrangian import solve_lagrangian
from optimizer.plan import Plan
from optimizer.policy import Policy, PolicyContext
from optimizer.problem import RoundProblem
from optimizer.queues import ParticipationQueues
from optimizer.rates import rate_model


@dataclass(frozen=True)
class LyapunovConfig:
    """Knobs of the Lyapunov policies (`policy.*` keys)."""

    v: float = 10.0  # V: the convergence term's weight against the energy queues
    mu_eta: float = 0.0  # μη: ω_t = (1 − μη)^(T−1−t) weighs late rounds more
    solver: str = "auto"  # the MILP's back-end: auto (Gurobi, else HiGHS), gurobi or highs
    rate: str = "paper"  # the rate model plans use (optimizer/rates.py)
    energy_price: float = 0.0  # ε: V·ε·(energy) joins the penalty
    min_participation: float = 0.0  # r: each device in at least a share r of the rounds

    def __post_init__(self) -> None:
        if not (np.isfinite(self.v) and self.v >= 0):
            raise ValueError(f"v={self.v!r} must be finite and >= 0")
        if not (np.isfinite(self.energy_price) and self.energy_price >= 0):
            raise ValueError(f"energy_price={self.energy_price!r} must be finite and >= 0")
        if not 0 <= self.mu_eta < 1:
            raise ValueError(f"mu_eta={self.mu_eta!r} must be in [0, 1)")
        if not 0 <= self.min_participation < 1:
            raise ValueError(f"min_participation={self.min_participation!r} must be in [0, 1)")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r} must be one of {', '.join(SOLVERS)}")
        rate_model(self.rate)  # refuses an unknown one, naming the known ones


class LyapunovPolicy(Policy):
    """Drift-plus-penalty: each round minimise V·(ω_t·Φ(Σa) + ε·Σ a_k E_k) + Σ Q_k a_k E_k(b_k)
    − Σ Z_k a_k. The energy queues Q come with the round's inputs (the run keeps them,
    optimizer/scheduler.py); the policy keeps and updates its participation queues Z.

    `lyapunov` solves the round's MILP (solver 'auto', 'gurobi' or 'highs'); `lyapunov-fast`
    (`LyapunovFastPolicy`) uses the fast price-and-local-search solver. ω_t = (1 − μη)^(T−1−t) over
    the horizon T (the run's rounds). ε, the energy price (0 in the paper), makes energy cost
    something below the budget too: with ε = 0 a device whose queue is empty spends freely, so the
    policy uses its whole budget. With min_participation r > 0 (0 in the paper) each device also has
    a participation queue Z_k (queues.ParticipationQueues) and taking part costs it −Z_k: every
    device takes part in at least a share r of the rounds in the long run, so no device's data is
    left out for good.
    """

    Config = LyapunovConfig
    name = "lyapunov"

    def __init__(self, config: LyapunovConfig, context: PolicyContext,
                 phi: Phi = partial_participation_phi) -> None:
        super().__init__(config, context)
        self.phi = phi
        self.participation: ParticipationQueues | None = None
        self._exact = ExactSolver(config.solver, context.threads)  # once: it remembers a licence refusal

    def _solve(self, problem: RoundProblem) -> Plan:
        return self._exact.solve(problem)

    def plan(self, inputs: RoundInputs) -> Plan:
        if self.participation is None:
            self.participation = ParticipationQueues(inputs.devices, self.config.min_participation)
        z = self.participation.values
        if z.size != inputs.devices:
            raise ValueError(f"policy has queues for {z.size} devices, round has {inputs.devices}")
        c = self.config
        weight = c.v * round_weight(inputs.round_index, self.context.rounds, c.mu_eta)
        return self._solve(RoundProblem(inputs, inputs.energy_queue_j + c.v * c.energy_price, weight,
                                        c.rate, self.phi, device_cost=-z))

    def observe(self, plan: Plan, realised_energy_j: np.ndarray) -> None:
        if self.participation is None:
            raise RuntimeError("observe() before plan()")
        self.participation.update(plan.scheduled)

    def state_dict(self) -> dict:
        return {"participation": None if self.participation is None else self.participation.values}

    def load_state_dict(self, state: dict) -> None:
        z = state.get("participation")
        if z is None and state.get("queues") is not None:  # a checkpoint from before the knob: all 0
            z = np.zeros(len(state["queues"]))
        if z is not None:
            self.participation = ParticipationQueues(len(z), self.config.min_participation)
            self.participation.restore(z)


class LyapunovFastPolicy(LyapunovPolicy):
    """The Lyapunov policy with the Lagrangian solver (optimizer/lagrangian.py) instead of the MILP."""

    name = "lyapunov-fast"

    def _solve(self, problem: RoundProblem) -> Plan:
        return solve_lagrangian(problem)


POLICIES: dict[str, type[Policy]] = {
    "lyapunov": LyapunovPolicy,
    "lyapunov-fast": LyapunovFastPolicy,
    "all-equal": baselines.AllEqual,
    "random-k": baselines.RandomK,
    "round-robin-k": baselines.RoundRobinK,
    "best-channel-k": baselines.BestChannelK,
    "myopic": baselines.Myopic,
    "energy-greedy": baselines.EnergyGreedy,
}
