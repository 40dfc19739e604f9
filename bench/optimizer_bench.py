"""Per-round solve time of the scheduler vs K: exact MILP on Gurobi (where the bundled size-limited
licence allows) and HiGHS, and the Lagrangian solver with its gap to the exact optimum.

    .venv/bin/python -m bench.optimizer_bench [--ks 10,50,100] [--rounds 5]

Each K gets `rounds` random rounds (DESIGN.md ranges, random queues and weights); every solver
sees the same rounds, each on a fresh problem object so none reuses another's cached splits.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from optimizer import ExactSolver, RoundProblem, solve_lagrangian
from optimizer.backends import SolverRefused
from optimizer.synthetic import random_inputs


def _rounds(k: int, n: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed + k)
    return [(random_inputs(rng, k, deadline_s=float(rng.uniform(4.0, 8.0)), mean_snr_db=(-5.0, 20.0)),
             rng.uniform(0.0, 5.0, k), float(rng.uniform(1.0, 30.0))) for _ in range(n)]


def _solve_all(solve, rounds: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    plans = [solve(RoundProblem(*r)) for r in rounds]
    return np.array([p.solve_time_s for p in plans]), np.array([p.objective for p in plans])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.optimizer_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="10,50,100,200,500,1000", help="numbers of devices")
    ap.add_argument("--rounds", type=int, default=5, help="random rounds per K")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(f"# optimizer per-round solve time on {os.cpu_count()} cores (1 solver thread), "
          f"mean over {a.rounds} rounds; gap = (Lagrangian − exact) / exact; ratio = median gurobi / median "
          f"Lagrangian time")
    print(f"{'K':>6}{'gurobi_ms':>12}{'highs_ms':>11}{'lagr_ms':>10}{'gap_mean':>11}{'gap_max':>10}"
          f"{'gurobi=highs':>14}{'n_sched':>9}{'ratio':>7}")
    for k in [int(x) for x in a.ks.split(",")]:
        rounds = _rounds(k, a.rounds, a.seed)
        highs_t, best = _solve_all(ExactSolver("highs").solve, rounds)
        try:
            gurobi_t, gurobi_obj = _solve_all(ExactSolver("gurobi").solve, rounds)
            gurobi, gurobi_med = f"{1e3 * gurobi_t.mean():>12.1f}", np.median(gurobi_t)
            agree = f"{np.max(np.abs(gurobi_obj - best) / np.abs(best)):>14.1e}"
        except SolverRefused:
            gurobi, agree, gurobi_med = f"{'licence':>12}", f"{'-':>14}", np.nan
        lagr_t, lagr_obj = _solve_all(solve_lagrangian, rounds)
        gap = (lagr_obj - best) / np.abs(best)
        n = np.mean([solve_lagrangian(RoundProblem(*r)).n_scheduled for r in rounds])
        print(f"{k:>6}{gurobi}{1e3 * highs_t.mean():>11.1f}{1e3 * lagr_t.mean():>10.1f}"
              f"{gap.mean():>11.1e}{gap.max():>10.1e}{agree}{n:>9.1f}{gurobi_med / np.median(lagr_t):>7.1f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
