"""The code examples of docs/ are files that run, and the pages show them as they are."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOWN = [("docs/python-api.md", "docs/examples/drive_the_scenario.py"),
         ("docs/guides/own-model-and-data.md", "docs/examples/own_model_and_data.py"),
         ("docs/guides/add-a-policy.md", "docs/examples/proportional_fair.py"),  # run by test_policy_plugins
         ("docs/guides/add-a-policy.md", "docs/examples/test_proportional_fair.py"),
         ("docs/learning.md", "docs/examples/trimmed_mean.py")]  # run by test_aggregator_plugins
EXPECTED = {"docs/examples/drive_the_scenario.py": "server_compute",  # what each prints
            "docs/examples/own_model_and_data.py": "-smoke-lyapunov-s1"}


@pytest.mark.parametrize("page, example", SHOWN)
def test_the_page_shows_the_example_file_verbatim(page, example):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)
    assert (ROOT / example).read_text() in blocks


def test_the_policy_guides_sweep_file_is_a_valid_sweep(tmp_path, monkeypatch):
    from cosim import load_sweep

    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples"))
    text = (ROOT / "docs/guides/add-a-policy.md").read_text()
    sweep_file = tmp_path / "pf-vs-builtins.yaml"
    sweep_file.write_text(next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "grid:" in b))
    sweep = load_sweep(sweep_file)
    knobs = {p.values["policy.name"]: sweep.run_config(p).policy.to_dict() for p in sweep.points()}
    assert len(sweep.points()) == 20 and knobs["random-k"]["k"] == 3 and "k" not in knobs["lyapunov"]
    assert knobs["proportional_fair:ProportionalFair"] == {"name": "proportional_fair:ProportionalFair",
                                                          "k": 3}


@pytest.mark.ns3
@pytest.mark.parametrize("example", EXPECTED)
def test_the_example_runs(ns3_binary, example):
    done = subprocess.run([sys.executable, str(ROOT / example)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert EXPECTED[example] in done.stdout


def test_the_slurm_guide_shows_its_sweep_file_and_the_file_is_a_valid_sweep():
    from cosim import load_sweep

    text = (ROOT / "docs/examples/slurm-sweep.yaml").read_text()
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    assert body in re.findall(r"```yaml\n(.*?)```", (ROOT / "docs/guides/run-on-slurm.md").read_text(), re.S)
    sweep = load_sweep(ROOT / "docs/examples/slurm-sweep.yaml")  # every point's config is checked
    assert len(sweep.points()) == 15 and sweep.launcher.kind == "slurm"


@pytest.mark.ns3
def test_the_ns3_on_another_host_script_runs_a_run_over_curve(ns3_binary, tmp_path):
    from tests.test_zmq_transport import free_port

    env = {**os.environ, "WORK": str(tmp_path / "work"), "PORT": str(free_port()),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(ROOT / "docs/examples/ns3_on_another_host.sh"),
                           f"results_dir={tmp_path / 'results'}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads(next((tmp_path / "results").glob("*/manifest.json")).read_text())
    assert manifest["status"] == "completed" and manifest["rounds_done"] == 2
    assert manifest["simulator"]["transport"] == "zmq" and manifest["simulator"]["authentication"] == "curve"
    for secret in (tmp_path / "work").rglob("*.key_secret"):
        assert secret.stat().st_mode & 0o777 == 0o600
