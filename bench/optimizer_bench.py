"""Per-round solve time of the scheduler vs K: exact MILP on Gurobi (where the bundled size-limited
licence allows) and HiGHS, and the Lagrangian solver with its gap to the exact optimum.

    .venv/bin/python -m bench.optimizer_bench [--ks 10,50,100] [--rounds 20]

Each K gets `rounds` random rounds (around docs/design.md's defaults, random queues and
weights). The solvers take turns round by round, so a slow spell of the machine hits all of them
alike, and each solves a fresh problem object so none reuses another's cached splits. The compiled
kernels are loaded before any timing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from bench.machine import machine
from optimizer import ExactSolver, Plan, RoundProblem, load_kernels, solve_lagrangian
from optimizer.backends import SolverRefused
from optimizer.synthetic import random_inputs


def _rounds(k: int, n: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed + k)
    return [(random_inputs(rng, k, deadline_s=float(rng.uniform(4.0, 8.0)), mean_snr_db=(-5.0, 20.0)),
             rng.uniform(0.0, 5.0, k), float(rng.uniform(1.0, 30.0))) for _ in range(n)]


def _solve_in_turn(solvers: dict[str, Callable[[RoundProblem], Plan]],
                   rounds: list[tuple]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Solve times [s] and objectives per solver; a solver whose licence refuses the first round
    is left out."""
    plans: dict[str, list[Plan]] = {name: [] for name in solvers}
    for r in rounds:
        for name in list(plans):
            try:
                plans[name].append(solvers[name](RoundProblem(*r)))
            except SolverRefused:
                del plans[name]
    return {name: (np.array([p.solve_time_s for p in ps]), np.array([p.objective for p in ps]))
            for name, ps in plans.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.optimizer_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="10,50,100,200,500,1000", help="numbers of devices")
    ap.add_argument("--rounds", type=int, default=20, help="random rounds per K")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(f"# optimizer per-round solve time on {machine()} (1 solver thread), "
          f"mean over {a.rounds} rounds; gap = (Lagrangian − exact) / exact; ratio = median exact "
          f"(Gurobi, else HiGHS) / median Lagrangian time")
    print(f"{'K':>6}{'gurobi_ms':>12}{'highs_ms':>11}{'lagr_ms':>10}{'gap_mean':>11}{'gap_max':>10}"
          f"{'gurobi=highs':>14}{'n_sched':>9}{'ratio':>7}")
    load_kernels()
    for k in [int(x) for x in a.ks.split(",")]:
        rounds = _rounds(k, a.rounds, a.seed)
        out = _solve_in_turn({"gurobi": ExactSolver("gurobi").solve, "highs": ExactSolver("highs").solve,
                              "lagrangian": solve_lagrangian}, rounds)
        highs_t, best = out["highs"]
        lagr_t, lagr_obj = out["lagrangian"]
        gap = (lagr_obj - best) / np.abs(best)
        if "gurobi" in out:
            gurobi_t, gurobi_obj = out["gurobi"]
            gurobi, exact_med = f"{1e3 * gurobi_t.mean():>12.1f}", np.median(gurobi_t)
            agree = f"{np.max(np.abs(gurobi_obj - best) / np.abs(best)):>14.1e}"
        else:
            gurobi, agree, exact_med = f"{'licence':>12}", f"{'-':>14}", np.median(highs_t)
        n = np.mean([solve_lagrangian(RoundProblem(*r)).n_scheduled for r in rounds])
        print(f"{k:>6}{gurobi}{1e3 * highs_t.mean():>11.1f}{1e3 * lagr_t.mean():>10.2f}"
              f"{gap.mean():>11.1e}{gap.max():>10.1e}{agree}{n:>9.1f}{exact_med / np.median(lagr_t):>7.1f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
