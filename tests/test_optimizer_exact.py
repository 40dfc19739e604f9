"""The exact MILP solver against brute force, across back-ends, and its licence fall-back."""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq, minimize

from optimizer import ExactSolver, RoundProblem, exact, lagrangian
from optimizer.synthetic import random_inputs

BACKENDS = ["gurobi", "highs"]


def random_problem(rng: np.random.Generator, k: int, rate: str = "paper") -> RoundProblem:
    """Tight deadlines (some devices out, β that matter), some empty queues, weights across scales,
    and in half the rounds per-device costs of either sign (participation rewards)."""
    inputs = random_inputs(rng, k, deadline_s=float(rng.uniform(3.0, 8.0)), mean_snr_db=(-10.0, 20.0))
    queues = rng.uniform(0.0, 5.0, k) * (rng.random(k) < 0.8)
    device_cost = rng.normal(0.0, 1.0, k) if rng.random() < 0.5 else None
    return RoundProblem(inputs, queues, float(rng.uniform(0.0, 20.0)), rate=rate, device_cost=device_cost)


def poor_search(problem: RoundProblem) -> lagrangian.SearchResult:
    """A start for the exact solver that owes nothing to the Lagrangian's answer: one device (the one
    that needs most band) and the dual at price 0, so few fixings and cuts far from the optimum."""
    devices = problem.feasible
    dual = lagrangian.dual_point(problem, devices, lagrangian.phi_terms(problem, problem.max_count), 0.0)
    worst = devices[[np.argmax(problem.beta[devices])]]
    value, shares = problem.evaluate(worst)
    return lagrangian.SearchResult(dual, value, worst, shares)


# --- an independent reference: the round's problem written out from its definition ----------------

def _f(rate: str, b: float, s: float) -> float:
    """Bits per second per hertz of band on a share b (the paper's FDMA rate, or a fixed efficiency)."""
    return b * math.log2(1.0 + s / b) if rate == "paper" else b * math.log2(1.0 + s)


def _df(rate: str, b: float, s: float) -> float:
    return (math.log2(1.0 + s / b) - s / (b + s) / math.log(2.0)) if rate == "paper" else math.log2(1.0 + s)


def _device(problem: RoundProblem, k: int) -> dict:
    inp = problem.inputs
    return {"s": 10.0 ** ((inp.snr_db[k] - inp.snr_gap_db) / 10.0),
            "bits": 8.0 * inp.uplink_bytes[k] / inp.rate_efficiency[k], "bw": inp.bandwidth_hz,
            "p": inp.tx_power_w[k], "e0": inp.compute_energy_j[k], "q": problem.queues[k],
            "slack": inp.deadline_s - (inp.compute_time_s[k] + inp.server_wait_s[k] + inp.server_time_s[k]
                                       + 8.0 * inp.downlink_bytes[k] / inp.downlink_rate_bps[k])}


def _root(g, lo: float, hi: float) -> float:
    return brentq(g, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200)


def _min_share(rate: str, d: dict) -> float:
    """The smallest share that uploads in the time left before the deadline (inf if none)."""
    def late(b):
        return d["bits"] / (d["bw"] * _f(rate, b, d["s"])) - d["slack"]
    if d["slack"] <= 0 or late(1.0) > 0:
        return math.inf
    return 1.0 if late(1.0) == 0 else _root(late, 1e-12, 1.0)


def _energy(rate: str, d: dict, b: float) -> float:
    return d["p"] * d["bits"] / (d["bw"] * _f(rate, b, d["s"])) + d["e0"]


def _share_at_price(rate: str, d: dict, beta: float, price: float) -> float:
    """argmin over [β, 1] of Q·E(b) + price·b (E convex decreasing): where Q·E'(b) = −price."""
    def slope(b):
        saving = d["q"] * d["p"] * d["bits"] / d["bw"] * _df(rate, b, d["s"]) / _f(rate, b, d["s"]) ** 2
        return price - saving
    if d["q"] == 0 or slope(beta) >= 0:
        return beta
    return 1.0 if slope(1.0) <= 0 else _root(slope, beta, 1.0)


def _split(rate: str, devices: list[dict], beta: np.ndarray) -> list[float]:
    """min Σ Q_k E_k(b_k) s.t. Σ b ≤ 1, b ≥ β, by a root search on the band's price."""
    def shares(price):
        return [_share_at_price(rate, d, lo, price) for d, lo in zip(devices, beta, strict=True)]
    if sum(shares(0.0)) <= 1.0:
        return shares(0.0)
    hi = 1.0
    while sum(shares(hi)) > 1.0:
        hi *= 4.0
    return shares(_root(lambda price: sum(shares(price)) - 1.0, 0.0, hi))


def brute_force(problem: RoundProblem) -> tuple[float, set[int]]:
    """Every set of devices, each with its own optimal split: (best objective, its devices)."""
    k, rate = problem.devices, problem.rate
    devices = [_device(problem, j) for j in range(k)]
    beta = np.array([_min_share(rate, d) if problem.inputs.present[j] else np.inf
                     for j, d in enumerate(devices)])
    cost = np.zeros(k) if problem.device_cost is None else np.asarray(problem.device_cost, float)
    best = (np.inf, set())
    for n in range(1, k + 1):
        phi = 0.0 if k == 1 else (k - n) / (n * (k - 1))
        for subset in itertools.combinations(range(k), n):
            chosen = list(subset)
            if not np.isfinite(beta[chosen]).all() or beta[chosen].sum() > 1.0 + 1e-12:
                continue
            b = _split(rate, [devices[j] for j in chosen], beta[chosen])
            value = problem.weight * phi + sum(devices[j]["q"] * _energy(rate, devices[j], bj)
                                               for j, bj in zip(chosen, b, strict=True)) + cost[chosen].sum()
            if value < best[0]:
                best = (value, set(chosen))
    return best


@pytest.fixture(scope="module")
def instances():
    rng = np.random.default_rng(2024)
    return [random_problem(rng, int(rng.integers(1, 9)), rate=("paper", "simple")[i % 2]) for i in range(50)]


@pytest.fixture(scope="module")
def optima(instances):
    return [brute_force(problem) for problem in instances]


def test_the_reference_solves_a_case_worked_by_hand():
    """Two identical devices, the paper's rate, a convergence weight that wants both: by symmetry the
    band splits in halves."""
    inputs = random_inputs(np.random.default_rng(0), 2, deadline_s=30.0)
    inputs = dataclasses.replace(inputs, snr_db=np.array([10.0, 10.0]), uplink_bytes=1e6, downlink_bytes=1e6,
                                 compute_time_s=1.0, downlink_rate_bps=50e6, compute_energy_j=0.1,
                                 energy_budget_j=0.5)
    problem = RoundProblem(inputs, np.array([1.0, 1.0]), 100.0)
    value, chosen = brute_force(problem)
    # E(1/2) = p·8e6 / (B · ½·log2(1 + 10/½)) + 0.1 per device, Φ(2) = 0
    half = 0.2 * 8e6 / (20e6 * 0.5 * math.log2(21.0)) + 0.1
    assert chosen == {0, 1} and value == pytest.approx(2 * half, rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_equals_brute_force(instances, optima, backend):
    solver = ExactSolver(backend)
    checked = 0
    for problem, (value, schedule) in zip(instances, optima, strict=True):
        plan = solver.solve(problem)
        if not np.isfinite(value):
            assert plan.n_scheduled == 0 and plan.reason
            continue
        checked += 1
        assert plan.solver == backend
        assert plan.objective == pytest.approx(value, rel=1e-6, abs=1e-9)
        assert plan.lower_bound <= value + 1e-9 * max(1.0, abs(value))  # a bound below the true optimum
        assert plan.relative_gap <= 1e-6  # the certificate rounds.parquet records
        got = set(np.flatnonzero(plan.scheduled).tolist())
        if got != schedule:  # only a tie may pick another schedule
            assert problem.evaluate(np.array(sorted(got)))[0] == pytest.approx(value, rel=1e-9)
    assert checked >= 40


def test_kkt_split_matches_a_general_solver():
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 5:
        problem = random_problem(rng, 6)
        idx = problem.feasible[np.argsort(problem.beta[problem.feasible])][:4]
        split = problem.kkt_split(idx)
        if split is None or not np.all(problem.queues[idx] > 0):
            continue
        checked += 1
        b, _ = split

        def cost(x, idx=idx, problem=problem):
            return float(problem.queues[idx] @ problem.energy(idx, x))

        ref = minimize(cost, np.full(idx.size, 1 / idx.size).clip(problem.beta[idx]), method="SLSQP",
                       bounds=[(lo, 1.0) for lo in problem.beta[idx]],
                       constraints=[{"type": "ineq", "fun": lambda x: 1.0 - x.sum()}],
                       options={"ftol": 1e-14, "maxiter": 500})
        assert b.sum() == pytest.approx(1.0, abs=1e-9) and np.all(b >= problem.beta[idx] - 1e-12)
        assert cost(b) <= ref.fun * (1 + 1e-9)


def gurobi_size_limit() -> int | None:
    """The installed licence's size limit, asked of the licence: the size-limited one refuses a model
    of 2001 variables (error 10010); an unlimited one solves it."""
    import gurobipy as gp

    with gp.Env(empty=True) as env:
        env.setParam("OutputFlag", 0)
        env.start()
        with gp.Model(env=env) as model:
            model.addMVar(2001)
            try:
                model.optimize()
            except gp.GurobiError as err:
                if err.errno == gp.GRB.Error.SIZE_LIMIT_EXCEEDED:
                    return 2000
                raise
    return None


@pytest.fixture
def too_large_for_gurobi(monkeypatch) -> RoundProblem:
    """A round the installed licence refuses: over its size limit, or, under a licence without one, a
    round for which Gurobi is made to answer as a size-limited licence does."""
    rng = np.random.default_rng(1000)
    problem = RoundProblem(random_inputs(rng, 1000, deadline_s=6.0), rng.uniform(0, 5, 1000), 10.0)
    if gurobi_size_limit() is None:
        from optimizer import backends

        def refuse(self):
            raise backends.SolverRefused("Gurobi refused the model: Model too large for size-limited license")
        monkeypatch.setattr(backends.GurobiBackend, "solve", refuse)
    return problem


@pytest.mark.parametrize("k", [100, 300])
def test_gurobi_and_highs_agree_at_scale(k):
    limit = gurobi_size_limit()
    problem = random_problem(np.random.default_rng(k), k)
    gurobi, highs = ExactSolver("gurobi").solve(problem), ExactSolver("highs").solve(problem)
    assert (gurobi.solver, highs.solver) == ("gurobi", "highs")
    assert gurobi.license.startswith("gurobi ") and highs.license == "highs MIT"
    assert (gurobi.license == "gurobi size-limited") == (limit is not None)
    assert gurobi.objective == pytest.approx(highs.objective, rel=1e-6)


def test_too_large_for_the_licence_falls_back_to_highs_once(too_large_for_gurobi):
    solver = ExactSolver("auto")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plans = [solver.solve(too_large_for_gurobi), solver.solve(too_large_for_gurobi)]
    assert [p.solver for p in plans] == ["highs", "highs"]
    assert len(caught) == 1 and "size-limited" in str(caught[0].message)
    assert plans[0].objective == pytest.approx(plans[1].objective, rel=1e-9)


def test_gurobi_alone_reports_the_licence_refusal(too_large_for_gurobi):
    with pytest.raises(RuntimeError, match="size-limited"):
        ExactSolver("gurobi").solve(too_large_for_gurobi)


def test_unknown_backend():
    with pytest.raises(ValueError, match="solver='cplex'"):
        ExactSolver("cplex")


@pytest.mark.parametrize("backend", BACKENDS)
def test_cut_loop_finds_the_optimum_from_a_poor_start(instances, optima, backend, monkeypatch):
    """Without the Lagrangian's help (a one-device incumbent, the dual at price 0, so few fixings
    and cuts far from the optimum) the MILP and its cuts alone must still reach brute force."""
    monkeypatch.setattr(exact, "search", poor_search)
    solver = ExactSolver(backend)
    checked = 0
    for problem, (value, _) in zip(instances[:25], optima[:25], strict=True):
        if np.isfinite(value):
            checked += 1
            assert solver.solve(problem).objective == pytest.approx(value, rel=1e-6, abs=1e-9)
    assert checked >= 20
