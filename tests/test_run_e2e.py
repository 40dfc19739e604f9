"""`cosim run smoke` with every real part (ns-3 binary, MiniLM, the MILP solver), and a run whose
simulator dies: finished rounds stay on disk, no segment or process is left."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from cosim import bridge
from cosim.cli import app
from cosim.config import load_config
from cosim.runloop import run_experiment
from cosim.simulation import SimulationError
from tests.test_ns3_faults import pid_gone

pytestmark = pytest.mark.ns3
torch.set_num_threads(1)


def test_smoke_run_writes_a_complete_run_folder(ns3_binary, tmp_path):
    result = CliRunner().invoke(app, ["run", "smoke", f"results_dir={tmp_path}", "scenario.radio=lte",
                                      "flow_monitor=true"])
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.iterdir()
    assert folder.name.endswith("-smoke-lyapunov-s1")
    for name in ("config.yaml", "manifest.json", "rounds.parquet", "devices.parquet", "ns3.log", "run.log",
                 "flowmon.xml"):
        assert (folder / name).is_file(), name
    plots = sorted(p.name for p in (folder / "plots").iterdir())
    assert plots == ["accuracy.png", "delay_cdf.png", "energy.png", "queues.png", "scheduled.png"]
    output = result.output.replace("\n", "")
    assert "plots:" in output and str(folder / "plots" / "accuracy.png") in output

    cfg = load_config("smoke")
    assert "<FlowMonitor>" in (folder / "flowmon.xml").read_text()[:200]
    rounds, devices = pd.read_parquet(folder / "rounds.parquet"), pd.read_parquet(folder / "devices.parquet")
    assert list(rounds["round"]) == list(range(cfg.rounds))
    assert len(devices) == cfg.rounds * cfg.scenario.devices
    sched = devices[devices["scheduled"]]
    assert len(sched) > 0
    assert (sched["realised_energy_j"] > 0).all() and (sched["predicted_energy_j"] > 0).all()
    assert (sched["tx_energy_j"] > 0).all() and (sched["uplink_bytes"] > 0).all()
    assert (devices.loc[~devices["scheduled"], "realised_energy_j"] == 0).all()
    assert rounds["accuracy"].notna().iloc[-1]

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["rounds_done"] == cfg.rounds
    assert manifest["solvers"] and manifest["solvers"][0]["solver"] in ("gurobi", "highs")
    assert manifest["versions"]["ns3"] and manifest["versions"]["torch"]


def _ns3_children() -> list[int]:
    """Our cosim-scenario child processes, from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and comm.startswith("cosim-scenario") and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def test_killed_simulator_keeps_finished_rounds_and_leaves_nothing(ns3_binary, tmp_path):
    cfg = load_config("smoke", [f"results_dir={tmp_path}", "rounds=3"])
    killed: list[int] = []
    segments: list[str] = []

    def kill_after_first_round(row: dict) -> None:
        if not killed:
            segments.extend(s.name for s in bridge.list_segments() if s.python_pid == os.getpid())
            killed.extend(_ns3_children())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(SimulationError, match="killed by signal SIGKILL"):
        run_experiment(cfg, on_round=kill_after_first_round)
    assert killed and all(pid_gone(pid, within_s=3.0) for pid in killed)
    assert segments and not any((bridge.SHM_DIR / name).exists() for name in segments)
    (folder,) = tmp_path.iterdir()
    assert len(pd.read_parquet(folder / "rounds.parquet")) == 1
    assert len(pd.read_parquet(folder / "devices.parquet")) == cfg.scenario.devices
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "SIGKILL" in manifest["error"]
    assert (folder / "plots" / "accuracy.png").is_file()


def test_sigterm_to_cosim_run_keeps_finished_rounds(ns3_binary, tmp_path):
    """A scheduler's SIGTERM (or Ctrl-C) mid-run: exit 130, rounds on disk, nothing left behind."""
    cosim = Path(sys.executable).parent / "cosim"
    proc = subprocess.Popen([str(cosim), "run", "smoke", "rounds=50", f"results_dir={tmp_path}"],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    rounds = None
    while time.monotonic() < deadline and proc.poll() is None:
        rounds = next(tmp_path.glob("*/rounds.parquet"), None)
        if rounds is not None:
            break
        time.sleep(0.2)
    assert rounds is not None, "no round finished"
    ns3_pids = [s.ns3_pid for s in bridge.list_segments() if s.python_pid == proc.pid]
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    manifest = json.loads((rounds.parent / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    done = len(pd.read_parquet(rounds))
    assert 1 <= done < 50 and manifest["rounds_done"] == done
    assert all(pid_gone(pid, within_s=5.0) for pid in ns3_pids)
    assert not [s for s in bridge.list_segments() if s.python_pid == proc.pid]
