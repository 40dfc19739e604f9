"""The per-round Lyapunov problem and its exact continuous part (the bandwidth split).

    minimise  weight·Φ(Σ a) + Σ_k a_k (Q_k E_k(b_k) + d_k)   s.t.  Σ b <= 1,  β_k a_k <= b_k <= a_k,  Σ a >= 1

with E_k(b) = A_k / f_k(b) + C_k (transmit energy p·U / (B f(b)) plus compute energy). For a fixed
schedule the rest is convex and separable: the KKT split equalises the marginal energy saving
h_k(b) = −Q_k E_k'(b) to a common price λ on the band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from optimizer.convergence import Phi, partial_participation_phi
from optimizer.inputs import RoundInputs
from optimizer.kernels import device_costs, edge_log_marginals, gather_devices, joint_split, shares_at_price
from optimizer.rates import RateModel, rate_model
from optimizer.roots import decreasing_root

SHARE_TOL = 1e-9  # slack on Σ b <= 1 for rounding
JOINT_STEPS = 30  # Newton steps of the joint split before falling back to the nested one
JOINT_TOL = 1e-6  # on ln λ and ln b: a step that short leaves errors around its square
SplitStart = tuple[float, np.ndarray]  # a price > 0 and shares near the split's, to warm-start it


def fitting_prefix(shares: np.ndarray) -> int:
    """How many of the shares, taken in the given order, fit in the band together."""
    return int(np.searchsorted(np.cumsum(shares), 1.0 + SHARE_TOL, side="right"))


@dataclass(frozen=True)
class RoundProblem:
    """Inputs plus the Lyapunov state: queues Q_k, the weight V·ω_t of the convergence term, and
    d_k, what taking part costs device k apart from its energy (default 0; minus a participation
    deficit rewards a device that has been left out)."""

    inputs: RoundInputs
    queues: np.ndarray
    weight: float
    rate: str = "paper"
    phi: Phi = partial_participation_phi
    device_cost: np.ndarray | None = None
    model: RateModel = field(init=False, repr=False)
    beta: np.ndarray = field(init=False, repr=False)
    reasons: dict[int, str] = field(init=False, repr=False)
    _splits: dict[bytes, tuple[np.ndarray, float] | None] = field(
        init=False, repr=False, default_factory=dict)

    _curves: dict[bytes, Curves] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        q = np.array(self.queues, dtype=float)
        if q.shape != (self.inputs.devices,):
            raise ValueError(f"queues has shape {q.shape}, expected ({self.inputs.devices},)")
        if not np.all(np.isfinite(q)) or np.any(q < 0):
            raise ValueError("queues must be finite and >= 0")
        if not (np.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"weight={self.weight!r} (V·ω_t) must be finite and >= 0")
        d = np.zeros(self.inputs.devices) if self.device_cost is None else np.array(self.device_cost, float)
        if d.shape != q.shape or not np.all(np.isfinite(d)):
            raise ValueError(f"device_cost must be finite with shape {q.shape}")
        object.__setattr__(self, "queues", q)
        object.__setattr__(self, "device_cost", d)
        object.__setattr__(self, "model", rate_model(self.rate))
        beta, reasons = self._min_shares()
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "reasons", reasons)

    def _min_shares(self) -> tuple[np.ndarray, dict[int, str]]:
        """β_k from the deadline, and why the devices that cannot make it are out."""
        inp = self.inputs
        slack = inp.deadline_s - inp.fixed_time_s()
        need = inp.uplink_bits_at_model_rate / (inp.bandwidth_hz * np.where(slack > 0, slack, 1.0))
        beta = np.where(slack > 0, self.model.min_share(need, self.snr), np.inf)
        beta[~inp.present] = np.inf
        reasons = {}
        for k in np.flatnonzero(~(beta <= 1.0)):
            if not inp.present[k]:
                reasons[int(k)] = "not in the scenario now (absent from its mobility trace)"
            elif slack[k] <= 0:
                reasons[int(k)] = (f"compute + server + downlink time {inp.fixed_time_s()[k]:.3g} s "
                                   f"leaves no time for the uplink before the {inp.deadline_s:g} s deadline")
            else:
                reasons[int(k)] = (f"needs {beta[k]:.3g} of the band to upload {inp.uplink_bytes[k]:.0f} B "
                                   f"in {slack[k]:.3g} s at {inp.snr_db[k]:.1f} dB")
        return beta, reasons

    # ----- per-device curves (idx selects devices, b is their shares) -----
    @property
    def devices(self) -> int:
        return self.inputs.devices

    @cached_property
    def snr(self) -> np.ndarray:
        return self.inputs.rate_snr_linear

    @cached_property
    def feasible(self) -> np.ndarray:
        """Indices of devices that can meet the deadline with the whole band (read-only)."""
        idx = np.flatnonzero(self.beta <= 1.0)
        idx.flags.writeable = False
        return idx

    @cached_property
    def max_count(self) -> int:
        """The most devices whose minimum shares fit in the band together (smallest β first)."""
        return fitting_prefix(np.sort(self.beta[self.feasible]))

    @cached_property
    def _tx_coef(self) -> np.ndarray:
        """A_k = p_k U_k / (η_k B) (η_k the rate efficiency), so that the transmit energy is A_k / f_k(b)."""
        inp = self.inputs
        return inp.tx_power_w * inp.uplink_bits_at_model_rate / inp.bandwidth_hz

    def _coef(self, idx: np.ndarray) -> np.ndarray:
        return self._tx_coef[idx]

    def energy(self, idx: np.ndarray, b: np.ndarray) -> np.ndarray:
        """E_k(b) [J]: transmit energy p·U/r(b) plus compute energy."""
        return self._coef(idx) / self.model.f(b, self.snr[idx]) + self.inputs.compute_energy_j[idx]

    def energy_slope(self, idx: np.ndarray, b: np.ndarray) -> np.ndarray:
        """E_k'(b) < 0."""
        s = self.snr[idx]
        f = self.model.f(b, s)
        return -self._coef(idx) * self.model.df(b, s) / (f * f)

    def delay(self, idx: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Predicted round time T_k(b) [s]."""
        inp = self.inputs
        up = inp.uplink_bits_at_model_rate[idx] / (inp.bandwidth_hz * self.model.f(b, self.snr[idx]))
        return inp.fixed_time_s()[idx] + up

    def convergence_term(self, n: int) -> float:
        terms = self.count_terms
        return float(terms[n - 1]) if 1 <= n <= terms.size else self.weight * self.phi(n, self.devices)

    @cached_property
    def count_terms(self) -> np.ndarray:
        """weight·Φ(n) for n = 1 .. one past the most devices that fit (the searches' range)."""
        top, k = min(self.max_count + 1, self.devices), self.devices
        if self.phi is partial_participation_phi:  # the same divisions, all at once
            n = np.arange(1, top + 1, dtype=float)
            return self.weight * (np.zeros(top) if k == 1 else (k - n) / (n * (k - 1)))
        return np.array([self.weight * self.phi(n, k) for n in range(1, top + 1)])

    # ----- bandwidth: best share at a price, and the exact split -----
    @cached_property
    def _log_scale(self) -> np.ndarray:
        """ln(Q_k A_k), so that ln h_k(b) = ln(Q_k A_k) + ln(f'/f²) (−inf where Q_k = 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.queues * self._tx_coef)

    def _log_marginal(self, idx: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ln h_k(b) with h = −Q E'(b), and its slope d ln h / d ln b (< 0)."""
        log_m, slope = self.model.log_marginal(b, self.snr[idx])
        return self._log_scale[idx] + log_m, slope

    def share_at_price(self, idx: np.ndarray, price: float, start: np.ndarray | None = None) -> np.ndarray:
        """argmin over b in [β_k, 1] of Q_k E_k(b) + price·b, per device (β_k where Q_k = 0).

        `start` (shares of the same devices) warm-starts the Newton solve.
        """
        return self.shares_and_slopes(idx, price, start)[0]

    def shares_and_slopes(self, idx: np.ndarray, price: float, start: np.ndarray | None = None,
                          tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
        """share_at_price, and d ln h / d ln b near each interior share (0 at the edges).

        `tol` is decreasing_root's: the shares come out accurate to about its square.
        """
        idx = np.asarray(idx)
        slopes = np.zeros(idx.size)
        if price <= 0:
            return np.where(self.queues[idx] > 0, 1.0, self.beta[idx]), slopes
        log_price = np.log(price)
        at_beta, at_one = self.edge_log_marginals
        at_beta, at_one = at_beta[idx], at_one[idx]
        inner = (at_beta > log_price) & (at_one < log_price)
        b = np.where(at_one >= log_price, 1.0, self.beta[idx])
        if not inner.any():
            return b, slopes
        sub = idx[inner]
        lo = np.log(self.beta[sub])
        x0 = lo * (at_one[inner] - log_price) / (at_one[inner] - at_beta[inner])
        if start is not None:  # else: ln h is nearly linear in ln b, interpolate between the edges
            with np.errstate(divide="ignore"):
                warm = np.log(start[inner])
            x0 = np.where(np.isfinite(warm), warm, x0)
        last = [slopes[:0]]

        def gap(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            log_h, last[0] = self._log_marginal(sub, np.exp(y))
            return log_h - log_price, last[0]

        b[inner] = np.exp(decreasing_root(gap, lo, np.zeros_like(lo), x0, tol))
        slopes[inner] = last[0]
        return b, slopes

    @cached_property
    def edge_log_marginals(self) -> tuple[np.ndarray, np.ndarray]:
        """ln h_k at b = β_k and at b = 1 (−inf where Q_k = 0 or the device is infeasible)."""
        return edge_log_marginals(self.model.code, self.beta, self.snr, self._log_scale)

    def curves(self, idx: np.ndarray) -> Curves:
        """The per-device data of idx gathered once, for solving their shares at many prices."""
        key = np.asarray(idx).tobytes()
        if key not in self._curves:
            self._curves[key] = Curves(self, np.asarray(idx, dtype=int))
        return self._curves[key]

    def kkt_split(self, idx: np.ndarray, start: SplitStart | None = None) -> tuple[np.ndarray, float] | None:
        """Exact shares minimising Σ Q_k E_k(b_k) over Σ b <= 1, b >= β for the schedule idx.

        Returns (b, price λ), or None when the minimum shares alone exceed the band. Devices with
        Q_k = 0 get β_k; if every Q_k is 0 the spare band is spread equally (the objective is
        indifferent, the radio is not). Memoised per schedule: the searches revisit schedules.
        `start` (a price and the shares of idx at it) warm-starts the solve.
        """
        idx = np.asarray(idx, dtype=int)
        key = idx.tobytes()
        if key not in self._splits:
            self._splits[key] = self._split(idx, start)
        split = self._splits[key]
        return None if split is None else (split[0].copy(), split[1])

    def _split(self, idx: np.ndarray, start: SplitStart | None) -> tuple[np.ndarray, float] | None:
        beta = self.beta[idx]
        spare = 1.0 - beta.sum()
        if spare < -SHARE_TOL:
            return None
        live = self.queues[idx] > 0
        if not live.any():
            return beta + max(spare, 0.0) / idx.size, 0.0
        if idx.size == 1:
            return np.ones(1), float(np.exp(self._log_marginal(idx, np.ones(1))[0][0]))
        if start is None:  # the equal split of the spare band: close to the answer in most rounds
            last = beta + spare / idx.size
            log_start = float(np.median(self._log_marginal(idx[live], last[live])[0]))
        else:
            log_start, last = float(np.log(start[0])), start[1]
        joint = self._joint_split(idx, log_start, last)
        if joint is not None:
            return joint

        def excess(log_price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            nonlocal last
            b = last = self.share_at_price(idx, float(np.exp(log_price[0])), last)
            free = live & (b > beta) & (b < 1.0)
            _, slope = self._log_marginal(idx[free], b[free])
            return np.array([b.sum() - 1.0]), np.array([np.sum(b[free] / slope)])

        at_beta, at_one = self.edge_log_marginals
        log_price = decreasing_root(excess, np.array([at_one[idx[live]].min()]),
                                    np.array([at_beta[idx].max()]), np.array([log_start]))
        price = float(np.exp(log_price[0]))
        return self.share_at_price(idx, price, last), price

    def _joint_split(self, idx: np.ndarray, log_price: float,
                     start: np.ndarray) -> tuple[np.ndarray, float] | None:
        """The KKT split by Newton on the price and the free shares together (kernels.joint_split),
        from ln λ = log_price and the shares `start`; None if it does not converge (the caller
        then nests)."""
        done, b, ell = joint_split(self.model.code, idx, self.beta, self.snr, self._log_scale,
                                   *self.edge_log_marginals, np.asarray(start, dtype=float), log_price,
                                   JOINT_STEPS, JOINT_TOL)
        return (b, math.exp(ell)) if done else None

    def evaluate(self, idx: np.ndarray, start: SplitStart | None = None) -> tuple[float, np.ndarray]:
        """True objective of scheduling idx with its KKT split (inf if it does not fit)."""
        idx = np.asarray(idx, dtype=int)
        split = self.kkt_split(idx, start) if idx.size else None
        if split is None:
            return np.inf, self.beta[idx].copy()
        b = split[0]
        value = self.convergence_term(idx.size) + float(self.queues[idx] @ self.energy(idx, b))
        return value + float(self.device_cost[idx].sum()), b


CURVE_STEPS = 8  # clamped Newton steps of Curves.at_price before the safeguarded solve takes over
NO_WARM = np.empty(0)


class Curves:
    """Shares and costs of a fixed set of devices at a price (kernels.shares_at_price), the devices'
    data gathered once: the dual search calls this at every price it tries.

    Same shares as RoundProblem.shares_and_slopes, which it falls back to if Newton has not
    converged after CURVE_STEPS steps.
    """

    def __init__(self, problem: RoundProblem, idx: np.ndarray) -> None:
        self.problem, self.idx = problem, idx
        (self.beta, self.lo, self.at_beta, self.at_one, self.snr, self.scale, self.energy_a,
         self.energy_c) = gather_devices(idx, problem.beta, *problem.edge_log_marginals, problem.snr,
                                         problem._log_scale, problem.queues, problem._tx_coef,
                                         problem.inputs.compute_energy_j, problem.device_cost)

    def at_price(self, price: float, warm: tuple[np.ndarray, np.ndarray, float] | None = None,
                 tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Shares, slopes d ln h / d ln b (0 at the edges and for Q = 0), ln b, and costs Q E(b) + price·b.

        `warm` = (ln b, slopes, price) from another price: the start moves along the tangent to
        this price. Done when no step exceeds tol (the shares are then accurate to about its square).
        """
        warm_y, warm_slope, warm_log = (NO_WARM, NO_WARM, 0.0) if warm is None else \
            (warm[0], warm[1], math.log(warm[2]))
        done, b, slopes, y, costs = shares_at_price(
            self.problem.model.code, float(price), self.beta, self.lo, self.at_one, self.at_beta, self.snr,
            self.scale, self.energy_a, self.energy_c, warm_y, warm_slope, warm_log, tol, CURVE_STEPS)
        if not done:  # the safeguarded solve
            b, slopes = self.problem.shares_and_slopes(self.idx, price, tol=0.1 * tol)  # its steps scale
            costs = device_costs(self.problem.model.code, b, self.snr, self.energy_a, self.energy_c,
                                 float(price))
            y = np.log(b)
        return b, slopes, y, costs
