"""Exact per-round solver: MILP outer approximation with tangent cuts and a KKT polish.

Columns, over the devices that can meet the deadline (m of them) and n = 1..n_max counts:
    a_j ∈ {0,1}       scheduled
    s_j ∈ [0, 1−β_j]  share above the deadline minimum, so b_j = β_j a_j + s_j and the deadline
                      β_j a_j <= b_j is built in (keeps K = 300 inside Gurobi's size-limited licence)
    e_j >= 0          energy epigraph, only for devices with Q_j > 0 (the others cost nothing)
    z_n ∈ {0,1}       one-hot count, so Φ needs no convexity: Σ z = 1, Σ n z_n = Σ a
Rows: Σ b <= 1; s_j <= (1−β_j) a_j (b <= a); tangent cuts of the perspective a·E(b/a),
    e_j >= (E(t) − E'(t) t) a_j + E'(t) b_j   at points t ∈ [β_j, 1].
The MILP's bound is a certified lower bound; the KKT split of its schedule an upper bound; cuts at
the polished shares close the gap (a schedule seen twice gets LB = UB), so the loop terminates.
The Lagrangian search runs first: its schedule is the incumbent, its price places the first cuts
where the optimum lies, and its bound fixes to 0 the devices and counts that cannot be optimal.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from optimizer.backends import GurobiBackend, HighsBackend, MilpBackend, MilpModel, SolverRefused
from optimizer.lagrangian import SearchResult, search
from optimizer.plan import Plan, empty_plan, make_plan
from optimizer.problem import RoundProblem

GAP_TOL = 1e-6
MAX_ROUNDS = 200
FIX_MARGIN = 1e-7  # relative slack before a Lagrangian bound fixes a variable to 0


@dataclass(frozen=True)
class Layout:
    """Column positions of the MILP and which device each a/s/e column belongs to."""

    devices: np.ndarray  # feasible device indices, one a_j and s_j each
    live: np.ndarray  # positions (into devices) that have an e column
    n_max: int

    @property
    def m(self) -> int:
        """Also the offset of the s columns (the a columns start at 0)."""
        return self.devices.size

    @property
    def e0(self) -> int:
        return 2 * self.m

    @property
    def z0(self) -> int:
        return 2 * self.m + self.live.size

    @property
    def columns(self) -> int:
        return self.z0 + self.n_max


def cut_rows(problem: RoundProblem, lay: Layout, pos: np.ndarray, t: np.ndarray) -> sp.csr_matrix:
    """Tangent cuts at shares t for live positions pos (indices into lay.live), as rows '>' 0."""
    j = lay.live[pos]
    dev = lay.devices[j]
    beta = problem.beta[dev]
    energy, slope = problem.energy(dev, t), problem.energy_slope(dev, t)
    rows = np.arange(pos.size)
    cols = np.concatenate([lay.e0 + pos, j, lay.m + j])
    vals = np.concatenate([np.ones(pos.size), -(energy + slope * (beta - t)), -slope])
    return sp.csr_matrix((vals, (np.tile(rows, 3), cols)), shape=(pos.size, lay.columns))


def build_model(problem: RoundProblem, lay: Layout, found: SearchResult) -> MilpModel:
    """The MILP of the module docstring, warm from the Lagrangian search.

    Starting cuts per live device: at β, at 1, at its share at the best dual price, and at the
    incumbent's share. Devices and counts whose Lagrangian bound exceeds the incumbent's value
    cannot be optimal and get upper bound 0 (they stay in the model, whose size is the problem's).
    """
    m, n_max = lay.m, lay.n_max
    beta = problem.beta[lay.devices]
    ncols = lay.columns
    counts = np.arange(1, n_max + 1)
    c = np.zeros(ncols)
    c[:m] = problem.device_cost[lay.devices]
    c[lay.e0:lay.z0] = problem.queues[lay.devices[lay.live]]
    c[lay.z0:] = problem.count_terms[:n_max]
    jj = np.arange(m)
    budget = sp.csr_matrix((np.concatenate([beta, np.ones(m)]), (np.zeros(2 * m, int),
                           np.concatenate([jj, m + jj]))), shape=(1, ncols))
    count = sp.csr_matrix((np.concatenate([np.ones(m), -counts]), (np.zeros(m + n_max, int),
                          np.concatenate([jj, lay.z0 + counts - 1]))), shape=(1, ncols))
    one_hot = sp.csr_matrix((np.ones(n_max), (np.zeros(n_max, int), lay.z0 + counts - 1)), shape=(1, ncols))
    link = sp.csr_matrix((np.concatenate([np.ones(m), -(1.0 - beta)]),
                          (np.tile(jj, 2), np.concatenate([m + jj, jj]))), shape=(m, ncols))
    pos = np.arange(lay.live.size)
    live_dev = lay.devices[lay.live]
    at_price = np.empty(problem.devices)
    at_price[found.dual.devices] = found.dual.shares
    incumbent = np.isin(live_dev, found.schedule)
    at_incumbent = np.empty(problem.devices)
    at_incumbent[found.schedule] = found.shares
    cuts = [cut_rows(problem, lay, pos, t) for t in (beta[lay.live], np.ones(pos.size), at_price[live_dev])]
    cuts.append(cut_rows(problem, lay, pos[incumbent], at_incumbent[live_dev[incumbent]]))
    a = sp.vstack([budget, count, one_hot, link, *cuts], format="csr")
    sense = np.array(["<", "=", "="] + ["<"] * m + [">"] * (a.shape[0] - 3 - m))
    rhs = np.zeros(a.shape[0])
    rhs[0] = rhs[2] = 1.0
    with_device, with_count = found.dual.forced_bounds()
    cutoff = found.value + FIX_MARGIN * max(1.0, abs(found.value))
    device_out = np.zeros(problem.devices, bool)
    device_out[found.dual.devices] = with_device > cutoff
    lb = np.zeros(ncols)
    ub = np.concatenate([np.where(device_out[lay.devices], 0.0, 1.0), 1.0 - beta,
                         np.full(lay.live.size, np.inf), np.where(with_count > cutoff, 0.0, 1.0)])
    integer = np.zeros(ncols, bool)
    integer[:m] = integer[lay.z0:] = True
    return MilpModel(c, a, sense, rhs, lb, ub, integer)


def solve_with(backend: MilpBackend, problem: RoundProblem) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Cut loop on one back-end: (schedule, shares, objective, lower bound)."""
    devices = problem.feasible
    found = search(problem)
    lay = Layout(devices, np.flatnonzero(problem.queues[devices] > 0), problem.max_count)
    backend.load(build_model(problem, lay, found))
    live_pos = np.full(problem.devices, -1)
    live_pos[devices[lay.live]] = np.arange(lay.live.size)
    best = (found.value, found.schedule, found.shares)
    lower = found.lower_bound
    for _ in range(MAX_ROUNDS):
        x, bound = backend.solve()
        lower = max(lower, bound)
        idx = devices[x[:lay.m] > 0.5]
        value, b = problem.evaluate(idx)
        if value < best[0]:
            best = (value, idx, b)
        if best[0] - lower <= GAP_TOL * max(1.0, abs(best[0])):
            break
        pos = live_pos[idx]
        new = pos >= 0
        if not new.any():
            break
        backend.add_rows(cut_rows(problem, lay, pos[new], b[new]), np.full(int(new.sum()), ">"),
                         np.zeros(int(new.sum())))
    else:
        warnings.warn(f"exact solver stopped after {MAX_ROUNDS} cut rounds with gap "
                      f"{best[0] - lower:.3g}", RuntimeWarning, stacklevel=2)
    return best[1], best[2], best[0], lower


SOLVERS = ("auto", "gurobi", "highs")


class ExactSolver:
    """Per-round exact solver with back-end choice: 'gurobi', 'highs' or 'auto'.

    'auto' tries Gurobi; the first time gurobipy is missing or its licence refuses a model it warns
    once, naming the reason, and uses HiGHS for the rest of the run (this object's lifetime).
    """

    def __init__(self, solver: str = "auto", threads: int = 1) -> None:
        if solver not in SOLVERS:
            raise ValueError(f"solver={solver!r}; expected one of {', '.join(SOLVERS)}")
        self.solver = solver
        self._threads = threads
        self._backend: GurobiBackend | HighsBackend | None = None

    def _fall_back(self, reason: str) -> HighsBackend:
        warnings.warn(f"Gurobi unusable ({reason}); using HiGHS for the rest of the run",
                      RuntimeWarning, stacklevel=3)
        self.solver = "highs"
        self._backend = HighsBackend(self._threads)
        return self._backend

    def _get_backend(self) -> GurobiBackend | HighsBackend:
        if self._backend is None:
            if self.solver == "highs":
                self._backend = HighsBackend(self._threads)
            else:
                try:
                    self._backend = GurobiBackend(self._threads)
                except SolverRefused as exc:
                    if self.solver == "gurobi":
                        raise
                    return self._fall_back(str(exc))
        return self._backend

    def solve(self, problem: RoundProblem) -> Plan:
        start = time.perf_counter()
        backend = self._get_backend()
        if problem.feasible.size == 0:
            return empty_plan(problem, "no device can meet the deadline", solver=backend.name,
                              license=backend.license, solve_time_s=time.perf_counter() - start)
        try:
            idx, b, _, lower = solve_with(backend, problem)
        except SolverRefused as exc:
            if self.solver != "auto":
                raise
            backend = self._fall_back(str(exc))
            idx, b, _, lower = solve_with(backend, problem)
        return make_plan(problem, idx, b, solver=backend.name, license=backend.license,
                         solve_time_s=time.perf_counter() - start, lower_bound=lower)
