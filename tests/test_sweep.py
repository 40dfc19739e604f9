"""`cosim sweep`: grids from a file, every point checked first, idempotent re-runs that finish only
what is missing (a killed run continues from its checkpoint)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cosim.campaign.sweep import Launcher, load_sweep, run_state
from cosim.cli import app
from cosim.simulator.scenario import ConfigError
from tests.test_ns3_faults import pid_gone


def write_sweep(folder: Path, **changes) -> Path:
    sweep = {"config": "smoke", "overrides": ["rounds=4", "energy_budget_j=0.03"],
             "grid": {"policy.name": ["lyapunov", "round-robin-k"], "seed": [1, 2]},
             "launcher": {"kind": "local", "workers": 2, "threads_per_run": 1},
             "results_dir": str(folder / "results"), **changes}
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def test_a_sweep_file_becomes_one_config_per_point(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path), ["grid.seed=[1,2,3]", "launcher.workers=3"])
    assert sweep.name == "grid" and sweep.folder == tmp_path / "results" / "sweep-grid"
    points = sweep.points()
    assert [p.name for p in points][:2] == ["policy.name=lyapunov,seed=1", "policy.name=lyapunov,seed=2"]
    assert len(points) == 6 and sweep.launcher.workers == 3
    cfg = sweep.run_config(points[-1])
    assert (cfg.policy.name, cfg.seed, cfg.rounds, cfg.energy_budget_j) == ("round-robin-k", 3, 4, 0.03)
    assert cfg.results_dir == sweep.folder / "runs"
    assert points[0].overrides == ("policy.name=lyapunov", "seed=1")


def test_a_grid_entry_named_by_a_dotted_key_is_overridden_whole(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path), ["grid.policy.name=[random-k]"])
    assert [p.name for p in sweep.points()] == ["policy.name=random-k,seed=1", "policy.name=random-k,seed=2"]


def test_a_labelled_group_sets_several_keys_together(tmp_path):
    grid = {"mobility": {"walk": {"scenario.mobility": "constant"},
                         "fast": {"scenario.mobility": "random-walk", "scenario.speed_max_mps": 20.0}},
            "learning.lora.target_modules": [["query", "key"]]}
    sweep = load_sweep(write_sweep(tmp_path, grid=grid))
    walk, fast = sweep.points()
    assert fast.name == "mobility=fast,learning.lora.target_modules=[query, key]"
    assert fast.overrides == ("scenario.mobility=random-walk", "scenario.speed_max_mps=20.0",
                              "learning.lora.target_modules=[query, key]")
    cfg = sweep.run_config(fast)
    assert (cfg.scenario.mobility, cfg.scenario.speed_max_mps) == ("random-walk", 20.0)
    assert sweep.run_config(walk).scenario.mobility == "constant"


@pytest.mark.parametrize(("changes", "message"), [
    ({"gird": {}}, "unknown key 'gird' .did you mean 'grid'"),
    ({"grid": {"seed": []}}, "grid must map config keys to non-empty lists"),
    ({"grid": {"policy.name": ["lyapunov", "nope"]}}, "sweep point policy.name=nope: policy.name='nope'"),
    ({"launcher": {"kind": "pbs"}}, "launcher.kind='pbs' is invalid: one of local, slurm"),
    ({"launcher": {"nodes": 2}}, "unknown launcher key 'nodes'"),
    ({"launcher": {"sbatch": "--account=x"}}, "launcher.sbatch='--account=x' is invalid: a mapping"),
    ({"launcher": {"sbatch": {"exclusive": True}}}, "launcher.sbatch=.* is invalid: a mapping"),
    ({"config": "missing.yaml"}, "neither a preset"),
])
def test_a_bad_sweep_stops_before_any_run(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path, **changes))
    assert not (tmp_path / "results").exists()


def test_threads_per_run_share_the_cores_or_follow_the_slurm_task():
    assert Launcher(workers=2, threads_per_run=None).threads == max(1, (os.cpu_count() or 1) // 2)
    assert Launcher(kind="slurm", cpus_per_task=4).threads == 4
    with pytest.raises(ConfigError, match="launcher.workers=0"):
        Launcher(workers=0)


def _wait_for(predicate, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.ns3
def test_rerunning_a_sweep_finishes_only_the_killed_run(ns3_binary, tmp_path):
    path = write_sweep(tmp_path)
    sweep = load_sweep(path)
    victim = sweep.folder / "runs" / "policy.name=lyapunov,seed=1"
    cosim = Path(sys.executable).parent / "cosim"
    proc = subprocess.Popen([str(cosim), "sweep", "run", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: (victim / "checkpoint.pt").is_file())
    pid = json.loads((victim / "manifest.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, output  # one run did not complete
    assert f"{victim.name}: failed: killed by SIGKILL" in output
    assert pid_gone(pid, within_s=3.0)
    others = [sweep.folder / "runs" / p.name for p in sweep.points() if p.name != victim.name]
    assert [run_state(r) for r in others] == ["completed"] * 3
    assert run_state(victim) == "running"  # its process died without a word
    stamps = {r: (r / "rounds.parquet").stat().st_mtime_ns for r in others}
    done = len(pd.read_parquet(victim / "rounds.parquet"))
    assert 1 <= done < 4

    # The sweep folder moves (another mount point on a cluster node, say): its runs still continue.
    (tmp_path / "results").rename(tmp_path / "moved")
    path = write_sweep(tmp_path, results_dir=str(tmp_path / "moved"))
    sweep = load_sweep(path)
    victim = sweep.folder / "runs" / victim.name
    stamps = {sweep.folder / "runs" / r.name: stamp for r, stamp in stamps.items()}
    others = list(stamps)
    again = CliRunner().invoke(app, ["sweep", "run", str(path)])
    assert again.exit_code == 0, again.output
    assert "4 runs: 3 completed, 1 to run" in again.output
    assert run_state(victim) == "completed"
    assert [r["from_round"] for r in json.loads((victim / "manifest.json").read_text())["resumed"]] == [done]
    assert {r: (r / "rounds.parquet").stat().st_mtime_ns for r in others} == stamps
    table = pd.read_csv(sweep.folder / "sweep.csv")
    assert list(table["status"]) == ["completed"] * 4 and set(table["seed"]) == {1, 2}
    assert "4 runs: 4 completed, 0 to run" in CliRunner().invoke(app, ["sweep", "run", str(path)]).output


def test_a_point_whose_worker_fails_names_the_error_and_its_log(tmp_path):
    """A run folder made with another config stops its worker before the run records anything; the
    sweep says why and where the log is, not the state the folder's earlier attempt left."""
    path = write_sweep(tmp_path, grid={"seed": [1]})
    sweep = load_sweep(path)
    point = sweep.points()[0]
    run = sweep.folder / "runs" / point.name
    run.mkdir(parents=True)
    made_with = {**sweep.run_config(point).to_dict(), "energy_budget_j": 0.05}
    (run / "config.yaml").write_text(yaml.safe_dump(made_with, sort_keys=False))
    (run / "manifest.json").write_text(json.dumps({"status": "interrupted", "rounds_done": 2,
                                                   "rounds_planned": 4}))
    result = CliRunner().invoke(app, ["sweep", "run", str(path)])
    assert result.exit_code == 1
    log = sweep.folder / "logs" / f"{point.name}.log"
    def squeezed(text: str) -> str:  # the console wraps long lines, within words too
        return "".join(text.split())

    said = squeezed(result.output)
    assert squeezed(f"{point.name}: failed: cosim.simulator.scenario.ConfigError: {run} was made with "
                    f"another config (energy_budget_j differ)") in said and squeezed(f"(log: {log})") in said
    assert "Traceback" in log.read_text()


SWEEPS = Path(__file__).resolve().parents[1] / "cosim" / "sweeps"


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_shipped_sweep_files_build_every_point(path, tmp_path, monkeypatch):
    """The shipped sweeps, after the set-up their comments give (the cars' trace for mobility):
    every point's config is valid, so a typo in a group cannot stop them."""
    monkeypatch.chdir(tmp_path)
    if "cosim sumo trace" in path.read_text():
        command = path.read_text().split("cosim sumo trace", 1)[1].splitlines()[0].split()
        assert CliRunner().invoke(app, ["sumo", "trace", *command]).exit_code == 0
    points = load_sweep(path).points()
    assert len({p.name for p in points}) == len(points) >= 4  # the smallest shipped grid: the tour's 2 x 2
