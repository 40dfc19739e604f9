"""Fast solver: a price λ on the band, then add/drop/swap local search on the true objective.

Pricing the budget Σ b <= 1 decouples the devices: for a given λ each device's best share and
cost c_j(λ) = min_b Q_j E_j(b) + λ b are independent, and with n devices the best choice is the
n cheapest, so the dual function is
    D(λ) = −λ + min_{1 <= n <= n_max} [ weight·Φ(n) + (sum of the n smallest c_j(λ)) ],
a certified lower bound on the round's optimum for every λ >= 0 (weak duality), concave in λ.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from optimizer.kernels import envelope_max, rank_by_cost, still_cheapest, sums_at
from optimizer.plan import Plan, empty_plan, make_plan
from optimizer.problem import RoundProblem, SplitStart
from optimizer.rates import RATE_MODELS
from optimizer.synthetic import random_inputs

PRICE_STEPS = 40  # steps of the dual search
DUAL_TOL = 1e-9  # relative: the dual search stops when no price can beat its best point by more
SHARE_TOL = 1e-3  # Newton tolerance of the shares at a dual point: they come out accurate to ~1e-6,
# and c_j(λ), a minimum over the share, to rounding (its error is second order in theirs)
KINK_MARGIN = 1e-3  # kink steps within this fraction of the bracket from its ends are not taken
SEARCH_CANDIDATES = 6  # moves evaluated exactly per local-search step
SEARCH_STEPS = 100
SEARCH_TOL = 1e-12  # relative: a move must improve the value by more than this to be taken
NO_HINT = np.empty(0, dtype=np.int64)  # rank_by_cost's hint when no earlier order is at hand


@dataclass(frozen=True)
class DualPoint:
    """D(λ) and what achieves it, over the devices `devices` (sorted by cost c)."""

    price: float
    devices: np.ndarray  # feasible devices, cheapest first
    shares: np.ndarray  # b_j(λ), same order
    costs: np.ndarray  # c_j(λ), same order (ascending)
    count_terms: np.ndarray  # weight·Φ(n) + prefix cost, n = 1..n_max
    count: int  # how many of the cheapest devices the schedule takes: argmin of count_terms, + 1
    value: float
    subgradient: float  # Σ b − 1 over the schedule: a supergradient of D at price
    next_price: float  # where the schedule would just fill the band, to first order (nan: unknown)
    slopes: np.ndarray  # d ln h / d ln b near the interior shares (0 at the edges), same order
    raw: tuple[np.ndarray, np.ndarray]  # ln b and slopes in the order of the devices searched (not by cost)
    order: np.ndarray  # positions in that order, cheapest first (devices = searched[order])
    rank: np.ndarray  # the inverse: where each searched device stands here

    @cached_property
    def schedule(self) -> np.ndarray:
        return np.sort(self.devices[: self.count])

    @cached_property
    def key(self) -> bytes:
        return self.schedule.tobytes()

    def holds_at(self, price: float) -> bool:
        """Whether the schedule stays the cheapest at price, to first order (c_j' = b_j)."""
        return still_cheapest(self.costs, self.shares, price - self.price, self.count_terms, self.count)

    def moved_split(self, price: float) -> SplitStart:
        """Shares of the schedule (in its sorted order) moved along their slopes to price: the
        schedule's own Newton step from here, to warm-start its split."""
        order = np.argsort(self.devices[: self.count])
        b, slope = self.shares[order], self.slopes[order]
        free = slope < 0
        b[free] *= np.exp(math.log(price / self.price) / slope[free])
        return price, b

    def line_of(self, other: DualPoint, phi_terms: np.ndarray) -> tuple[float, float]:
        """Value and slope in λ, at this price, of other's schedule: a concave function of λ above D,
        so its tangent here bounds D from above everywhere."""
        costs, shares = sums_at(self.rank, other.order[: other.count], self.costs, self.shares)
        return float(phi_terms[other.count - 1]) + costs - self.price, shares - 1.0

    def kink_price(self, other_line: tuple[float, float]) -> float:
        """Newton step on the difference of this point's schedule's value and another's (its value
        and slope here, from line_of): where D has its kink between the two schedules."""
        value, slope = other_line
        g = self.subgradient
        return self.price - (self.value - value) / (g - slope) if g != slope else np.nan

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
               start: DualPoint | None = None) -> DualPoint:
    """Evaluate D(price); phi_terms[n-1] = weight·Φ(n) for n = 1..n_max.

    `start`, a dual point, warm-starts the shares (moved along their slopes to this price). The
    next price is a Newton step on ln Σ b over the schedule's interior shares (each about a power
    of the price), aiming at the band left by the others.
    """
    warm = (start.raw[0], start.raw[1], start.price) if start is not None and start.price > 0 else None
    b, slopes, y, c = problem.curves(devices).at_price(price, warm, SHARE_TOL)
    order, rank, terms, count, subgradient, next_price = rank_by_cost(
        c, b, slopes, float(price), phi_terms, NO_HINT if start is None else start.order)
    return DualPoint(price, devices[order], b[order], c[order], terms, count, float(terms[count - 1] - price),
                     subgradient, next_price, slopes[order], (y, slopes), order, rank)


def phi_terms(problem: RoundProblem, n_max: int) -> np.ndarray:
    return problem.count_terms[:n_max]


def maximise_dual(problem: RoundProblem, devices: np.ndarray,
                  n_max: int) -> tuple[DualPoint, list[DualPoint]]:
    """Best dual point and every point visited, inside a bracket on the subgradient's sign.

    D is concave with supergradient g(λ) = Σ b − 1 over the chosen schedule. Each step takes the
    newest point's Newton step if it lands inside the bracket (a smooth maximum). Once both ends
    of the bracket come from the search and hold different schedules, each end also gives the
    tangent of the other end's schedule's value (concave in λ, above D): the Newton step on the
    difference of the two schedules' values (the kink between them) is the other candidate, and
    of the two the one met first walking from the newest point towards the other end is taken;
    with neither inside, the price where the lowest of these tangents is highest (cutting planes).
    When the schedule is predicted to hold at the Newton step's price, the step goes straight to
    its limit, the schedule's KKT price (its split, which the search needs anyway), where D
    meets the schedule's value. The tangents bound D from above, and so does every split value:
    the search stops when no price can beat the best point by more than DUAL_TOL.
    """
    terms = problem.count_terms[:n_max]
    low = dual_point(problem, devices, terms, 0.0)
    seen = [low]
    if low.subgradient <= 0:
        return low, seen
    hi_price = float(np.exp(problem.edge_log_marginals[0][devices].max(initial=0.0))) + 1.0
    while (high := dual_point(problem, devices, terms, hi_price)).subgradient > 0:
        seen.append(high)
        low, hi_price = high, 4.0 * hi_price
    seen.append(high)
    newest, inner = high, [False, False]  # whether low / high come from the search (not the bracketing)
    primal, split = np.inf, set()  # the best value of a schedule split so far (above D), and those split
    best = max(seen, key=lambda p: p.value)
    for _ in range(PRICE_STEPS):
        lines = [(low.price, low.value, low.subgradient), (high.price, high.value, high.subgradient)]
        crossed = None
        if inner[0] and inner[1] and low.key != high.key:
            crossed = low.line_of(high, terms), high.line_of(low, terms)
            lines += [(low.price, *crossed[0]), (high.price, *crossed[1])]
        price, top = _model_max(lines, low.price, high.price)
        if min(top, primal) - best.value <= DUAL_TOL * max(1.0, abs(best.value)):
            break
        own = newest.next_price if low.price < newest.next_price < high.price else np.nan
        kink = np.nan
        if crossed is not None:
            kink = newest.kink_price(crossed[0] if newest is low else crossed[1])
            near = KINK_MARGIN * (high.price - low.price)  # a kink step onto an end is a cycle
            kink = kink if low.price + near < kink < high.price - near else np.nan
        steps = [x for x in (own, kink) if not math.isnan(x)]
        if steps:  # the first of the two models' maxima met walking from newest towards other
            price = min(steps) if newest is low else max(steps)
        if price == own and newest.key not in split and newest.holds_at(price):
            # the Newton step's limit, if the schedule holds: its KKT price, where D meets its value
            split.add(newest.key)
            value = problem.evaluate(newest.schedule, newest.moved_split(price))[0]
            primal = min(primal, value)
            kkt = problem.kkt_split(newest.schedule) if math.isfinite(value) else None
            if kkt is not None and low.price < kkt[1] < high.price:
                price = kkt[1]
        newest = dual_point(problem, devices, terms, price, newest)
        seen.append(newest)
        best = newest if newest.value > best.value else best
        if newest.subgradient > 0:
            low, inner[0] = newest, True
        else:
            high, inner[1] = newest, True
    return best, seen


def _model_max(lines: list[tuple[float, float, float]], lo: float, hi: float) -> tuple[float, float]:
    """Where on [lo, hi] the lowest of the lines (price, value, slope) is highest, and that height."""
    if len(lines) == 2:  # a rising and a falling tangent: where they cross
        (p1, v1, g1), (p2, v2, g2) = lines
        x = p1 + (v2 - v1 - g2 * (p2 - p1)) / (g1 - g2)
        return x, v1 + g1 * (x - p1)
    return envelope_max(np.array(lines), lo, hi)


def _warm(problem: RoundProblem, point: DualPoint, idx: np.ndarray) -> SplitStart | None:
    """The point's price and shares of idx, to warm-start the split of idx (None at price 0)."""
    return (point.price, point.shares_by_device(problem.devices)[idx]) if point.price > 0 else None


def local_search(problem: RoundProblem, devices: np.ndarray, start: np.ndarray,
                 near: DualPoint) -> tuple[float, np.ndarray, np.ndarray]:
    """Add/drop/swap moves ranked by their estimate at the current KKT price, checked exactly.

    Joining costs a device c_j(price); leaving saves a member its energy and own cost plus its
    share at the price; the count term changes by the step in weight·Φ. Since the members sit at their best
    shares for that price, each estimate is also the dual bound of the new schedule minus the
    current value: a move estimated >= 0 cannot improve, so only negative ones are evaluated with
    the exact split, the first improving one is taken, until none improves. The shares at the
    dual point `near`, then at the current price, warm-start the share and split solves.
    """
    current = np.sort(start)
    value, b = problem.evaluate(current, _warm(problem, near, current))
    beta = problem.beta
    curves = problem.curves(devices)  # devices is sorted (problem.feasible)
    slide = (near.raw[0], near.raw[1], near.price) if near.price > 0 else None
    at_price = np.zeros(problem.devices)
    for _ in range(SEARCH_STEPS):
        price = problem.kkt_split(current)[1]
        mask = np.ones(devices.size, bool)
        mask[np.searchsorted(devices, current)] = False
        outside = devices[mask]
        n, spare = current.size, 1.0 - beta[current].sum()
        keep = problem.queues[current] * problem.energy(current, b) + problem.device_cost[current] + price * b
        b_all, slopes, y, costs = curves.at_price(price, slide, SHARE_TOL)
        if price > 0:
            slide = (y, slopes, price)
        join = costs[mask]
        at_price[devices] = b_all
        at_price[current] = b
        term = problem.convergence_term
        add = (term(n + 1) - term(n) if n < devices.size else np.inf) + join
        add[beta[outside] > spare] = np.inf
        drop = (term(n - 1) - term(n) if n > 1 else np.inf) - keep
        swap = join[None, :] - keep[:, None]
        swap[beta[outside][None, :] - beta[current][:, None] > spare] = np.inf
        estimates = np.concatenate([add, drop, swap.ravel()])
        tol = SEARCH_TOL * max(1.0, abs(value))
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
    # (the second is not split when its value at a dual point, a lower bound, already loses)
    fits = [p for p in seen if p.subgradient <= 0]
    first = best.schedule
    if fits and fits[-1].key != best.key:
        other = fits[-1]
        bound = max(other.value, best.line_of(other, problem.count_terms)[0])
        if problem.evaluate(first, _warm(problem, best, first))[0] > bound:
            other_value = problem.evaluate(other.schedule, _warm(problem, best, other.schedule))[0]
            if other_value < problem.evaluate(first)[0]:
                first = other.schedule
    value, b = problem.evaluate(first)
    split = problem.kkt_split(first) if math.isfinite(value) else None
    if split is not None and split[1] > 0 and split[1] != best.price:
        # D at the schedule's own KKT price is its value when the schedule stays the cheapest there
        at_split = dual_point(problem, devices, problem.count_terms[: problem.max_count], split[1], best)
        seen.append(at_split)
        best = max(best, at_split, key=lambda p: p.value)
    if value - best.value <= 0.5 * SEARCH_TOL * max(1.0, abs(value)):
        # every move's estimate is a dual bound minus the value, so >= best.value − value: none
        # could pass the local search's test, which would return `first` as it is
        return SearchResult(best, value, first, b)
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


def load_kernels() -> None:
    """Compile the numba kernels (optimizer/kernels.py), or load them from numba's cache, by solving
    a few synthetic rounds with each rate model, so that no round's solve time includes it: about
    6 s the first time on a machine (and after the kernels change), under a second after that."""
    rng = np.random.default_rng(0)
    for rate in RATE_MODELS:
        for _ in range(3):
            inputs = random_inputs(rng, 40, deadline_s=6.0, mean_snr_db=(-5.0, 20.0))
            queues = rng.uniform(0.0, 5.0, 40) * (rng.random(40) < 0.9)
            problem = RoundProblem(inputs, queues, 10.0, rate=rate)
            found = search(problem)
            problem.energy_slope(found.schedule, found.shares)  # the exact solver's cuts
            problem.kkt_split(problem.feasible[:2])  # a split from scratch (median start)
            problem.shares_and_slopes(problem.feasible, found.dual.price)  # the safeguarded path
