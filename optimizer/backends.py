"""MILP back-ends: the same sparse model handed to Gurobi (matrix API) or HiGHS.

Each back-end takes a `MilpModel`, accepts extra rows (cuts) between solves, and reports the
solution with the solver's best bound, which is what the cut loop needs for its certificate.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

MIP_GAP = 1e-9  # relative and absolute: the cut loop's own tolerance is 1e-6
FEAS_TOL = 1e-9


@dataclass(frozen=True)
class MilpModel:
    """minimise c·x s.t. A x (sense) rhs, lb <= x <= ub, x_j integer where integer[j]."""

    c: np.ndarray
    a: sp.csr_matrix
    sense: np.ndarray  # '<', '>' or '=' per row
    rhs: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray

    def __post_init__(self) -> None:
        n = self.c.size
        if self.a.shape[1] != n or not (self.lb.size == self.ub.size == self.integer.size == n):
            raise ValueError(f"MILP column data disagree: c {n}, A {self.a.shape}, bounds {self.lb.size}")
        if not (self.sense.size == self.rhs.size == self.a.shape[0]):
            raise ValueError(f"MILP row data disagree: A {self.a.shape}, sense {self.sense.size}")


class SolverRefused(RuntimeError):
    """The back-end cannot solve this model here (missing package, licence limits)."""


class MilpBackend(Protocol):
    name: str
    license: str

    def load(self, model: MilpModel) -> None: ...
    def add_rows(self, a: sp.csr_matrix, sense: np.ndarray, rhs: np.ndarray) -> None: ...

    def solve(self) -> tuple[np.ndarray, float]:
        """Optimal x and the proven lower bound on the objective."""
        ...


def _row_bounds(sense: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = np.where(sense == "<", -np.inf, rhs)
    hi = np.where(sense == ">", np.inf, rhs)
    return lo, hi


_highs_banner_shown = False


def _swallow_highs_banner(highspy) -> None:
    """HiGHS prints a banner on stdout (from C++, before any option can stop it) when the first
    Highs object of the process is made; make that one with file descriptor 1 sent to /dev/null."""
    global _highs_banner_shown
    if _highs_banner_shown:
        return
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    _highs_banner_shown = True


class HighsBackend:
    """HiGHS (MIT licence, always available)."""

    name = "highs"
    license = "highs MIT"

    def __init__(self, threads: int = 1) -> None:
        import highspy

        _swallow_highs_banner(highspy)
        self._highspy = highspy
        self._threads = threads

    def load(self, model: MilpModel) -> None:
        hs = self._highspy
        self._h = h = hs.Highs()
        for option, value in (("output_flag", False), ("threads", self._threads),
                              ("mip_rel_gap", MIP_GAP), ("mip_abs_gap", MIP_GAP),
                              ("mip_feasibility_tolerance", FEAS_TOL),
                              ("primal_feasibility_tolerance", FEAS_TOL)):
            h.setOptionValue(option, value)
        a = model.a.tocsc()
        lo, hi = _row_bounds(model.sense, model.rhs)
        status = h.passModel(model.c.size, model.rhs.size, a.nnz, int(hs.MatrixFormat.kColwise),
                             int(hs.ObjSense.kMinimize), 0.0, model.c, model.lb, model.ub, lo, hi,
                             a.indptr.astype(np.int32), a.indices.astype(np.int32), a.data,
                             model.integer.astype(np.int32))
        if status == hs.HighsStatus.kError:
            raise RuntimeError("HiGHS refused the model")

    def add_rows(self, a: sp.csr_matrix, sense: np.ndarray, rhs: np.ndarray) -> None:
        lo, hi = _row_bounds(sense, rhs)
        self._h.addRows(a.shape[0], lo, hi, a.nnz, a.indptr.astype(np.int32),
                        a.indices.astype(np.int32), a.data)

    def solve(self) -> tuple[np.ndarray, float]:
        h = self._h
        h.run()
        status = h.getModelStatus()
        if status != self._highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"HiGHS ended with {h.modelStatusToString(status)}")
        return np.array(h.getSolution().col_value), float(h.getInfo().mip_dual_bound)


class GurobiBackend:
    """Gurobi through gurobipy; SolverRefused when the package or its licence is not usable."""

    name = "gurobi"

    def __init__(self, threads: int = 1) -> None:
        try:
            import gurobipy as gp
        except ImportError as exc:
            raise SolverRefused(f"gurobipy is not installed ({exc})") from exc
        self._gp = gp
        try:
            self._env = gp.Env(empty=True)
            self._env.setParam("OutputFlag", 0)
            self._env.start()
        except gp.GurobiError as exc:
            raise SolverRefused(f"Gurobi licence refused: {exc}") from exc
        self._threads = threads
        license_id = self._env.getParam("LicenseID")
        self.license = "gurobi size-limited" if license_id == 0 else f"gurobi licence {license_id}"

    def load(self, model: MilpModel) -> None:
        gp = self._gp
        self._m = m = gp.Model(env=self._env)
        for param, value in (("Threads", self._threads), ("MIPGap", MIP_GAP), ("MIPGapAbs", MIP_GAP),
                             ("FeasibilityTol", FEAS_TOL), ("IntFeasTol", FEAS_TOL)):
            m.setParam(param, value)
        vtype = np.where(model.integer, gp.GRB.INTEGER, gp.GRB.CONTINUOUS)
        self._x = m.addMVar(model.c.size, lb=model.lb, ub=model.ub, obj=model.c, vtype=vtype)
        self.add_rows(model.a, model.sense, model.rhs)

    def add_rows(self, a: sp.csr_matrix, sense: np.ndarray, rhs: np.ndarray) -> None:
        self._m.addMConstr(a, self._x, sense, rhs)

    def solve(self) -> tuple[np.ndarray, float]:
        gp = self._gp
        try:
            self._m.optimize()
        except gp.GurobiError as exc:
            raise SolverRefused(f"Gurobi refused the model: {exc}") from exc
        if self._m.Status != gp.GRB.OPTIMAL:
            raise RuntimeError(f"Gurobi ended with status {self._m.Status}")
        return np.array(self._x.X), float(self._m.ObjBound)
