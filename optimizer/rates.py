"""Uplink rate models r(b) = B·f(b) for a share b of the band, and the deadline's minimum share.

Both are concave increasing in b, so the transmit energy p·U / r(b) is convex decreasing: that
is what makes the tangent cuts of the exact solver valid and the KKT split unique.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy.special import lambertw

from optimizer.kernels import (
    LN2,
    PAPER,
    SIMPLE,
    paper_df,
    paper_f,
    paper_log_marginal,
    simple_df,
    simple_f,
    simple_log_marginal,
)


class RateModel(Protocol):
    """Spectral efficiency per unit of band, f(b) = r(b)/B, with full-band SNR `snr` (linear)."""

    name: str
    code: int  # PAPER or SIMPLE

    def f(self, b: np.ndarray, snr: np.ndarray) -> np.ndarray: ...
    def df(self, b: np.ndarray, snr: np.ndarray) -> np.ndarray: ...

    def log_marginal(self, b: np.ndarray, snr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ln(f'(b) / f(b)²), which is ln of the transmit energy's −dE/db up to a constant factor,
        and its slope in ln b, b·(f''/f' − 2 f'/f) < 0."""
        ...

    def min_share(self, need: np.ndarray, snr: np.ndarray) -> np.ndarray:
        """Smallest b with f(b) >= need (inf when no b reaches it)."""
        ...


class PaperRate:
    """The paper's FDMA Shannon rate b·B·log2(1 + snr/b): noise power grows with the sub-band."""

    name, code = "paper", PAPER
    f, df, log_marginal = staticmethod(paper_f), staticmethod(paper_df), staticmethod(paper_log_marginal)

    def min_share(self, need: np.ndarray, snr: np.ndarray) -> np.ndarray:
        # b·ln(1 + s/b) = need·ln2. With u = 1 + s/b and c = need·ln2/s: ln(u) = c(u − 1), whose
        # non-trivial root (u > 1, exists iff c < 1) is u = −W_{−1}(−c·e^{−c}) / c.
        c = np.asarray(need, dtype=float) * LN2 / snr
        beta = np.full(c.shape, np.inf)
        ok = c < 1.0
        u = -lambertw(-c[ok] * np.exp(-c[ok]), k=-1).real / c[ok]
        beta[ok] = snr[ok] / (u - 1.0)
        return beta


class SimpleRate:
    """Fixed spectral efficiency b·B·log2(1 + snr): the SNR does not change with the share."""

    name, code = "simple", SIMPLE
    f, df, log_marginal = staticmethod(simple_f), staticmethod(simple_df), staticmethod(simple_log_marginal)

    def min_share(self, need: np.ndarray, snr: np.ndarray) -> np.ndarray:
        return np.asarray(need, dtype=float) / np.log2(1.0 + snr)


RATE_MODELS: dict[str, RateModel] = {"paper": PaperRate(), "simple": SimpleRate()}


def rate_model(name: str) -> RateModel:
    """The rate model called `name`; ValueError lists the known ones."""
    try:
        return RATE_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown rate model {name!r}; known: {sorted(RATE_MODELS)}") from None
