"""Validation of what goes into and out of the scheduler, and the small closed forms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from optimizer import Plan, RoundProblem, VirtualQueues, make_policy, partial_participation_phi, round_weight
from optimizer.rates import rate_model
from optimizer.synthetic import random_inputs


@pytest.fixture
def inputs():
    return random_inputs(np.random.default_rng(0), 6)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("energy_budget_j", -0.1, "energy_budget_j must be >= 0"),
    ("snr_db", [1.0, np.nan, 3.0, 4.0, 5.0, 6.0], "snr_db is not finite"),
    ("bandwidth_hz", 0.0, "bandwidth_hz must be > 0"),
    ("deadline_s", -1.0, "deadline_s must be > 0"),
    ("uplink_bytes", np.ones(4), "uplink_bytes has shape"),
    ("tx_power_w", np.inf, "tx_power_w must be finite"),
])
def test_invalid_inputs_name_the_field(inputs, field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(inputs, **{field: value})


def test_scalars_broadcast_to_every_device(inputs):
    assert inputs.tx_power_w.shape == (6,) and np.all(inputs.tx_power_w == 0.2)


def test_problem_rejects_bad_state(inputs):
    with pytest.raises(ValueError, match="queues must be finite and >= 0"):
        RoundProblem(inputs, -np.ones(6), 1.0)
    with pytest.raises(ValueError, match="weight"):
        RoundProblem(inputs, np.zeros(6), np.nan)
    with pytest.raises(ValueError, match="unknown rate model 'shannon'"):
        RoundProblem(inputs, np.zeros(6), 1.0, rate="shannon")


def _plan(shares):
    k = len(shares)
    return Plan(np.ones(k, bool), shares, np.ones(k), np.ones(k), phi=0.0, convergence_term=0.0,
                energy_term=0.0, solver="hand", license="n/a", solve_time_s=0.0)


def test_plan_refuses_shares_over_the_band():
    with pytest.raises(ValueError, match=r"bandwidth_share sums to 1\.2\d* > 1"):
        _plan([0.5, 0.4, 0.3])
    with pytest.raises(ValueError, match="no band"):
        _plan([0.5, 0.0])
    assert _plan([0.5, 0.5]).n_scheduled == 2


@pytest.mark.parametrize("rate", ["paper", "simple"])
def test_min_share_meets_the_deadline_exactly(inputs, rate):
    problem = RoundProblem(dataclasses.replace(inputs, deadline_s=4.0), np.zeros(6), 1.0, rate=rate)
    ok = problem.feasible
    assert ok.size > 0
    np.testing.assert_allclose(problem.delay(ok, problem.beta[ok]), 4.0, rtol=1e-12)
    assert np.all(problem.delay(ok, problem.beta[ok] * 0.99) > 4.0)


def test_unschedulable_devices_get_a_reason(inputs):
    late = dataclasses.replace(inputs, deadline_s=float(inputs.fixed_time_s()[0]) + 1e-3)
    problem = RoundProblem(late, np.zeros(6), 1.0)
    assert 0 in problem.reasons and "needs" in problem.reasons[0]
    slow = dataclasses.replace(inputs, compute_time_s=np.full(6, 20.0))
    problem = RoundProblem(slow, np.zeros(6), 1.0)
    assert problem.feasible.size == 0 and "leaves no time" in problem.reasons[3]


def test_energy_is_convex_and_decreasing(inputs):
    problem = RoundProblem(inputs, np.ones(6), 1.0)
    b = np.linspace(0.05, 1.0, 50)
    for k in range(6):
        e = problem.energy(np.full(b.size, k), b)
        assert np.all(np.diff(e) < 0) and np.all(np.diff(e, 2) > 0)


def test_paper_rate_matches_shannon_with_band_scaled_noise():
    model = rate_model("paper")
    snr = np.array([10.0])  # p g / (B N0) over the full band
    b = np.array([0.25])
    np.testing.assert_allclose(model.f(b, snr), 0.25 * np.log2(1 + 10.0 / 0.25))


def test_convergence_weights():
    assert partial_participation_phi(1, 10) == 1.0 and partial_participation_phi(10, 10) == 0.0
    assert partial_participation_phi(1, 1) == 0.0
    assert round_weight(29, 30, 0.1) == 1.0 and round_weight(0, 30, 0.1) == pytest.approx(0.9 ** 29)
    with pytest.raises(ValueError):
        round_weight(30, 30, 0.1)


def test_virtual_queue_update():
    q = VirtualQueues(3)
    q.update([True, False, True], [1.0, 5.0, 0.2], 0.5)
    np.testing.assert_allclose(q.values, [0.5, 0.0, 0.0])
    q.update([True, True, False], [1.0, 1.0, np.nan], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(q.values, [1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="realised_energy_j of scheduled devices"):
        q.update([True, False, False], [-1.0, 0.0, 0.0], 0.5)


def test_unknown_policy_lists_the_names():
    with pytest.raises(ValueError, match="'lyapunuv' is not a policy .did you mean lyapunov.*energy-greedy"):
        make_policy("lyapunuv")

