"""Where the learning runs and in which precision: the choices, their errors, and that neither
changes a simulated number (only the model's own numerics, for bf16)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from test_learning_split import _batch, _grads
from test_learning_support import tiny_model_dir

from learning.accelerator import resolve_device
from learning.config import LoraSettings, ModelSettings, TrainerConfig
from learning.encoder import load_encoder
from learning.payload import Link
from learning.split import build_split_model
from learning.step import split_step

torch.set_num_threads(1)


def test_cuda_where_torch_sees_no_gpu_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    advice = (r"learning.device=cuda, but torch .* sees no GPU: install a CUDA build of torch .* "
              r"or set learning.device=cpu")
    with pytest.raises(ValueError, match=advice):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize(("key", "value"), [("device", "tpu"), ("precision", "fp16")])
def test_unknown_devices_and_precisions_are_refused(key, value):
    with pytest.raises(ValueError, match=f"{key} must be one of"):
        TrainerConfig(**{key: value})


def test_bf16_runs_the_forward_passes_in_bf16_and_sends_the_same_bytes(tmp_path):
    encoder = load_encoder(tiny_model_dir(tmp_path, layers=3))
    model = build_split_model(encoder, ModelSettings(device_layers=1), LoraSettings(lora_dropout=0.0), 3)
    model.train(False)
    with torch.no_grad():
        for name, param in [*model.device.named_parameters(), *model.server.named_parameters()]:
            if param.requires_grad and ("lora_B" in name or "head" in name):
                param.normal_(0, 0.02)
    batch = _batch(encoder, length=16)
    runs = {}
    for precision in ("fp32", "bf16"):
        model.to(torch.device("cpu"), precision)
        link = Link()
        split_step(model, batch, link)
        runs[precision] = link.transfers, _grads(model)
    assert runs["fp32"][0] == runs["bf16"][0]  # every tensor crossed with the same name, direction and bytes
    fp32, bf16 = runs["fp32"][1], runs["bf16"][1]
    assert fp32.keys() == bf16.keys()
    for name in fp32:
        assert not torch.equal(fp32[name], bf16[name]), name  # bf16 arithmetic did run
        assert bf16[name].dtype == torch.float32  # the weights and their gradients stay fp32
        torch.testing.assert_close(bf16[name], fp32[name], rtol=0.1, atol=0.1 * fp32[name].abs().max().item())


NETWORK = ["scheduled", "delivered", "uplink_bytes", "downlink_bytes", "realised_delay_s",
           "realised_energy_j", "device_compute_s", "server_compute_s"]


def _network_columns(run) -> pd.DataFrame:
    devices = pd.read_parquet(run.path / "devices.parquet")
    return devices[[c for c in NETWORK if c in devices]]


@pytest.mark.ns3
@pytest.mark.parametrize("other", ["precision=bf16", "device=cuda"])
def test_precision_and_device_change_no_simulated_number(ns3_binary, tmp_path, other):
    """A smoke run's network tables are the same number for number in bf16 or on a GPU: what a device
    and the server compute, send and spend comes from the models, not from how the host computes."""
    from cosim.experiment.config import load_config
    from cosim.experiment.runloop import run_experiment

    if other == "device=cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available()); run on a GPU node to compare")
    runs = {}
    for setting in ("device=cpu", other):
        cfg = load_config("smoke", [f"results_dir={tmp_path / setting}", f"learning.{setting}"])
        runs[setting] = run_experiment(cfg)
    pd.testing.assert_frame_equal(_network_columns(runs["device=cpu"]), _network_columns(runs[other]),
                                  check_exact=True)
    assert len(_network_columns(runs[other]).columns) == len(NETWORK)
    # the other setting did take effect: the manifest says so and the learning itself moved
    setting, value = other.split("=")
    assert json.loads((runs[other].path / "manifest.json").read_text())["learning_device"][setting] == value
    losses = [pd.read_parquet(runs[s].path / "rounds.parquet")["train_loss"] for s in ("device=cpu", other)]
    assert not losses[0].equals(losses[1])
