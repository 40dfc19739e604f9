"""The compiled kernels (optimizer/kernels.py) against plain numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import RoundProblem
from optimizer.kernels import cheapest_first, envelope_max, still_cheapest
from optimizer.rates import rate_model
from optimizer.synthetic import random_inputs


def problem_with_empty_queues(rng: np.random.Generator, k: int, rate: str) -> RoundProblem:
    inputs = random_inputs(rng, k, deadline_s=float(rng.uniform(4.0, 8.0)), mean_snr_db=(-5.0, 20.0))
    return RoundProblem(inputs, rng.uniform(0.0, 5.0, k) * (rng.random(k) < 0.8), 5.0, rate=rate)


@pytest.mark.parametrize("rate", ["paper", "simple"])
def test_shares_and_costs_at_a_price_match_the_safeguarded_solve(rate):
    """Curves.at_price (clamped Newton, warm or cold) = RoundProblem.shares_and_slopes (bracketed
    Newton in numpy), and its costs are Q E(b) + price·b, at prices from all-ones to all-β."""
    rng = np.random.default_rng(7)
    checked_inner = 0
    for _ in range(20):
        problem = problem_with_empty_queues(rng, 40, rate)
        devices = problem.feasible
        curves = problem.curves(devices)
        at_beta, at_one = problem.edge_log_marginals
        live = np.isfinite(at_one[devices])
        prices = np.exp(np.linspace(at_one[devices][live].min() - 1, at_beta[devices][live].max() + 1, 9))
        warm = None
        for price in [0.0, *prices]:
            b, slopes, y, costs = curves.at_price(price, warm, 1e-3)
            ref_b, ref_slopes = problem.shares_and_slopes(devices, price, tol=1e-9)
            np.testing.assert_allclose(b, ref_b, rtol=1e-6, atol=1e-12)  # about tol² = 1e-6
            np.testing.assert_allclose(slopes, ref_slopes, rtol=1e-4, atol=1e-9)  # at the last-but-one step
            np.testing.assert_allclose(y, np.log(b), atol=1e-12)
            energy = problem.queues[devices] * problem.energy(devices, b)
            np.testing.assert_allclose(costs, energy + price * b, rtol=1e-12)
            checked_inner += int(((b > problem.beta[devices]) & (b < 1)).sum())
            warm = (y, slopes, price) if price > 0 else None
    assert checked_inner > 500  # most checks were of interior shares, not of the edges


@pytest.mark.parametrize("rate", ["paper", "simple"])
def test_log_marginal_is_the_log_of_the_energy_saving_and_its_slope(rate):
    model = rate_model(rate)
    b = np.geomspace(1e-3, 1.0, 50)
    snr = np.full(50, 7.0)
    log_m, slope = model.log_marginal(b, snr)
    np.testing.assert_allclose(np.exp(log_m), model.df(b, snr) / model.f(b, snr) ** 2, rtol=1e-12)
    h = 1e-6
    up, down = model.log_marginal(b * np.exp(h), snr)[0], model.log_marginal(b * np.exp(-h), snr)[0]
    numeric = (up - down) / (2 * h)
    np.testing.assert_allclose(slope, numeric, rtol=1e-6)
    scalar = [model.log_marginal(float(x), 7.0) for x in b]  # the loops call them on floats
    np.testing.assert_allclose([s[0] for s in scalar], log_m, rtol=1e-14)


def test_order_from_a_hint_is_the_sorted_order():
    rng = np.random.default_rng(3)
    for _ in range(50):
        costs = rng.normal(size=200)
        exact = np.argsort(costs, kind="stable")
        near = exact.copy()
        for i in rng.integers(0, 199, 10):  # a few neighbours out of order
            near[[i, i + 1]] = near[[i + 1, i]]
        for hint in (near, exact[::-1], rng.permutation(200), np.empty(0, np.int64)):
            order = cheapest_first(costs, hint)
            assert sorted(order.tolist()) == list(range(200))
            np.testing.assert_array_equal(costs[order], costs[exact])


def test_still_cheapest_matches_a_full_re_ranking():
    rng = np.random.default_rng(5)
    agree = {True: 0, False: 0}
    for _ in range(300):
        n, n_max = 60, 30
        costs = np.sort(rng.uniform(0.0, 1.0, n))
        shares = rng.uniform(0.01, 0.3, n)
        phi = 2.0 * np.linspace(1.0, 0.0, n_max) ** 2
        terms = phi + np.cumsum(costs)[:n_max]
        count = int(np.argmin(terms)) + 1
        delta = float(rng.normal(0.0, 0.2))
        moved = costs + shares * delta
        order = np.argsort(moved, kind="stable")
        new_count = int(np.argmin(phi + np.cumsum(moved[order])[:n_max])) + 1
        expected = new_count == count and set(order[:count].tolist()) == set(range(count))
        assert still_cheapest(costs, shares, delta, terms, count) == expected
        agree[expected] += 1
    assert min(agree.values()) > 30  # both answers were exercised


def test_envelope_max_is_the_top_of_the_lowest_line():
    rng = np.random.default_rng(11)
    for _ in range(200):
        lines = np.column_stack([rng.uniform(0, 1, 4), rng.normal(size=4), rng.normal(size=4)])
        x, top = envelope_max(lines, 0.0, 1.0)
        grid = np.linspace(0.0, 1.0, 20001)
        heights = (lines[:, 1, None] + lines[:, 2, None] * (grid[None, :] - lines[:, 0, None])).min(axis=0)
        assert top == pytest.approx(heights.max(), abs=1e-3)
        assert top >= heights.max() - 1e-12
        at_x = (lines[:, 1] + lines[:, 2] * (x - lines[:, 0])).min()
        assert at_x == pytest.approx(top, abs=1e-12) and 0.0 <= x <= 1.0
