"""Policies from outside the package: docs/examples/proportional_fair.py (the guide's) copied to a
folder of its own and run by import path, alone and in a sweep beside a built-in; and the errors a
bad policy gets before anything starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cosim.experiment.config import load_config
from cosim.simulator.scenario import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "proportional_fair.py"
COSIM = Path(sys.executable).parent / "cosim"
NAME = "proportional_fair:ProportionalFair"


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the project holding the guide's policy, as a user would have it."""
    folder = tmp_path / "my_policies"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / EXAMPLE.name)
    return folder


def _cosim(args: list[str], pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(COSIM), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.ns3
def test_the_guides_policy_runs_by_import_path(ns3_binary, outside, tmp_path):
    done = _cosim(["run", "smoke", f"policy.name={NAME}", "policy.k=2", "rounds=3",
                   f"results_dir={tmp_path / 'results'}"], outside, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = next((tmp_path / "results").iterdir())
    rounds = pd.read_parquet(folder / "rounds.parquet")
    assert (rounds["solver"] == "proportional-fair").all() and rounds["scheduled"].between(1, 2).all()
    devices = pd.read_parquet(folder / "devices.parquet")
    assert devices.groupby("round")["bandwidth_share"].sum().le(1 + 1e-9).all()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert (folder / "config.yaml").read_text().count("k: 2") == 1


@pytest.mark.ns3
def test_the_guides_policy_in_a_sweep_beside_a_builtin(ns3_binary, outside, tmp_path):
    sweep = tmp_path / "pf-vs-random.yaml"
    sweep.write_text(f"""config: smoke
overrides: [rounds=2, policy.k=2]
grid:
  policy.name: ["{NAME}", random-k]
launcher: {{kind: local, workers: 2, threads_per_run: 1}}
results_dir: {tmp_path / 'results'}
""")
    done = _cosim(["sweep", "run", str(sweep)], outside, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = sorted((tmp_path / "results" / "sweep-pf-vs-random" / "runs").glob("policy.name=*/"))
    solvers = {pd.read_parquet(r / "rounds.parquet")["solver"].iloc[0] for r in runs}
    assert len(runs) == 2 and solvers == {"proportional-fair", "random-k"}


def test_the_guides_own_test_passes(outside):
    shutil.copy(EXAMPLE.with_name("test_proportional_fair.py"), outside)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(outside)],
                          cwd=outside, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 passed" in done.stdout


@pytest.mark.parametrize(("source", "override", "message"), [
    ("raise RuntimeError('no licence for my solver')\n", "policy.name=bad:P",
     "module 'bad' does not import: RuntimeError: no licence for my solver"),
    ("class Q:\n    pass\n", "policy.name=bad:P", "module 'bad' has no 'P' (its classes: Q)"),
    ("class P:\n    def plan(self, inputs):\n        pass\n", "policy.name=bad:P",
     "'bad:P' has no observe; a policy is a class with plan(inputs) -> Plan and observe("),
    (None, "policy.name=proportional_fair:ProportionalFair policy.v=3",
     "policy.v is not a knob of proportional_fair:ProportionalFair; its knobs: k"),
    (None, "policy.name=proportional_fair:ProportionalFair policy.k=many",
     "policy.k='many' is invalid: expected an integer"),
    (None, "policy.name=proportional_fair:ProportionalFair policy.k=0",
     "policy (proportional_fair:ProportionalFair): k=0 must be >= 1"),
])
def test_a_bad_policy_is_refused_before_anything_starts(outside, monkeypatch, source, override, message):
    if source is not None:
        (outside / "bad.py").write_text(source)
    monkeypatch.syspath_prepend(str(outside))
    for module in ("bad", "proportional_fair"):
        sys.modules.pop(module, None)
    with pytest.raises(ConfigError) as err:
        load_config("smoke", override.split())
    assert message in str(err.value)
