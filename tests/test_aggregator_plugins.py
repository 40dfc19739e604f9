"""An aggregation rule from outside the package: docs/examples/trimmed_mean.py copied to a folder of
its own, checked against numpy on a tiny model's updates and run by `cosim run` by import path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_learning_federated import _config
from test_learning_support import tiny_model_dir, topic_csv

from cosim.experiment.config import load_config
from cosim.simulator.scenario import ConfigError
from learning.config import AggregatorSettings
from learning.trainer import SplitFedTrainer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "trimmed_mean.py"


@pytest.fixture
def outside(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "my_rules"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / EXAMPLE.name)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("trimmed_mean", None)
    return folder


def test_the_trimmed_mean_is_numpys(outside, tmp_path):
    import trimmed_mean

    files = tiny_model_dir(tmp_path / "model"), topic_csv(tmp_path / "topics.csv")
    rule = AggregatorSettings("trimmed_mean:TrimmedMean", trimmed_mean.TrimmedMeanConfig(trim=0.25))
    trainer = SplitFedTrainer(_config(files, {"aggregator": rule}))
    updates = trainer.local_train([0, 1, 2, 3])
    trainer.aggregate(updates, {0, 1, 2, 3})
    for name, value in trainer.global_server.items():
        stacked = np.sort(np.stack([updates[k].server_state[name].numpy() for k in range(4)]), axis=0)
        np.testing.assert_allclose(value.numpy(), stacked[1:3].mean(axis=0), rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(value, updates[0].server_state[name])
               for name, value in trainer.global_server.items())


@pytest.mark.ns3
def test_cosim_runs_the_rule_by_import_path(ns3_binary, outside, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(outside), "OMP_NUM_THREADS": "1"}
    args = ["run", "smoke", "rounds=2", "learning.aggregator.name=trimmed_mean:TrimmedMean",
            "learning.aggregator.trim=0.2", f"results_dir={tmp_path / 'results'}"]
    done = subprocess.run([str(Path(sys.executable).parent / "cosim"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    config = yaml.safe_load(next((tmp_path / "results").glob("*/config.yaml")).read_text())
    assert config["learning"]["aggregator"] == {"name": "trimmed_mean:TrimmedMean", "trim": 0.2}


@pytest.mark.parametrize(("overrides", "message"), [
    (["learning.aggregator.name=trimmed_mean:TrimmedMean", "learning.aggregator.trim=half"],
     "learning.aggregator.trim='half' is invalid: expected a number"),
    (["learning.aggregator.name=trimmed_mean:TrimmedMean", "learning.aggregator.trim=0.5"],
     "learning.aggregator (trimmed_mean:TrimmedMean): trim=0.5 must be in [0, 0.5)"),
    (["learning.aggregator.name=trimmed_mean:Median"], "cannot be loaded: AttributeError"),
    (["learning.aggregator=fedprox", "learning.aggregator.mu=0.1"], "learning.aggregator is a value"),
])
def test_a_bad_rule_is_refused_before_anything_starts(outside, overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config("smoke", overrides)
    assert message in str(err.value)
