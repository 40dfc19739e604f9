"""Baseline policies a researcher compares the Lyapunov scheduler against.

None of them keeps energy queues; their plans report Φ(n) as the convergence term and 0 energy
term. Shares are either 'equal' (1/n each; a device whose share is below its deadline minimum β
is listed in plan.infeasible) or 'deadline' (β_k each plus an equal part of the rest; devices
with the largest β are dropped until the minimums fit, so every scheduled device is on time).
Devices that cannot meet the deadline even with the whole band are never chosen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from optimizer.convergence import Phi, partial_participation_phi
from optimizer.inputs import RoundInputs
from optimizer.plan import Plan, empty_plan, make_plan
from optimizer.policy import Policy, PolicyContext
from optimizer.problem import RoundProblem, fitting_prefix
from optimizer.rates import rate_model

SHARE_MODES = ("equal", "deadline")


@dataclass(frozen=True)
class RateConfig:
    """Knobs of myopic and energy-greedy (their shares are always 'deadline')."""

    rate: str = "paper"  # the rate model plans use (optimizer/rates.py)

    def __post_init__(self) -> None:
        rate_model(self.rate)  # refuses an unknown one, naming the known ones


@dataclass(frozen=True)
class SharesConfig(RateConfig):
    """Knobs of all-equal."""

    shares: str = "equal"  # equal: 1/n each; deadline: each device's minimum plus an equal part

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.shares not in SHARE_MODES:
            raise ValueError(f"shares={self.shares!r} must be one of {', '.join(SHARE_MODES)}")


@dataclass(frozen=True)
class KConfig(SharesConfig):
    """Knobs of the k-device baselines."""

    k: int = 3  # devices per round (fewer when fewer can meet the deadline)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 1:
            raise ValueError(f"k={self.k} must be >= 1")


class Baseline(Policy):
    """Common frame: choose devices, then shares; subclasses implement `choose`."""

    Config: type = SharesConfig
    name = "baseline"
    #: why `choose` may return nobody although a device can meet the deadline
    empty_reason = "the policy chose no device"

    def __init__(self, config: RateConfig, context: PolicyContext,
                 phi: Phi = partial_participation_phi) -> None:
        super().__init__(config, context)
        self.shares, self.rate, self.phi = getattr(config, "shares", "deadline"), config.rate, phi

    def choose(self, problem: RoundProblem) -> np.ndarray:
        raise NotImplementedError

    def split(self, problem: RoundProblem, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(devices kept, their shares) by the share mode."""
        if self.shares == "equal":
            return idx, np.full(idx.size, 1.0 / idx.size)
        idx = idx[np.argsort(problem.beta[idx], kind="stable")]
        idx = np.sort(idx[: fitting_prefix(problem.beta[idx])])
        beta = problem.beta[idx]
        return idx, beta + (1.0 - beta.sum()) / idx.size

    def plan(self, inputs: RoundInputs) -> Plan:
        start = time.perf_counter()
        problem = RoundProblem(inputs, np.zeros(inputs.devices), 1.0, self.rate, self.phi)
        idx = np.sort(self.choose(problem)) if problem.feasible.size else problem.feasible
        if idx.size:
            idx, b = self.split(problem, idx)
        if idx.size == 0:
            reason = self.empty_reason if problem.feasible.size else "no device can meet the deadline"
            return empty_plan(problem, reason, solver=self.name, license="n/a",
                              solve_time_s=time.perf_counter() - start)
        return make_plan(problem, idx, b, solver=self.name, license="n/a",
                         solve_time_s=time.perf_counter() - start, queues=False)


class AllEqual(Baseline):
    """Every device that can make the deadline, equal shares (shares below β are reported)."""

    name = "all-equal"

    def choose(self, problem: RoundProblem) -> np.ndarray:
        return problem.feasible


class _KBaseline(Baseline):
    Config = KConfig

    def __init__(self, config: KConfig, context: PolicyContext,
                 phi: Phi = partial_participation_phi) -> None:
        super().__init__(config, context, phi)
        self.k = config.k


class RandomK(_KBaseline):
    """k devices drawn uniformly (seeded) from those that can make the deadline."""

    name = "random-k"

    def __init__(self, config: KConfig, context: PolicyContext,
                 phi: Phi = partial_participation_phi) -> None:
        super().__init__(config, context, phi)
        self._rng = np.random.default_rng(context.seed)

    def choose(self, problem: RoundProblem) -> np.ndarray:
        feasible = problem.feasible
        return self._rng.choice(feasible, size=min(self.k, feasible.size), replace=False)

    def state_dict(self) -> dict:
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]


class RoundRobinK(_KBaseline):
    """The next k devices in cyclic index order, skipping those that cannot make the deadline."""

    name = "round-robin-k"

    def __init__(self, config: KConfig, context: PolicyContext,
                 phi: Phi = partial_participation_phi) -> None:
        super().__init__(config, context, phi)
        self._next = 0

    def choose(self, problem: RoundProblem) -> np.ndarray:
        order = (self._next + np.arange(problem.devices)) % problem.devices
        picked = order[np.isin(order, problem.feasible)][: self.k]
        self._next = int(picked[-1] + 1) % problem.devices
        return picked

    def state_dict(self) -> dict:
        return {"next": self._next}

    def load_state_dict(self, state: dict) -> None:
        self._next = int(state["next"])


class BestChannelK(_KBaseline):
    """The k devices with the highest SNR (among those that can make the deadline)."""

    name = "best-channel-k"

    def choose(self, problem: RoundProblem) -> np.ndarray:
        feasible = problem.feasible
        return feasible[np.argsort(-problem.inputs.snr_db[feasible], kind="stable")[: self.k]]


class Myopic(Baseline):
    """V → ∞ without energy queues: as many devices as the deadline allows (smallest β first, which
    maximises the count), each at its minimum share plus an equal part of the rest."""

    Config = RateConfig
    name = "myopic"

    def choose(self, problem: RoundProblem) -> np.ndarray:
        return problem.feasible


class EnergyGreedy(Baseline):
    """Cheapest devices first (energy at their minimum share), each only while its average spend
    stays within its budget, as many as the band allows; the band then split to minimise the total
    energy (KKT with unit weights)."""

    Config = RateConfig
    name = "energy-greedy"
    empty_reason = "every device that can meet the deadline would go over its energy budget"

    def __init__(self, config: RateConfig, context: PolicyContext,
                 phi: Phi = partial_participation_phi) -> None:
        super().__init__(config, context, phi)
        self._spent: np.ndarray | None = None
        self._rounds = 0
        self._budget: np.ndarray | None = None

    def choose(self, problem: RoundProblem) -> np.ndarray:
        inputs = problem.inputs
        if self._spent is None:
            self._spent = np.zeros(inputs.devices)
        self._budget = inputs.energy_budget_j
        feasible = problem.feasible
        cost = problem.energy(feasible, problem.beta[feasible])
        allowed = self._spent[feasible] + cost <= (self._rounds + 1) * self._budget[feasible]
        order = np.argsort(cost, kind="stable")
        order = order[allowed[order]]
        return feasible[order[: fitting_prefix(problem.beta[feasible][order])]]

    def split(self, problem: RoundProblem, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if idx.size == 0:
            return idx, np.zeros(0)
        unit = RoundProblem(problem.inputs, np.ones(problem.devices), 0.0, self.rate, self.phi)
        split = unit.kkt_split(idx)
        assert split is not None  # choose() kept the minimum shares within the band
        return idx, split[0]

    def observe(self, plan: Plan, realised_energy_j: np.ndarray) -> None:
        if self._spent is None:
            raise RuntimeError("observe() before plan()")
        self._spent += np.where(plan.scheduled, np.asarray(realised_energy_j, dtype=float), 0.0)
        self._rounds += 1

    def state_dict(self) -> dict:
        return {"spent": None if self._spent is None else self._spent.copy(), "rounds": self._rounds,
                "budget": self._budget}

    def load_state_dict(self, state: dict) -> None:
        self._spent, self._rounds, self._budget = state["spent"], int(state["rounds"]), state["budget"]
