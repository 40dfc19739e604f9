"""Weights of the convergence-gap bound: Φ(n) for n devices in a round, ω_t for round t."""

from __future__ import annotations

from collections.abc import Callable

# Φ(n, K): convergence penalty of scheduling n of K devices (n >= 1). Any callable with this
# signature may replace the default; the solvers only evaluate it at integers.
Phi = Callable[[int, int], float]


def partial_participation_phi(n: int, k: int) -> float:
    """(K − n) / (n (K − 1)): 1 with one device, 0 with all of them (0 when K = 1)."""
    if not 1 <= n <= k:
        raise ValueError(f"Φ needs 1 <= n <= K, got n={n}, K={k}")
    return 0.0 if k == 1 else (k - n) / (n * (k - 1))


def round_weight(t: int, horizon: int, mu_eta: float) -> float:
    """ω_t = (1 − μη)^(T−1−t): later rounds weigh more in the final convergence gap."""
    if not 0 <= t < horizon:
        raise ValueError(f"round t={t} outside the horizon 0..{horizon - 1}")
    if not 0.0 <= mu_eta < 1.0:
        raise ValueError(f"mu_eta={mu_eta} must be in [0, 1)")
    return (1.0 - mu_eta) ** (horizon - 1 - t)
