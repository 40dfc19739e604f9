"""The modelled edge server: FLOPs of the real server part, requests queued in arrival order on the
compiled scenario's server (both radios), and a run's simulated timing independent of the host."""

import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertModel

from cosim.experiment.config import load_config
from cosim.experiment.runloop import longest_wait_s, run_experiment
from cosim.simulator.simulation import Ns3Simulation
from cosim.wire.messages import RoundPlan
from learning.config import LoraSettings, ModelSettings
from learning.encoder import FAMILIES, Encoder
from learning.flops import step_flops_per_sample
from learning.split import build_split_model
from tests.test_ns3_scenario import RADIOS, fixed_cell


def tiny_split(layers: int, hidden: int = 64, inter: int = 128):
    config = BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=inter, max_position_embeddings=64)
    model = BertModel(config)
    encoder = Encoder(model=model, tokenizer=None, family=FAMILIES["bert"], path=Path("."))
    return build_split_model(encoder, ModelSettings(), LoraSettings(), num_labels=3).server


def test_server_flops_follow_the_layers_and_the_matrix_sizes():
    """Forward matrix products per token and layer: 2·(4·d² + 2·d·d_ff) for the projections and
    4·L·d for the attention scores and mixing; the step (forward + the backward down to the first
    layer's LoRA) costs between 2 and 3 forwards."""
    torch.manual_seed(0)
    d, d_ff, seq = 64, 128, 16
    forward_per_layer = seq * (2 * (4 * d * d + 2 * d * d_ff) + 4 * seq * d)
    one, three = (step_flops_per_sample(tiny_split(n), d, seq, activations_train=False)
                  for n in (1, 3))
    per_layer = (three.total - one.total) / 2
    assert 2.0 * forward_per_layer <= per_layer <= 3.0 * forward_per_layer
    assert three.total == pytest.approx(3 * one.total, rel=0.35)  # no cost outside the layers
    # the forward pass alone: the formula plus LoRA's low-rank products (r = 8 on query and value)
    lora = seq * 2 * 2 * (2 * d * 8)
    assert (three.forward - one.forward) / 2 == pytest.approx(forward_per_layer + lora, rel=0.02)


def serve(cfg, servers: int, work_s: float):
    """Three devices upload the same payload on equal shares: the uploads end together."""
    plan = RoundPlan.lumped(0, np.ones(3, bool), np.full(3, 1 / 3), np.full(3, 100_000), np.full(3, 10_000),
                            np.zeros(3), deadline_s=30.0, server_time_s=work_s, server_count=servers)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        return sim.execute(plan).records


@pytest.mark.ns3
@pytest.mark.parametrize("radio", RADIOS)
def test_requests_queue_for_the_server_in_arrival_order(ns3_binary, tmp_path, radio):
    cfg = fixed_cell(tmp_path, radio, [100.0, 100.0, 100.0])
    one = serve(cfg, 1, 1.0)
    waits = np.sort(one["server_wait_s"])
    # the later uploads wait for the ones ahead: about 0, 1 and 2 s (less what their uploads differ)
    assert waits[0] == pytest.approx(0.0, abs=0.05)
    assert waits[1] == pytest.approx(1.0, abs=0.1) and waits[2] == pytest.approx(2.0, abs=0.1)
    assert np.sort(one["completion_time_s"])[2] - np.sort(one["completion_time_s"])[0] > 1.8
    three = serve(cfg, 3, 1.0)
    assert three["server_wait_s"].max() == 0.0
    assert one["completion_time_s"].max() > three["completion_time_s"].max() + 1.8


@pytest.mark.ns3
def test_lte_grants_floor_of_share_times_resource_blocks(ns3_binary, tmp_path):
    """Read back from each UE's PHY: the RBs it transmits on, per grant, over 100 RBs (20 MHz)."""
    cfg = fixed_cell(tmp_path, "lte", [100.0, 150.0, 200.0])
    shares = np.array([0.455, 0.333, 0.2])
    plan = RoundPlan.lumped(0, np.ones(3, bool), shares, np.full(3, 300_000), np.full(3, 1000), np.zeros(3),
                            deadline_s=30.0)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        rec = sim.execute(plan).records
    assert rec["granted_share"].tolist() == [math.floor(b * 100) / 100 for b in shares]


@pytest.mark.ns3
def test_ideal_fdma_grants_the_nearest_whole_bins(ns3_binary, tmp_path):
    cfg = fixed_cell(tmp_path, "ideal-fdma", [100.0, 150.0], fdma_bins=200)
    plan = RoundPlan.lumped(0, np.ones(2, bool), np.array([0.4121, 0.3]), np.full(2, 50_000),
                            np.full(2, 1000), np.zeros(2), deadline_s=30.0)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        rec = sim.execute(plan).records
    assert rec["granted_share"].tolist() == [82 / 200, 60 / 200]


BUSY = "import time\nend = time.time() + 300\nwhile time.time() < end:\n    pass\n"


@pytest.mark.ns3
def test_same_seed_gives_the_same_tables_on_a_busy_and_a_quiet_machine(ns3_binary, tmp_path):
    """The default server model: the simulated timing of every round is a function of the config."""
    cfg = load_config("smoke", [f"results_dir={tmp_path}", "rounds=2"])
    quiet = run_experiment(cfg, path=tmp_path / "quiet").path
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        busy = run_experiment(cfg, path=tmp_path / "busy").path
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    for table in ("rounds", "devices"):
        a, b = (pd.read_parquet(p / f"{table}.parquet") for p in (quiet, busy))
        wall = [c for c in a.columns if c.endswith("wall_s") or c == "solve_time_s"]
        pd.testing.assert_frame_equal(a.drop(columns=wall), b.drop(columns=wall))
    devices = pd.read_parquet(quiet / "devices.parquet")
    assert (devices["server_time_s"] > 0).all() and (devices["server_time_s"] < 0.2).all()


@pytest.mark.parametrize("servers", [1, 3])
def test_the_wait_allowance_is_the_largest_work_that_can_come_first(servers):
    """Brute force: for each request, every set of `ahead` others, the most work over the servers."""
    rng = np.random.default_rng(5)
    for work in (rng.uniform(0.01, 1.0, 7), np.array([0.5, 0.5, 0.2, 0.5, 0.1, 0.2, 0.5])):  # with ties
        for ahead in range(len(work)):
            brute = []
            for k in range(len(work)):
                others = [j for j in range(len(work)) if j != k]
                sets = itertools.combinations(others, ahead)
                brute.append(max((sum(work[j] for j in first) for first in sets), default=0.0) / servers)
            assert longest_wait_s(work, ahead, servers) == pytest.approx(brute, abs=1e-12)
