"""The fast Lagrangian solver: a certified bound below the optimum, a schedule close above it."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import ExactSolver, RoundProblem, solve_lagrangian
from optimizer.synthetic import random_inputs


def test_bound_optimum_and_heuristic_are_ordered_with_a_small_gap(monkeypatch):
    """The exact solver starts from a poor point, not the Lagrangian's answer, so that it being no
    worse than the Lagrangian is a finding, not its starting point."""
    from optimizer import exact as exact_module
    from tests.test_optimizer_exact import poor_search

    monkeypatch.setattr(exact_module, "search", poor_search)
    rng = np.random.default_rng(50)
    exact = ExactSolver("highs")
    gaps = []
    for i in range(16):
        inputs = random_inputs(rng, 50, deadline_s=float(rng.uniform(4.0, 8.0)), mean_snr_db=(-5.0, 20.0))
        device_cost = -rng.exponential(0.5, 50) if i % 2 else None  # participation rewards
        problem = RoundProblem(inputs, rng.uniform(0.0, 5.0, 50), float(rng.uniform(1.0, 30.0)),
                               device_cost=device_cost)
        fast, best = solve_lagrangian(problem), exact.solve(problem)
        scale = max(1.0, abs(best.objective))
        assert fast.lower_bound <= best.objective + 1e-9 * scale
        assert best.objective <= fast.objective + 1e-9 * scale
        gaps.append((fast.objective - best.objective) / scale)
    assert np.mean(gaps) < 1e-3 and max(gaps) < 1e-2


def test_plan_is_feasible_and_on_time():
    rng = np.random.default_rng(3)
    inputs = random_inputs(rng, 30, deadline_s=5.0, mean_snr_db=(-5.0, 20.0))
    problem = RoundProblem(inputs, rng.uniform(0.0, 5.0, 30), 10.0)
    plan = solve_lagrangian(problem)
    assert plan.bandwidth_share.sum() <= 1 + 1e-9 and plan.late == []
    assert np.all(plan.predicted_delay_s[plan.scheduled] <= inputs.deadline_s * (1 + 1e-9))
    assert plan.solver == "lagrangian"


def test_no_feasible_device_gives_an_empty_plan_with_the_reason():
    inputs = random_inputs(np.random.default_rng(4), 5, deadline_s=0.1)
    plan = solve_lagrangian(RoundProblem(inputs, np.zeros(5), 1.0))
    assert plan.n_scheduled == 0 and plan.reason == "no device can meet the deadline"
    assert len(plan.infeasible) == 5


def test_empty_queues_maximise_participation():
    rng = np.random.default_rng(5)
    inputs = random_inputs(rng, 20, deadline_s=6.0, mean_snr_db=(-5.0, 20.0))
    problem = RoundProblem(inputs, np.zeros(20), 1.0)
    plan = solve_lagrangian(problem)
    assert plan.n_scheduled == problem.max_count
    assert plan.bandwidth_share.sum() == pytest.approx(1.0)
