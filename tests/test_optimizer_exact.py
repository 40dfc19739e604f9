"""The exact MILP solver against brute force, across back-ends, and its licence fall-back."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize

from optimizer import ExactSolver, RoundProblem
from optimizer.synthetic import random_inputs

BACKENDS = ["gurobi", "highs"]


def random_problem(rng: np.random.Generator, k: int, rate: str = "paper") -> RoundProblem:
    """Tight deadlines (some devices out, β that matter), some empty queues, weights across scales,
    and in half the rounds per-device costs of either sign (participation rewards)."""
    inputs = random_inputs(rng, k, deadline_s=float(rng.uniform(3.0, 8.0)), mean_snr_db=(-10.0, 20.0))
    queues = rng.uniform(0.0, 5.0, k) * (rng.random(k) < 0.8)
    device_cost = rng.normal(0.0, 1.0, k) if rng.random() < 0.5 else None
    return RoundProblem(inputs, queues, float(rng.uniform(0.0, 20.0)), rate=rate, device_cost=device_cost)


def brute_force(problem: RoundProblem) -> tuple[float, set[int]]:
    best = (np.inf, set())
    for n in range(1, problem.feasible.size + 1):
        for subset in itertools.combinations(problem.feasible, n):
            value, _ = problem.evaluate(np.array(subset))
            if value < best[0]:
                best = (value, set(int(k) for k in subset))
    return best


@pytest.fixture(scope="module")
def instances():
    rng = np.random.default_rng(2024)
    return [random_problem(rng, int(rng.integers(1, 9)), rate=("paper", "simple")[i % 2]) for i in range(50)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_equals_brute_force(instances, backend):
    solver = ExactSolver(backend)
    checked = 0
    for problem in instances:
        value, schedule = brute_force(problem)
        plan = solver.solve(problem)
        if not np.isfinite(value):
            assert plan.n_scheduled == 0 and plan.reason
            continue
        checked += 1
        assert plan.solver == backend
        assert plan.objective == pytest.approx(value, rel=1e-6, abs=1e-9)
        assert plan.lower_bound <= plan.objective + 1e-9
        got = set(np.flatnonzero(plan.scheduled).tolist())
        if got != schedule:  # only a tie may pick another schedule
            assert problem.evaluate(np.array(sorted(got)))[0] == pytest.approx(value, rel=1e-9)
    assert checked >= 40


def test_kkt_split_matches_a_general_solver():
    rng = np.random.default_rng(7)
    for _ in range(5):
        problem = random_problem(rng, 6)
        idx = problem.feasible[np.argsort(problem.beta[problem.feasible])][:4]
        split = problem.kkt_split(idx)
        if split is None or not np.all(problem.queues[idx] > 0):
            continue
        b, _ = split

        def cost(x, idx=idx, problem=problem):
            return float(problem.queues[idx] @ problem.energy(idx, x))

        ref = minimize(cost, np.full(idx.size, 1 / idx.size).clip(problem.beta[idx]), method="SLSQP",
                       bounds=[(lo, 1.0) for lo in problem.beta[idx]],
                       constraints=[{"type": "ineq", "fun": lambda x: 1.0 - x.sum()}],
                       options={"ftol": 1e-14, "maxiter": 500})
        assert b.sum() == pytest.approx(1.0, abs=1e-9) and np.all(b >= problem.beta[idx] - 1e-12)
        assert cost(b) <= ref.fun * (1 + 1e-9)


@pytest.mark.parametrize("k", [100, 300])
def test_gurobi_and_highs_agree_at_scale(k):
    problem = random_problem(np.random.default_rng(k), k)
    gurobi, highs = ExactSolver("gurobi").solve(problem), ExactSolver("highs").solve(problem)
    assert (gurobi.solver, highs.solver) == ("gurobi", "highs")
    assert gurobi.license == "gurobi size-limited" and highs.license == "highs MIT"
    assert gurobi.objective == pytest.approx(highs.objective, rel=1e-6)


def test_too_large_for_the_licence_falls_back_to_highs_once():
    rng = np.random.default_rng(1000)
    problem = RoundProblem(random_inputs(rng, 1000, deadline_s=6.0), rng.uniform(0, 5, 1000), 10.0)
    solver = ExactSolver("auto")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plans = [solver.solve(problem), solver.solve(problem)]
    assert [p.solver for p in plans] == ["highs", "highs"]
    assert len(caught) == 1 and "size-limited" in str(caught[0].message)
    assert plans[0].objective == pytest.approx(plans[1].objective, rel=1e-9)


def test_gurobi_alone_reports_the_licence_refusal():
    rng = np.random.default_rng(1000)
    problem = RoundProblem(random_inputs(rng, 1000, deadline_s=6.0), rng.uniform(0, 5, 1000), 10.0)
    with pytest.raises(RuntimeError, match="size-limited"):
        ExactSolver("gurobi").solve(problem)


def test_unknown_backend():
    with pytest.raises(ValueError, match="solver='cplex'"):
        ExactSolver("cplex")


@pytest.mark.parametrize("backend", BACKENDS)
def test_cut_loop_finds_the_optimum_from_a_poor_start(instances, backend, monkeypatch):
    """Without the Lagrangian's help (a one-device incumbent, the dual at price 0, so few fixings
    and cuts far from the optimum) the MILP and its cuts alone must still reach brute force."""
    from optimizer import exact, lagrangian

    def poor_search(problem):
        devices = problem.feasible
        dual = lagrangian.dual_point(problem, devices, lagrangian.phi_terms(problem, problem.max_count), 0.0)
        worst = devices[[np.argmax(problem.beta[devices])]]
        value, shares = problem.evaluate(worst)
        return lagrangian.SearchResult(dual, value, worst, shares)

    monkeypatch.setattr(exact, "search", poor_search)
    solver = ExactSolver(backend)
    for problem in instances[:25]:
        value, _ = brute_force(problem)
        if np.isfinite(value):
            assert solver.solve(problem).objective == pytest.approx(value, rel=1e-6, abs=1e-9)
