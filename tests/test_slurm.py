"""The same sweep locally and as a job array on a real Slurm: same results for the same seeds. As
root, a single-node cluster (Debian's slurm-wlm on loopback, started by tests/slurm/slurm-up.sh);
otherwise the Slurm that answers `sinfo` (a cluster's), or the test skips saying what it needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cosim.campaign.sweep import load_sweep
from cosim.cli import app
from tests.test_run_e2e import assert_same_rounds

SCRIPTS = Path(__file__).parent / "slurm"
GUIDE_SWEEP = Path(__file__).resolve().parents[1] / "docs" / "examples" / "slurm-sweep.yaml"
pytestmark = pytest.mark.ns3


def slurm_answers() -> bool:
    """A Slurm this user can already submit to (a cluster's), found by asking it."""
    if shutil.which("sinfo") is None:
        return False
    reply = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60)
    return reply.returncode == 0 and reply.stdout.strip() != ""


@pytest.fixture(scope="module")
def slurm_conf():
    """As root, a loopback test cluster (installed and started if needed), stopped afterwards; else
    the Slurm that already answers (None: its own configuration), or a skip naming what is needed."""
    if os.geteuid() != 0:
        if slurm_answers():
            yield None
            return
        pytest.skip("needs a Slurm that answers `sinfo`, or root: tests/slurm/slurm-up.sh installs slurm-wlm "
                    "and munge with apt-get and runs slurmctld/slurmd as root (CI runs this test as root)")
    up = subprocess.run([str(SCRIPTS / "slurm-up.sh")], capture_output=True, text=True, timeout=900)
    assert up.returncode == 0, f"the test Slurm cluster did not start:\n{up.stderr[-3000:]}"
    yield up.stdout.strip().removeprefix("export SLURM_CONF=")
    subprocess.run([str(SCRIPTS / "slurm-down.sh")], timeout=60)


def test_the_guides_sweep_gives_the_same_results_locally_and_on_slurm(ns3_binary, tmp_path, slurm_conf,
                                                                     monkeypatch):
    """docs/guides/run-on-slurm.md's sweep file, at smoke size, as a job array and on a local pool."""
    if slurm_conf is not None:
        monkeypatch.setenv("SLURM_CONF", slurm_conf)
    monkeypatch.chdir(tmp_path)
    small = ["config=smoke", "overrides=[rounds=3, energy_budget_j=0.03]",
             "grid.policy.name=[lyapunov, round-robin-k]", "grid.seed=[1, 2]",
             f"results_dir={tmp_path / 'results'}", "launcher.cpus_per_task=1", "launcher.mem_gb=2",
             "launcher.sbatch={comment: cosim-test}"]
    local_args = [*small, "name=local", "launcher.kind=local", "launcher.workers=2",
                  "launcher.threads_per_run=1"]
    local = CliRunner().invoke(app, ["sweep", "run", str(GUIDE_SWEEP), *local_args])
    assert local.exit_code == 0, local.output
    on_slurm = CliRunner().invoke(app, ["sweep", "run", str(GUIDE_SWEEP), *small, "name=slurm"])
    assert on_slurm.exit_code == 0, on_slurm.output
    assert "submitted Slurm job array" in on_slurm.output
    local_sweep = load_sweep(GUIDE_SWEEP, local_args)
    slurm_sweep = load_sweep(GUIDE_SWEEP, [*small, "name=slurm"])
    slurm_logs = list((slurm_sweep.folder / "slurm").glob("*/*_log.out"))
    assert len(slurm_logs) == 4  # four array tasks ran under Slurm
    scripts = list((slurm_sweep.folder / "slurm").rglob("*_submission.sh"))
    assert scripts and "#SBATCH --comment=cosim-test" in scripts[0].read_text()  # launcher.sbatch
    for point in local_sweep.points():
        assert_same_rounds(slurm_sweep.folder / "runs" / point.name, local_sweep.folder / "runs" / point.name)

    # A task that fails is named with its error and the log Slurm kept, not its folder's old state.
    point = slurm_sweep.points()[0]
    run = slurm_sweep.folder / "runs" / point.name
    (run / "config.yaml").write_text(yaml.safe_dump({**slurm_sweep.run_config(point).to_dict(),
                                                     "energy_budget_j": 0.05}, sort_keys=False))
    (run / "manifest.json").write_text(json.dumps({"status": "interrupted", "rounds_done": 1,
                                                   "rounds_planned": 3}))
    failed = CliRunner().invoke(app, ["sweep", "run", str(GUIDE_SWEEP), *small, "name=slurm"])
    assert failed.exit_code == 1, failed.output
    said = "".join(failed.output.split())  # the console wraps long lines, within words too
    assert f"{point.name}:failed:cosim.simulator.scenario.ConfigError:" in said
    assert "(energy_budget_jdiffer)" in said and "_log.err)" in said
