"""Everything the optimizer compiles (numba): the rate models' formulas and the inner loops of the
bandwidth maths. The dual search evaluates every device's best share at each price it tries; in
numpy that loop over devices was most of the Lagrangian solver's time.

One module on purpose: numba's on-disk cache (optimizer/__pycache__) is checked against the source
file of each function only, so a formula must live in the file of the loops that inline it.
error_model="numpy": a division by zero gives inf/nan, as in numpy.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LN2 = math.log(2.0)
compiled = njit(cache=True, error_model="numpy")
Array = np.ndarray
Values = float | np.ndarray  # the formulas take floats (inside the loops) or arrays

# The rate models' formulas (optimizer/rates.py): the loops below call the very functions the rest
# of the code calls on arrays; written with numpy functions, each works on floats and arrays alike.


@compiled
def paper_f(b: Values, snr: Values) -> Values:
    return b * np.log1p(snr / b) / LN2


@compiled
def paper_df(b: Values, snr: Values) -> Values:
    x = snr / b
    return (np.log1p(x) - x / (1.0 + x)) / LN2


@compiled
def paper_log_marginal(b: Values, snr: Values) -> tuple[Values, Values]:
    # with x = snr/b, l = ln(1 + x), r = x/(1 + x): f = b·l/ln2 and f' = (l − r)/ln2
    x = snr / b
    log = np.log1p(x)
    r = x / (1.0 + x)
    d = log - r
    return np.log(LN2 * d / (b * log) ** 2), -(r * r) / d - 2.0 * d / log


@compiled
def simple_f(b: Values, snr: Values) -> Values:
    return b * np.log2(1.0 + snr)


@compiled
def simple_df(b: Values, snr: Values) -> Values:
    return np.log2(1.0 + snr) + 0.0 * b


@compiled
def simple_log_marginal(b: Values, snr: Values) -> tuple[Values, Values]:
    return -np.log(np.log2(1.0 + snr)) - 2.0 * np.log(b), -2.0 + 0.0 * b


PAPER, SIMPLE = 0, 1  # RateModel.code, how the compiled kernels tell the models apart


@compiled
def spectral_efficiency(code: int, b: Values, snr: Values) -> Values:
    """RateModel.f of the model with this code."""
    if code == PAPER:
        return paper_f(b, snr)
    return simple_f(b, snr)


@compiled
def log_marginal(code: int, b: Values, snr: Values) -> tuple[Values, Values]:
    """RateModel.log_marginal of the model with this code."""
    if code == PAPER:
        return paper_log_marginal(b, snr)
    return simple_log_marginal(b, snr)


@compiled
def gather_devices(idx: Array, beta: Array, at_beta: Array, at_one: Array, snr: Array, log_scale: Array,
                   queues: Array, tx_coef: Array, compute_energy: Array, device_cost: Array) -> Array:
    """Per device of idx, what shares_at_price needs: β, ln β, ln h at β and at 1, snr, ln(Q A),
    Q A and Q × compute energy + the device's own cost d."""
    n = idx.size
    out = np.empty((8, n))
    for k in range(n):
        i = idx[k]
        out[0, k], out[1, k] = beta[i], math.log(beta[i])
        out[2, k], out[3, k], out[4, k], out[5, k] = at_beta[i], at_one[i], snr[i], log_scale[i]
        out[6, k], out[7, k] = queues[i] * tx_coef[i], queues[i] * compute_energy[i] + device_cost[i]
    return out


@compiled
def device_costs(code: int, b: Array, snr: Array, energy_a: Array, energy_c: Array, price: float) -> Array:
    """c_j = energy_a_j / f(b_j) + energy_c_j + price·b_j: a device's weighted energy and own cost
    plus its band at the price (energy_a = Q A, energy_c = Q × compute energy + d)."""
    c = np.empty(b.size)
    for i in range(b.size):
        c[i] = energy_a[i] / spectral_efficiency(code, b[i], snr[i]) + energy_c[i] + price * b[i]
    return c


@compiled
def shares_at_price(code: int, price: float, beta: Array, lo: Array, at_one: Array, at_beta: Array,
                    snr: Array, scale: Array, energy_a: Array, energy_c: Array, warm_y: Array,
                    warm_slope: Array, warm_log_price: float, tol: float,
                    steps: int) -> tuple[bool, Array, Array, Array, Array]:
    """Every device's best share at a price, b_j = argmin over [β_j, 1] of Q_j E_j(b) + price·b, and
    its cost there, by clamped Newton on ln b (ln h_j(b) = ln price) over the interior ones.

    Per device: beta, lo = ln β, at_one / at_beta = ln h at b = 1 / β (−inf where Q = 0), snr, scale =
    ln(Q A) (ln h = scale + log_marginal), energy_a = Q A and energy_c = Q × compute energy + d (cost
    c = energy_a / f(b) + energy_c + price·b). The start interpolates between the edges (ln h is
    nearly linear in ln b) or, where warm_slope < 0, follows the tangent from (warm_y, warm_log_price).
    Returns (converged: each device's last step within `steps` no longer than tol, b, d ln h / d ln b
    at the interior shares and 0 at the edges, ln b, c).
    """
    n = lo.size
    y = lo.copy()
    slope = np.zeros(n)
    inner = np.zeros(n, np.bool_)
    log_price = math.log(price) if price > 0 else -np.inf
    for i in range(n):
        if log_price <= at_one[i] and at_one[i] > -np.inf:  # the whole band is worth its price
            y[i] = 0.0
        elif log_price < at_beta[i]:
            inner[i] = True
            if warm_y.size > 0 and warm_slope[i] < 0:
                v = warm_y[i] + (log_price - warm_log_price) / warm_slope[i]
            else:
                v = lo[i] * (at_one[i] - log_price) / (at_one[i] - at_beta[i])
            y[i] = 0.0 if v > 0.0 else (v if v >= lo[i] else lo[i])
    done = True
    for i in range(n):
        for _ in range(steps if inner[i] else 0):
            log_h, s = log_marginal(code, math.exp(y[i]), snr[i])
            new = y[i] - (log_h + scale[i] - log_price) / s
            new = 0.0 if new > 0.0 else (lo[i] if new < lo[i] else new)
            moved = abs(new - y[i])
            y[i], slope[i] = new, s
            if moved <= tol:  # (not when nan)
                break
        else:
            done = done and not inner[i]
    b = np.empty(n)
    for i in range(n):
        if not lo[i] < y[i] < 0.0:
            slope[i] = 0.0
        b[i] = math.exp(y[i]) if inner[i] else (1.0 if y[i] == 0.0 else beta[i])
    return done, b, slope, y, device_costs(code, b, snr, energy_a, energy_c, max(price, 0.0))


@compiled
def edge_log_marginals(code: int, beta: Array, snr: Array, scale: Array) -> tuple[Array, Array]:
    """ln h at b = β and at b = 1 per device (scale = ln(Q A)); −inf where Q = 0 or β > 1."""
    at_beta = np.full(beta.size, -np.inf)
    at_one = np.full(beta.size, -np.inf)
    for i in range(beta.size):
        if scale[i] > -np.inf and beta[i] <= 1.0:
            at_beta[i] = scale[i] + log_marginal(code, beta[i], snr[i])[0]
            at_one[i] = scale[i] + log_marginal(code, 1.0, snr[i])[0]
    return at_beta, at_one


@compiled
def cheapest_first(costs: Array, hint: Array) -> Array:
    """Positions of costs, ascending: by insertion from the order `hint` (an earlier price's order,
    nearly right when the price moved a little), or by a stable sort when there is no hint or it
    is far off."""
    n = costs.size
    if hint.size == n:
        order = hint.copy()
        shifts = 0
        for k in range(1, n):
            j, c, m = order[k], costs[order[k]], k - 1
            while m >= 0 and costs[order[m]] > c:
                order[m + 1] = order[m]
                m -= 1
            order[m + 1] = j
            shifts += k - 1 - m
            if shifts > 4 * n:
                break
        else:
            return order
    return np.argsort(costs, kind="mergesort")


@compiled
def rank_by_cost(costs: Array, b: Array, slopes: Array, price: float, phi_terms: Array,
                 hint: Array) -> tuple[Array, Array, Array, int, float, float]:
    """The dual function's inner minimum at a price, from every device's cost, share and slope
    (`hint`: an order of the devices close to theirs by cost, or empty).

    Returns (devices cheapest first, stable; where each device stands in that order; terms
    phi_terms[n−1] + sum of the n cheapest costs for n = 1..phi_terms.size; the best count, the
    first minimum of terms; the chosen devices' shares summed, minus 1; the price at which their
    interior shares, each about a power of the price, would fill the band the others leave, nan
    when none is interior or the others fill it).
    """
    order = cheapest_first(costs, hint)
    terms = np.empty(phi_terms.size)
    total, best = 0.0, 0
    for k in range(phi_terms.size):
        total += costs[order[k]]
        terms[k] = phi_terms[k] + total
        if terms[k] < terms[best]:
            best = k
    free, pinned, weight = 0.0, 0.0, 0.0
    for k in range(best + 1):
        j = order[k]
        if slopes[j] < 0:
            free += b[j]
            weight += b[j] / slopes[j]
        else:
            pinned += b[j]
    left = 1.0 - pinned
    next_price = np.nan
    if price > 0 and free > 0 and left > 0:
        next_price = price * math.exp(math.log(left / free) * (free / weight))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return order, rank, terms, best + 1, free + pinned - 1.0, next_price


@compiled
def joint_split(code: int, idx: Array, beta: Array, snr: Array, scale: Array, at_beta: Array, at_one: Array,
                start: Array, ell: float, steps: int, tol: float) -> tuple[bool, Array, float]:
    """The KKT split of the schedule idx by Newton on the price and the free shares together.

    Per device of the round: beta, snr, scale = ln(Q A) (−inf where Q = 0: those stay at β),
    at_beta / at_one = ln h at β / 1; `start`: shares of idx to start from, ℓ = ln λ too. Unknowns
    ℓ and y_j = ln b_j of the devices with Q_j > 0. Equations ln h_j(y_j) = ℓ for the free ones
    (β_j < b_j < 1, decided by the edge marginals at ℓ) and Σ b = 1, linearised together: the
    shares' steps are (ℓ' − ln h_j)/slope_j, so ℓ' is explicit. The free set is updated at ℓ'
    before each step. Returns (converged: a step in ℓ and every y_j no longer than tol within
    `steps`, the shares of idx, ℓ).
    """
    n = idx.size
    live = np.empty(n, np.bool_)
    lo, y, b, log_h, slope = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    free = np.zeros(n, np.bool_)
    dead = 0.0
    for k in range(n):
        i = idx[k]
        live[k], lo[k] = scale[i] > -np.inf, math.log(beta[i])
        v = math.log(start[k]) if start[k] > 0 else -np.inf
        y[k] = 0.0 if v > 0.0 else (v if v >= lo[k] else lo[k])
        dead += 0.0 if live[k] else beta[i]
    done = False
    for _ in range(steps):
        for k in range(n):
            if live[k]:
                i = idx[k]
                b[k] = math.exp(y[k])
                log_h[k], slope[k] = log_marginal(code, b[k], snr[i])
                log_h[k] += scale[i]
                free[k] = at_beta[i] > ell and at_one[i] < ell
        settled = False
        for _ in range(4):  # the free set at the new price
            pinned, w_free, b_free, wl = dead, 0.0, 0.0, 0.0
            for k in range(n):
                if free[k]:
                    w = b[k] / slope[k]
                    w_free += w
                    b_free += b[k]
                    wl += w * log_h[k]
                elif live[k]:
                    pinned += 1.0 if at_one[idx[k]] >= ell else beta[idx[k]]
            if w_free == 0.0:
                return False, b, ell
            new = (1.0 - pinned - b_free + wl) / w_free
            settled = True
            for k in range(n):
                moved = live[k] and at_beta[idx[k]] > new and at_one[idx[k]] < new
                settled = settled and moved == free[k]
                free[k] = moved
            if settled:
                break
            ell = new
        if not settled:
            return False, b, ell
        step = abs(new - ell)
        ell = new
        for k in range(n):
            if not live[k]:
                continue
            if free[k]:
                v = y[k] + (ell - log_h[k]) / slope[k]
                v = 0.0 if v > 0.0 else (lo[k] if v < lo[k] else v)
            else:
                v = 0.0 if at_one[idx[k]] >= ell else lo[k]
            moved = abs(v - y[k])
            step = step if moved <= step else (moved if moved == moved else np.inf)
            y[k] = v
        if step <= tol:
            done = True
            break
    for k in range(n):
        b[k] = math.exp(y[k]) if live[k] else beta[idx[k]]
    return done, b, ell


@compiled
def still_cheapest(costs: Array, shares: Array, delta: float, count_terms: Array, count: int) -> bool:
    """Whether, with every cost moved by its share × delta (first order in the price), the first
    `count` devices (of costs, ascending) are still the cheapest and `count` still the best number;
    count_terms as rank_by_cost's terms for the unmoved costs."""
    moved = costs + shares * delta
    if count < moved.size and moved[:count].max() > moved[count:].min():
        return False
    ordered = np.sort(moved)
    before, after, best, best_k = 0.0, 0.0, np.inf, 0
    for k in range(count_terms.size):
        before += costs[k]
        after += ordered[k]
        term = count_terms[k] - before + after
        if term < best:
            best, best_k = term, k
    return best_k + 1 == count


@compiled
def envelope_max(lines: Array, lo: float, hi: float) -> tuple[float, float]:
    """Where on [lo, hi] the lowest of the lines (rows: price, value, slope) is highest, and that
    height: the first best of lo, hi and the lines' crossings inside."""
    n = lines.shape[0]
    xs = np.empty(2 + n * (n - 1) // 2)
    xs[0], xs[1], m = lo, hi, 2
    for i in range(n):
        for j in range(i + 1, n):
            if lines[i, 2] != lines[j, 2]:
                x = (lines[j, 1] - lines[j, 2] * lines[j, 0] - lines[i, 1] + lines[i, 2] * lines[i, 0]) \
                    / (lines[i, 2] - lines[j, 2])
                if lo < x < hi:
                    xs[m] = x
                    m += 1
    best_x, best_h = lo, -np.inf
    for k in range(m):
        height = np.inf
        for i in range(n):
            height = min(height, lines[i, 1] + lines[i, 2] * (xs[k] - lines[i, 0]))
        if height > best_h:
            best_x, best_h = xs[k], height
    return best_x, best_h


@compiled
def sums_at(rank: Array, members: Array, costs: Array, shares: Array) -> tuple[float, float]:
    """Σ costs and Σ shares at rank[members]."""
    c, s = 0.0, 0.0
    for m in members:
        c += costs[rank[m]]
        s += shares[rank[m]]
    return c, s
