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

from optimizer.plan import Plan, empty_plan, make_plan
from optimizer.problem import RoundProblem, SplitStart

PRICE_STEPS = 40  # steps of the dual search
DUAL_TOL = 1e-9  # relative: the dual search stops when no price can beat its best point by more
SHARE_TOL = 1e-3  # Newton tolerance of the shares at a dual point: they come out accurate to ~1e-6,
# and c_j(λ), a minimum over the share, to rounding (its error is second order in theirs)
KINK_MARGIN = 1e-3  # kink steps within this fraction of the bracket from its ends are not taken
SEARCH_CANDIDATES = 6  # moves evaluated exactly per local-search step
SEARCH_STEPS = 100
SEARCH_TOL = 1e-12  # relative: a move must improve the value by more than this to be taken


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
    slopes: np.ndarray  # d ln h / d ln b near the interior shares (0 at the edges), same order
    raw: tuple[np.ndarray, np.ndarray] | None = None  # ln b and slopes of the live devices, unsorted

    @cached_property
    def count(self) -> int:
        return int(np.argmin(self.count_terms)) + 1

    @cached_property
    def schedule(self) -> np.ndarray:
        return np.sort(self.devices[: self.count])

    @cached_property
    def key(self) -> bytes:
        return self.schedule.tobytes()

    @cached_property
    def subgradient(self) -> float:
        return float(self.shares[: self.count].sum() - 1.0)

    def holds_at(self, price: float) -> bool:
        """Whether the schedule stays the cheapest at price, to first order (c_j' = b_j)."""
        c = self.costs + self.shares * (price - self.price)
        top = np.argpartition(c, self.count)[: self.count] if self.count < c.size else np.arange(c.size)
        n = self.count_terms.size
        terms = (self.count_terms - np.cumsum(self.costs[:n])) + np.cumsum(np.sort(c)[:n])
        return int(np.argmin(terms)) + 1 == self.count and bool(np.all(top < self.count))

    def moved_split(self, price: float) -> SplitStart:
        """Shares of the schedule (in its sorted order) moved along their slopes to price: the
        schedule's own Newton step from here, to warm-start its split."""
        order = np.argsort(self.devices[: self.count])
        b, slope = self.shares[: self.count][order], self.slopes[: self.count][order]
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = np.where(slope < 0, b * np.exp(math.log(price / self.price) / slope), b)
        return price, moved

    def line_of(self, other: DualPoint, phi_terms: np.ndarray) -> tuple[float, float]:
        """Value and slope in λ, at this price, of other's schedule: a concave function of λ above D,
        so its tangent here bounds D from above everywhere."""
        mask = np.zeros(int(self.devices.max()) + 1, bool)  # both points range over the same devices
        mask[other.devices[: other.count]] = True
        members = mask[self.devices]
        value = phi_terms[other.count - 1] + float(self.costs[members].sum()) - self.price
        return value, float(self.shares[members].sum()) - 1.0

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
               start: np.ndarray | DualPoint | None = None) -> DualPoint:
    """Evaluate D(price); phi_terms[n-1] = weight·Φ(n) for n = 1..n_max; `start` warm-starts the shares.

    `start` is shares of `devices`, or a dual point (its shares moved along their slopes to this
    price). The next price is a Newton step on ln Σ b over the schedule's interior shares (each
    about a power of the price), aiming at the band left by the others.
    """
    curves = problem.curves(devices)
    if isinstance(start, DualPoint) and start.raw is not None and start.price > 0:
        b, slopes, y = curves.at_price(price, (start.raw[0], start.raw[1], start.price), SHARE_TOL)
    elif isinstance(start, DualPoint) or start is None:
        b, slopes, y = curves.at_price(price, None, SHARE_TOL)
    else:
        b, slopes = problem.shares_and_slopes(devices, price, start, tol=SHARE_TOL)
        y = None
    c = curves.costs(b, price)
    order = np.argsort(c, kind="stable")
    terms = phi_terms + np.cumsum(c[order])[: phi_terms.size]
    count = int(np.argmin(terms)) + 1
    chosen = order[:count]
    share, slope = b[chosen], slopes[chosen]
    free = slope < 0
    free_sum = float(share[free].sum())
    left = 1.0 - (float(share.sum()) - free_sum)
    next_price = np.nan
    if price > 0 and free_sum > 0 and left > 0:
        power = free_sum / float((share[free] / slope[free]).sum())
        next_price = price * math.exp(math.log(left / free_sum) * power)
    raw = None if y is None else (y, slopes if curves.all_live else slopes[curves.live])
    return DualPoint(price, devices[order], b[order], c[order], terms, float(terms[count - 1] - price),
                     next_price, slopes[order], raw)


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
    for _ in range(PRICE_STEPS):
        best = max(seen, key=lambda p: p.value)
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
        steps = [x for x in (own, kink) if not np.isnan(x)]
        if steps:  # the first of the two models' maxima met walking from newest towards other
            price = min(steps) if newest is low else max(steps)
        if price == own and newest.key not in split and newest.holds_at(price):
            # the Newton step's limit, if the schedule holds: its KKT price, where D meets its value
            split.add(newest.key)
            value = problem.evaluate(newest.schedule, newest.moved_split(price))[0]
            primal = min(primal, value)
            kkt = problem.kkt_split(newest.schedule) if np.isfinite(value) else None
            if kkt is not None and low.price < kkt[1] < high.price:
                price = kkt[1]
        newest = dual_point(problem, devices, terms, price, newest)
        seen.append(newest)
        if newest.subgradient > 0:
            low, inner[0] = newest, True
        else:
            high, inner[1] = newest, True
    return max(seen, key=lambda p: p.value), seen


def _model_max(lines: list[tuple[float, float, float]], lo: float, hi: float) -> tuple[float, float]:
    """Where on [lo, hi] the lowest of the lines (price, value, slope) is highest, and that height."""
    if len(lines) == 2:  # a rising and a falling tangent: where they cross
        (p1, v1, g1), (p2, v2, g2) = lines
        x = p1 + (v2 - v1 - g2 * (p2 - p1)) / (g1 - g2)
        return x, v1 + g1 * (x - p1)
    def height(x: float) -> float:
        return min(v + g * (x - p) for p, v, g in lines)

    xs = [lo, hi]
    for i, (p1, v1, g1) in enumerate(lines):
        for p2, v2, g2 in lines[i + 1:]:
            if g1 != g2:
                x = (v2 - g2 * p2 - v1 + g1 * p1) / (g1 - g2)
                if lo < x < hi:
                    xs.append(x)
    return max(((x, height(x)) for x in xs), key=lambda top: top[1])


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
    curves = problem.curves(devices)  # devices is sorted (problem.feasible)
    slide = (near.raw[0], near.raw[1], near.price) if near.raw is not None and near.price > 0 else None
    at_price = np.zeros(problem.devices)
    for _ in range(SEARCH_STEPS):
        price = problem.kkt_split(current)[1]
        mask = np.ones(devices.size, bool)
        mask[np.searchsorted(devices, current)] = False
        outside = devices[mask]
        n, spare = current.size, 1.0 - beta[current].sum()
        keep = problem.queues[current] * problem.energy(current, b) + price * b
        b_all, slopes, y = curves.at_price(price, slide, SHARE_TOL)
        if price > 0:
            slide = (y, slopes if curves.all_live else slopes[curves.live], price)
        join = curves.costs(b_all, price)[mask]
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
    split = problem.kkt_split(first) if np.isfinite(value) else None
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
