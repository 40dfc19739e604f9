"""Vectorised safeguarded Newton for monotone equations: the bandwidth maths solves many at once."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ValueAndSlope = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def decreasing_root(fun: ValueAndSlope, lo: np.ndarray, hi: np.ndarray, x0: np.ndarray,
                    tol: float = 1e-7, max_iter: int = 100) -> np.ndarray:
    """x in [lo, hi] with fun(x) = 0, elementwise, for fun decreasing with fun(lo) >= 0 >= fun(hi).

    Newton steps are fast on the smooth, nearly linear log-log curves we solve; a step that
    leaves the current bracket is replaced by bisection, so convergence is guaranteed. An element
    is done after a Newton step shorter than tol (by quadratic convergence it is then accurate to
    about tol²), or once rounding pushes its Newton step out of a bracket narrower than tol².
    """
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    x = np.minimum(np.maximum(x0, lo), hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(max_iter):
            val, slope = fun(x)
            np.copyto(lo, x, where=val >= 0)
            np.copyto(hi, x, where=val <= 0)
            new = x - val / slope
            scale = tol * (1.0 + np.abs(x))
            inside = (new >= lo) & (new <= hi)
            if inside.all():  # the usual case: plain Newton steps
                done = bool((np.abs(new - x) <= scale).all())
                x = new
            else:
                done = bool(np.where(inside, np.abs(new - x) <= scale, hi - lo <= tol * scale).all())
                x = np.where(inside, new, 0.5 * (lo + hi))
            if done:
                break
    return x
