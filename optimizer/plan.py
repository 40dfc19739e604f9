"""A round's schedule as a policy decided it, with the predictions and the solver's book-keeping."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optimizer.problem import SHARE_TOL, RoundProblem


@dataclass(frozen=True)
class Plan:
    """Which devices go, their shares, and what the model predicts for them.

    `convergence_term`, `energy_term` and `device_term` are the parts of the objective as the policy
    sees it (V·ω_t·Φ, Σ Q a E and Σ a d for the Lyapunov policies; Φ, 0 and 0 for policies without
    queues).
    `infeasible` maps devices to why they cannot make the deadline: unschedulable ones, and
    scheduled ones whose share is below their deadline minimum (baselines that ignore it).
    """

    scheduled: np.ndarray
    bandwidth_share: np.ndarray
    predicted_delay_s: np.ndarray
    predicted_energy_j: np.ndarray
    phi: float
    convergence_term: float
    energy_term: float
    solver: str
    license: str
    solve_time_s: float
    infeasible: dict[int, str] = field(default_factory=dict)
    lower_bound: float | None = None
    reason: str = ""
    device_term: float = 0.0

    def __post_init__(self) -> None:
        a = np.asarray(self.scheduled, dtype=bool)
        k = a.size
        object.__setattr__(self, "scheduled", a)
        for name in ("bandwidth_share", "predicted_delay_s", "predicted_energy_j"):
            arr = np.asarray(getattr(self, name), dtype=float)
            if arr.shape != (k,):
                raise ValueError(f"plan.{name} has shape {arr.shape}, expected ({k},)")
            object.__setattr__(self, name, arr)
        b = self.bandwidth_share
        if not np.all(np.isfinite(b)) or np.any(b < 0) or np.any(b > 1):
            raise ValueError("plan.bandwidth_share must be finite and in [0, 1]")
        if np.any(b[~a] != 0):
            raise ValueError(f"plan gives bandwidth to unscheduled devices {np.flatnonzero(b * ~a).tolist()}")
        if np.any(b[a] <= 0):
            raise ValueError(f"plan schedules devices {np.flatnonzero(a & (b <= 0)).tolist()} with no band")
        if b.sum() > 1 + SHARE_TOL:
            raise ValueError(f"plan.bandwidth_share sums to {b.sum():.9f} > 1")
        if self.solve_time_s < 0:
            raise ValueError(f"plan.solve_time_s={self.solve_time_s} must be >= 0")

    @property
    def n_scheduled(self) -> int:
        return int(self.scheduled.sum())

    @property
    def objective(self) -> float:
        return self.convergence_term + self.energy_term + self.device_term

    @property
    def relative_gap(self) -> float:
        """The solver's certificate: (objective − lower bound) / max(1, |objective|), the measure the
        exact solver stops at (1e-6); NaN for a policy that proves no bound."""
        if self.lower_bound is None or not np.isfinite(self.objective):
            return float("nan")
        return (self.objective - self.lower_bound) / max(1.0, abs(self.objective))

    @property
    def late(self) -> list[int]:
        """Scheduled devices predicted to miss the deadline."""
        return [k for k in self.infeasible if self.scheduled[k]]


def make_plan(problem: RoundProblem, idx: np.ndarray, shares: np.ndarray, *, solver: str, license: str,
              solve_time_s: float, lower_bound: float | None = None, queues: bool = True) -> Plan:
    """Plan scheduling devices idx with the given shares; predictions and objective from the model.

    queues=False reports the objective of a queue-less policy (Φ only).
    """
    k = problem.devices
    idx = np.asarray(idx, dtype=int)
    shares = np.asarray(shares, dtype=float)
    if idx.size == 0:
        return empty_plan(problem, "no device scheduled", solver=solver, license=license,
                          solve_time_s=solve_time_s)
    scheduled = np.zeros(k, bool)
    scheduled[idx] = True
    b = np.zeros(k)
    b[idx] = shares
    delay = np.full(k, np.nan)
    delay[idx] = problem.delay(idx, shares)
    energy = np.zeros(k)
    energy[idx] = problem.energy(idx, shares)
    infeasible = dict(problem.reasons)
    short = idx[shares < problem.beta[idx] * (1 - 1e-9)]
    for j in short:
        infeasible[int(j)] = (f"share {b[j]:.4g} is below the {problem.beta[j]:.4g} it needs to meet "
                              f"the deadline (predicted {delay[j]:.3g} s)")
    phi = problem.phi(idx.size, k)
    return Plan(scheduled, b, delay, energy, phi=phi,
                convergence_term=problem.convergence_term(idx.size) if queues else phi,
                energy_term=float(problem.queues @ energy) if queues else 0.0,
                device_term=float(problem.device_cost[idx].sum()) if queues else 0.0,
                solver=solver, license=license, solve_time_s=solve_time_s,
                infeasible=dict(sorted(infeasible.items())), lower_bound=lower_bound)


def empty_plan(problem: RoundProblem, reason: str, *, solver: str, license: str, solve_time_s: float) -> Plan:
    """Nobody goes this round, and why."""
    k = problem.devices
    return Plan(np.zeros(k, bool), np.zeros(k), np.full(k, np.nan), np.zeros(k), phi=np.nan,
                convergence_term=np.nan, energy_term=0.0, solver=solver, license=license,
                solve_time_s=solve_time_s, infeasible=dict(problem.reasons), reason=reason)
