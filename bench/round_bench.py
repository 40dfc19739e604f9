"""Where a round's wall time goes at the default size: `python -m bench.round_bench`.

Runs a few rounds of the `default` experiment (real ns-3 LTE, MiniLM, solver) and splits each
round into channel report, plan (solver), ns-3 transfers and local training (which overlap),
aggregation, evaluation and the rest (bridge hand-offs, building inputs, bookkeeping). The
overlap works if a round costs about max(ns-3, training), not their sum.
"""

from __future__ import annotations

import argparse
import tempfile

import pandas as pd

from bench.machine import machine
from cosim.experiment.config import load_config
from cosim.experiment.runloop import run_experiment

PHASES = ["report_wall_s", "plan_wall_s", "ns3_wall_s", "train_wall_s", "aggregate_wall_s",
          "eval_wall_s"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.round_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="default", help="preset or YAML file")
    ap.add_argument("--rounds", type=int, default=4, help="rounds to run")
    ap.add_argument("overrides", nargs="*", help="key=value overrides")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cosim-round-bench-") as tmp:
        cfg = load_config(a.config, [f"rounds={a.rounds}", f"results_dir={tmp}", *a.overrides])
        rounds: pd.DataFrame = run_experiment(cfg).rounds_frame
    # the first round loads and warms up; report the others
    steady = rounds.iloc[1:] if len(rounds) > 1 else rounds
    mean = steady[PHASES + ["wall_s"]].mean()
    parallel = mean[["ns3_wall_s", "train_wall_s"]].max()
    serial = mean[["ns3_wall_s", "train_wall_s"]].sum()
    other = mean["wall_s"] - (mean[PHASES].sum() - mean[["ns3_wall_s", "train_wall_s"]].min())
    print(f"# one round of `{a.config}` ({cfg.scenario.devices} devices, {cfg.scenario.radio}), "
          f"mean of rounds 1..{len(rounds) - 1}, on {machine()}")
    print(f"{'phase':<28}{'wall_s':>10}{'share':>9}")
    for phase in PHASES:
        print(f"{phase.removesuffix('_wall_s'):<28}{mean[phase]:>10.3f}{mean[phase] / mean['wall_s']:>9.1%}")
    print(f"{'other (bridge, bookkeeping)':<28}{other:>10.3f}{other / mean['wall_s']:>9.1%}")
    print(f"{'round':<28}{mean['wall_s']:>10.3f}")
    # evaluation runs every `eval_every` rounds on the held-out set, outside the round's transfers
    work = mean["wall_s"] - mean["eval_wall_s"]
    print(f"overlap (round without evaluation): {work:.3f} s = {work / parallel:.2f} x max(ns-3, training), "
          f"{work / serial:.2f} x (ns-3 + training)")
    small = mean["report_wall_s"] + mean["plan_wall_s"] + other
    print(f"report + solver + other = {small / mean['wall_s']:.1%} of a round (goal < 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
