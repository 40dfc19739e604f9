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
