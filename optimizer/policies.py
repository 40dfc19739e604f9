"""Scheduling policies behind one interface, selectable by name.

Every policy answers `plan(inputs) -> Plan` each round and hears `observe(plan, realised_energy_j)`
afterwards with what the network measured. The energy queues are the run's, not a policy's: they
arrive in `RoundInputs.energy_queue_j` (optimizer/queued_policy.py). `state_dict()` /
`load_state_dict()` carry whatever else the next plans depend on (participation queues, random
generators, a round-robin pointer) across a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from optimizer import baselines
from optimizer.convergence import Phi, partial_participation_phi, round_weight
from optimizer.exact import ExactSolver
from optimizer.inputs import RoundInputs
from optimizer.lagrangian import solve_lagrangian
from optimizer.plan import Plan
from optimizer.problem import RoundProblem
from optimizer.queues import ParticipationQueues


class Policy(Protocol):
    name: str

    def plan(self, inputs: RoundInputs) -> Plan: ...
    def observe(self, plan: Plan, realised_energy_j: np.ndarray) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class LyapunovPolicy:
    """Drift-plus-penalty: each round minimise V·(ω_t·Φ(Σa) + ε·Σ a_k E_k) + Σ Q_k a_k E_k(b_k)
    − Σ Z_k a_k. The energy queues Q come with the round's inputs (the run keeps them,
    optimizer/queued_policy.py); the policy keeps and updates its participation queues Z.

    method 'exact' solves the round's MILP (solver 'auto', 'gurobi' or 'highs'); 'lagrangian' uses
    the fast price-and-local-search solver. ω_t = (1 − μη)^(T−1−t) over the horizon T. ε, the
    energy price (0 in the paper), makes energy cost something below the budget too: with ε = 0 a
    device whose queue is empty spends freely, so the policy uses its whole budget. With
    min_participation r > 0 (0 in the paper) each device also has a participation queue Z_k
    (queues.ParticipationQueues) and taking part costs it −Z_k: every device takes part in at
    least a share r of the rounds in the long run, so no device's data is left out for good.
    """

    def __init__(self, v: float = 10.0, horizon: int = 30, mu_eta: float = 0.0, method: str = "exact",
                 solver: str = "auto", rate: str = "paper", phi: Phi = partial_participation_phi,
                 threads: int = 1, energy_price: float = 0.0, min_participation: float = 0.0) -> None:
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"v={v!r} must be finite and >= 0")
        if not (np.isfinite(energy_price) and energy_price >= 0):
            raise ValueError(f"energy_price={energy_price!r} must be finite and >= 0")
        if horizon < 1:
            raise ValueError(f"horizon={horizon} must be >= 1")
        round_weight(0, horizon, mu_eta)  # validates mu_eta
        if method not in ("exact", "lagrangian"):
            raise ValueError(f"method={method!r}; expected 'exact' or 'lagrangian'")
        self.name = "lyapunov" if method == "exact" else "lyapunov-fast"
        self.v, self.horizon, self.mu_eta, self.rate, self.phi = v, horizon, mu_eta, rate, phi
        self.energy_price, self.min_participation = energy_price, min_participation
        ParticipationQueues(1, min_participation)  # validates it
        self._solve: Callable[[RoundProblem], Plan] = (
            ExactSolver(solver, threads).solve if method == "exact" else solve_lagrangian)
        self.participation: ParticipationQueues | None = None

    def plan(self, inputs: RoundInputs) -> Plan:
        if self.participation is None:
            self.participation = ParticipationQueues(inputs.devices, self.min_participation)
        z = self.participation.values
        if z.size != inputs.devices:
            raise ValueError(f"policy has queues for {z.size} devices, round has {inputs.devices}")
        weight = self.v * round_weight(inputs.round_index, self.horizon, self.mu_eta)
        return self._solve(RoundProblem(inputs, inputs.energy_queue_j + self.v * self.energy_price, weight,
                                        self.rate, self.phi, device_cost=-z))

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
            self.participation = ParticipationQueues(len(z), self.min_participation)
            self.participation.restore(z)


POLICIES: dict[str, Callable[..., Policy]] = {
    "lyapunov": lambda **kw: LyapunovPolicy(method="exact", **kw),
    "lyapunov-fast": lambda **kw: LyapunovPolicy(method="lagrangian", **kw),
    "all-equal": baselines.AllEqual,
    "random-k": baselines.RandomK,
    "round-robin-k": baselines.RoundRobinK,
    "best-channel-k": baselines.BestChannelK,
    "myopic": baselines.Myopic,
    "energy-greedy": baselines.EnergyGreedy,
}


def make_policy(name: str, **kwargs: object) -> Policy:
    """The policy called `name`, built with kwargs; ValueError lists the names on a typo."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}")
    return POLICIES[name](**kwargs)
