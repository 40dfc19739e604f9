"""Sweep throughput: the same grid of `smoke` runs on a local pool of 1 and of 2 workers, side by side.

    .venv/bin/python -m bench.sweep_bench [--runs 4] [--rounds 3] [--config smoke]

Each worker count gets a fresh sweep folder; threads per run follow the launcher's rule (cores //
workers). Prints wall time, runs per hour and the ratio 2 workers / 1 worker.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from bench.machine import machine
from cosim.campaign.sweep import load_sweep, prepare, run_local, run_state


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sweep_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=4, help="runs per sweep (seeds 1..runs)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per run")
    ap.add_argument("--config", default="smoke", help="preset or YAML every run starts from")
    a = ap.parse_args(argv)
    print(f"# sweep throughput on {machine()}: {a.runs} `{a.config}` runs of {a.rounds} rounds")
    print(f"{'workers':>8}{'threads/run':>13}{'wall_s':>9}{'runs/hour':>11}")
    per_hour = {}
    with tempfile.TemporaryDirectory(prefix="cosim-sweep-bench-") as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump({"config": a.config, "overrides": [f"rounds={a.rounds}"],
                                        "grid": {"seed": list(range(1, a.runs + 1))},
                                        "results_dir": str(Path(tmp) / "results")}))
        for workers in (1, 2):
            sweep = load_sweep(path, [f"name=w{workers}", f"launcher.workers={workers}"])
            todo = prepare(sweep)
            start = time.perf_counter()
            run_local(sweep, todo, lambda name, state: None)
            wall = time.perf_counter() - start
            states = {run_state(sweep.folder / "runs" / p.name) for p in todo}
            assert states == {"completed"}, f"not every run completed: {states} (logs in {sweep.folder})"
            per_hour[workers] = 3600.0 * len(todo) / wall
            threads = sweep.launcher.threads
            print(f"{workers:>8}{threads:>13}{wall:>9.1f}{per_hour[workers]:>11.0f}", flush=True)
    print(f"ratio 2 workers / 1 worker: {per_hour[2] / per_hour[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
