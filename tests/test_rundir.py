"""The run folder's manifest agrees with its tables, also when a signal lands between writing them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cosim.experiment import rundir
from cosim.experiment.config import load_config


def test_an_interrupt_between_the_tables_and_the_manifest_leaves_them_agreeing(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "git_commit", lambda: None)
    run = rundir.RunDir(load_config("smoke", [f"results_dir={tmp_path}", "rounds=3"]))
    row = {"round": 0, "scheduled": 1, "delivered": 1, "solver": "random-k", "license": "n/a"}
    columns = {"round": np.zeros(2, int), "device_id": np.arange(2)}
    write_tables = rundir.RunDir._write_tables

    def interrupted(self):  # Ctrl-C right after the tables went to disk, before the manifest moved on
        write_tables(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(rundir.RunDir, "_write_tables", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.record(row, columns)
    monkeypatch.setattr(rundir.RunDir, "_write_tables", write_tables)
    run.finish("interrupted")
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert len(pd.read_parquet(run.path / "rounds.parquet")) == 1
    assert (manifest["status"], manifest["rounds_done"]) == ("interrupted", 1)


@pytest.mark.parametrize(("accuracy", "perplexity", "metric"), [
    ([np.nan, 0.6], [np.nan, np.nan], "accuracy"),  # classification
    ([np.nan, np.nan], [np.nan, 12.0], "perplexity"),  # causal LM
    ([np.nan, np.nan], [np.nan, np.nan], "accuracy"),  # not evaluated yet: no perplexity says LM
])
def test_a_run_is_read_by_the_metric_its_task_reports(accuracy, perplexity, metric):
    rounds = pd.DataFrame({"round": [0, 1], "accuracy": accuracy, "perplexity": perplexity})
    assert rundir.quality_metric(rounds) == metric
