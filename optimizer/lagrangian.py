"""Fast solver: a price λ on the band, then add/drop/swap local search on the true objective.

Pricing the budget Σ b <= 1 decouples the devices: for a given λ each device's best share and
cost c_j(λ) = min_b Q_j E_j(b) + λ b are independent, and with n devices the best choice is the
n cheapest, so the dual function is
    D(λ) = −λ + min_{1 <= n <= n_max} [ weight·Φ(n) + (sum of the n smallest c_j(λ)) ],
a certified lower bound on the round's optimum for every λ >= 0 (weak duality), concave in λ.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from optimizer.plan import Plan, empty_plan, make_plan
from optimizer.problem import RoundProblem, SplitStart

PRICE_STEPS = 40  # steps of the dual search
DUAL_TOL = 1e-9  # relative: the dual search stops when no price can beat its best point by more
SEARCH_CANDIDATES = 6  # moves evaluated exactly per local-search step
SEARCH_STEPS = 100


@dataclass(frozen=True)
class DualPoint:
    """D(λ) and what achieves it, over the devices `devices` (sorted by cost c)."""

    price: float
    devices: np.ndarray  # feasible devices, cheapest first
    shares: np.ndarray  # b_j(λ), same order
    costs: np.ndarray  # c_j(λ), same order (ascending)
    count_terms: np.ndarray  # weight·Φ(n) + prefix cost, n = 1..n_max
    value: float
    next_price: float  # where the schedule would just fill the band, to first order (nan: unknown)

    @property
    def count(self) -> int:
        return int(np.argmin(self.count_terms)) + 1

    @property
    def schedule(self) -> np.ndarray:
        return np.sort(self.devices[: self.count])

    @property
    def subgradient(self) -> float:
        return float(self.shares[: self.count].sum() - 1.0)

    def shares_by_device(self, size: int) -> np.ndarray:
        """The shares indexed by device (0 for devices not in this point)."""
        full = np.zeros(size)
        full[self.devices] = self.shares
        return full

    def forced_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower bounds on any schedule that includes device devices[r], and on any with n devices.

        Including device r, the best n-set at this price is r plus the n−1 cheapest others.
        """
        n = np.arange(1, self.count_terms.size + 1)
        prefix = np.concatenate([[0.0], np.cumsum(self.costs)])
        rank = np.arange(self.costs.size)[:, None]
        others = np.where(rank >= n[None, :] - 1, prefix[n - 1][None, :],
                          prefix[n][None, :] - self.costs[:, None])
        phis = self.count_terms - prefix[n]
        with_device = (phis[None, :] + self.costs[:, None] + others).min(axis=1) - self.price
        return with_device, self.count_terms - self.price


def dual_point(problem: RoundProblem, devices: np.ndarray, phi_terms: np.ndarray, price: float,
               start: np.ndarray | None = None) -> DualPoint:
    """Evaluate D(price); phi_terms[n-1] = weight·Φ(n) for n = 1..n_max; `start` warm-starts the shares.

    The next price is a Newton step on ln Σ b over the schedule's interior shares (each about a
    power of the price), aiming at the band left by the others.
    """
    b = problem.share_at_price(devices, price, start)
    c = problem.queues[devices] * problem.energy(devices, b) + price * b
    order = np.argsort(c, kind="stable")
    terms = phi_terms + np.cumsum(c[order])[: phi_terms.size]
    count = int(np.argmin(terms)) + 1
    chosen = devices[order[:count]]
    share = b[order[:count]]
    free = (share > problem.beta[chosen]) & (share < 1.0)
    free_sum = float(share[free].sum())
    left = 1.0 - (float(share.sum()) - free_sum)
    next_price = np.nan
    if price > 0 and free_sum > 0 and left > 0:
        slope = float(np.sum(share[free] / problem._log_marginal(chosen[free], share[free])[1]))
        next_price = price * float(np.exp(np.log(left / free_sum) * free_sum / slope))
    return DualPoint(price, devices[order], b[order], c[order], terms, float(terms[count - 1] - price),
                     next_price)


def phi_terms(problem: RoundProblem, n_max: int) -> np.ndarray:
    return np.array([problem.convergence_term(n) for n in range(1, n_max + 1)])


def maximise_dual(problem: RoundProblem, devices: np.ndarray,
                  n_max: int) -> tuple[DualPoint, list[DualPoint]]:
    """Best dual point and every point visited, inside a bracket on the subgradient's sign.

    D is concave with supergradient g(λ) = Σ b − 1 over the chosen schedule. Each step takes the
    newest point's Newton step if it lands inside the bracket (a smooth maximum), else the price
    where the tangents of D at the bracket's ends cross (a kink between two schedules). A schedule
    whose Newton step led to another schedule is at such a kink, so it proposes no more steps.
    The tangents also bound D from above: the search stops when no price can beat the best point
    by more than DUAL_TOL.
    """
    terms = phi_terms(problem, n_max)
    low = dual_point(problem, devices, terms, 0.0)
    seen = [low]
    if low.subgradient <= 0:
        return low, seen
    hi_price = float(np.exp(problem.edge_log_marginals[0][devices].max(initial=0.0))) + 1.0
    while (high := dual_point(problem, devices, terms, hi_price)).subgradient > 0:
        seen.append(high)
        low, hi_price = high, 4.0 * hi_price
    seen.append(high)
    newest, kinked = high, set()
    for _ in range(PRICE_STEPS):
        best = max(seen, key=lambda p: p.value)
        g_low, g_high = low.subgradient, high.subgradient
        cross = low.price + (high.value - low.value - g_high * (high.price - low.price)) / (g_low - g_high)
        if low.value + g_low * (cross - low.price) - best.value <= DUAL_TOL * max(1.0, abs(best.value)):
            break
        key = newest.schedule.tobytes()
        newton = key not in kinked and low.price < newest.next_price < high.price
        price = newest.next_price if newton else cross
        newest = dual_point(problem, devices, terms, price, newest.shares_by_device(problem.devices)[devices])
        if newton and newest.schedule.tobytes() != key:
            kinked.add(key)
        seen.append(newest)
        if newest.subgradient > 0:
            low = newest
        else:
            high = newest
    return max(seen, key=lambda p: p.value), seen


def _warm(problem: RoundProblem, point: DualPoint, idx: np.ndarray) -> SplitStart | None:
    """The point's price and shares of idx, to warm-start the split of idx (None at price 0)."""
    return (point.price, point.shares_by_device(problem.devices)[idx]) if point.price > 0 else None


def local_search(problem: RoundProblem, devices: np.ndarray, start: np.ndarray,
                 near: DualPoint) -> tuple[float, np.ndarray, np.ndarray]:
    """Add/drop/swap moves ranked by their estimate at the current KKT price, checked exactly.

    Joining costs a device c_j(price); leaving saves a member its energy plus its share at the
    price; the count term changes by the step in weight·Φ. Since the members sit at their best
    shares for that price, each estimate is also the dual bound of the new schedule minus the
    current value: a move estimated >= 0 cannot improve, so only negative ones are evaluated with
    the exact split, the first improving one is taken, until none improves. The shares at the
    dual point `near`, then at the current price, warm-start the share and split solves.
    """
    current = np.sort(start)
    value, b = problem.evaluate(current, _warm(problem, near, current))
    beta = problem.beta
    at_price = near.shares_by_device(problem.devices)
    for _ in range(SEARCH_STEPS):
        price = problem.kkt_split(current)[1]
        outside = np.setdiff1d(devices, current)
        n, spare = current.size, 1.0 - beta[current].sum()
        keep = problem.queues[current] * problem.energy(current, b) + price * b
        b_out = at_price[outside] = problem.share_at_price(outside, price, at_price[outside])
        at_price[current] = b
        join = problem.queues[outside] * problem.energy(outside, b_out) + price * b_out
        term = problem.convergence_term
        add = (term(n + 1) - term(n) if n < devices.size else np.inf) + join
        add[beta[outside] > spare] = np.inf
        drop = (term(n - 1) - term(n) if n > 1 else np.inf) - keep
        swap = join[None, :] - keep[:, None]
        swap[beta[outside][None, :] - beta[current][:, None] > spare] = np.inf
        estimates = np.concatenate([add, drop, swap.ravel()])
        tol = 1e-12 * max(1.0, abs(value))
        picks = np.argsort(estimates)[:SEARCH_CANDIDATES]
        moved = False
        for pick in picks[estimates[picks] < -tol]:
            if pick < outside.size:
                candidate = np.append(current, outside[pick])
            elif pick < outside.size + n:
                candidate = np.delete(current, pick - outside.size)
            else:
                i, j = divmod(int(pick) - outside.size - n, outside.size)
                candidate = np.append(np.delete(current, i), outside[j])
            warm = (price, at_price[candidate]) if price > 0 else None
            cand_value, cand_b = problem.evaluate(candidate, warm)
            if moved := cand_value < value - tol:
                order = np.argsort(candidate)
                current, value, b = candidate[order], cand_value, cand_b[order]
                break
        if not moved:
            break
    return value, current, b


@dataclass(frozen=True)
class SearchResult:
    """The best schedule found, its exact split and value, and the best dual point (the bound)."""

    dual: DualPoint
    value: float
    schedule: np.ndarray
    shares: np.ndarray

    @property
    def lower_bound(self) -> float:
        return min(self.dual.value, self.value)


def search(problem: RoundProblem) -> SearchResult:
    """Dual bound, best primal among the dual points' schedules, then local search.

    Needs at least one feasible device.
    """
    devices = problem.feasible
    best, seen = maximise_dual(problem, devices, problem.max_count)
    # start from the cheaper of the best dual point's schedule and the last one that fits the band
    fits = [p for p in seen if p.subgradient <= 0]
    starts = [p.schedule for p in (best, *fits[-1:])]
    first = min(starts, key=lambda idx: problem.evaluate(idx, _warm(problem, best, idx))[0])
    value, idx, b = local_search(problem, devices, first, best)
    return SearchResult(best, value, idx, b)


def solve_lagrangian(problem: RoundProblem) -> Plan:
    """The fast policy's solve: the search's schedule, with its certified lower bound."""
    start = time.perf_counter()
    if problem.feasible.size == 0:
        return empty_plan(problem, "no device can meet the deadline", solver="lagrangian", license="n/a",
                          solve_time_s=time.perf_counter() - start)
    found = search(problem)
    return make_plan(problem, found.schedule, found.shares, solver="lagrangian", license="n/a",
                     solve_time_s=time.perf_counter() - start, lower_bound=found.lower_bound)
