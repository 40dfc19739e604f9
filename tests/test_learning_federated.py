"""Federated rounds on a tiny random encoder: FedAvg, delivery, payload prediction, comparison modes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from test_learning_support import tiny_model_dir, topic_csv

from learning.aggregate import ServerOptimizer, fedavg, server_lr_at
from learning.aggregation import FedProx, FedProxConfig
from learning.config import AggregatorSettings, DataSettings, LoraSettings, ModelSettings, TrainerConfig
from learning.split import count_trainable
from learning.trainer import CentralisedTrainer, SplitFedTrainer, run_rounds

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fed")
    return tiny_model_dir(root / "model"), topic_csv(root / "topics.csv")


def _config(files, server: dict | None = None, **model) -> TrainerConfig:
    folder, csv_file = files
    return TrainerConfig(model=ModelSettings(path=folder, max_length=12, **model),
                         data=DataSettings(dataset=csv_file, devices=4, partition="dirichlet",
                                           dirichlet_alpha=1.0), local_steps=2, batch_size=4, lr=1e-2,
                         **(server or {}))


def test_fedavg_is_the_sample_weighted_mean():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(0.0)}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor(4.0)}
    out = fedavg([a, b], [1, 3])
    torch.testing.assert_close(out["w"], torch.tensor([2.5, 5.0]))
    torch.testing.assert_close(out["b"], torch.tensor(3.0))
    with pytest.raises(ValueError):
        fedavg([a, b], [0, 0])


# FedAvgM with momentum 0 and server lr 1 is FedAvg.
@pytest.mark.parametrize("server", [{"aggregator": AggregatorSettings("fedavg")},
                                    {"aggregator": AggregatorSettings("fedavgm"), "server_momentum": 0.0,
                                     "server_lr": 1.0}])
def test_aggregate_counts_only_delivered_updates(files, server):
    trainer = SplitFedTrainer(_config(files, server))
    before = {**trainer.global_server, **trainer.global_device}
    updates = trainer.local_train([0, 1, 2])

    trainer.aggregate(updates, set())
    after = {**trainer.global_server, **trainer.global_device}
    assert all(torch.equal(after[name], value) for name, value in before.items())

    updates[1].server_state = {k: v + 100 for k, v in updates[1].server_state.items()}  # never delivered
    trainer.aggregate(updates, {0, 2})
    n0, n2 = updates[0].num_samples, updates[2].num_samples
    assert (n0, n2) == (trainer.sample_counts[0], trainer.sample_counts[2]) and n0 != n2
    differ = []
    for glob, part in ((trainer.global_server, "server_state"), (trainer.global_device, "device_state")):
        for name, value in glob.items():
            s0, s2 = getattr(updates[0], part)[name], getattr(updates[2], part)[name]
            torch.testing.assert_close(value, (n0 * s0 + n2 * s2) / (n0 + n2))
            differ.append((part, not torch.equal(s0, s2)))
    assert any(d for part, d in differ if part == "server_state") and all(d for part, d in differ
                                                                          if part == "device_state")
    with pytest.raises(ValueError, match=r"delivered devices \[3\]"):
        trainer.aggregate(updates, {0, 3})
    with pytest.raises(ValueError, match=r"unknown devices \[4\]: this run has devices 0..3"):
        trainer.local_train([0, 4])


def test_inverse_participation_divides_each_weight_by_the_rounds_its_device_delivered(files):
    """Round 1 delivers devices 0 and 2, round 2 devices 0 and 1: in round 2 device 0 has delivered
    twice and device 1 once, so FedAvg weighs them n_0 / 2 and n_1 / 1; the counts are checkpointed."""
    trainer = SplitFedTrainer(_config(files, {"aggregator": AggregatorSettings("fedavg"),
                                              "aggregation_weights": "inverse-participation"}))
    trainer.aggregate(trainer.local_train([0, 1, 2]), {0, 2})
    trainer.aggregate(trainer.local_train([0]), set())
    second = trainer.local_train([0, 1])
    trainer.aggregate(second, {0, 1})
    n0, n1 = trainer.sample_counts[0], trainer.sample_counts[1]
    expected = fedavg([second[0].server_state, second[1].server_state], [n0 / 2, n1 / 1])
    for name, value in trainer.global_server.items():
        torch.testing.assert_close(value, expected[name])
    plain = fedavg([second[0].server_state, second[1].server_state], [n0, n1])
    assert any(not torch.allclose(plain[name], value) for name, value in trainer.global_server.items())
    assert list(trainer.deliveries) == [2, 1, 1, 0]
    fresh = SplitFedTrainer(_config(files, {"aggregator": AggregatorSettings("fedavg"),
                                            "aggregation_weights": "inverse-participation"}))
    fresh.load_state_dict(trainer.state_dict())
    assert list(fresh.deliveries) == [2, 1, 1, 0]


def test_fedavgm_accumulates_momentum_by_hand():
    opt = ServerOptimizer("fedavgm", lr=0.5, momentum=0.9)
    g0 = {"w": torch.tensor([1.0, -2.0])}
    g1 = opt.step(g0, {"w": torch.tensor([3.0, -2.0])})    # m = (2, 0), moves by 0.5 m
    torch.testing.assert_close(g1["w"], torch.tensor([2.0, -2.0]))
    g2 = opt.step(g1, {"w": torch.tensor([2.0, 0.0])})     # m = 0.9 (2, 0) + (0, 2) = (1.8, 2)
    torch.testing.assert_close(g2["w"], torch.tensor([2.9, -1.0]))


def test_fedadam_first_step_moves_each_weight_by_server_lr():
    opt = ServerOptimizer("fedadam", lr=0.01, momentum=0.9)
    out = opt.step({"w": torch.zeros(3)}, {"w": torch.tensor([0.5, -1e-3, 0.0])})
    torch.testing.assert_close(out["w"], torch.tensor([0.01, -0.01, 0.0]), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("server", [{"aggregator": AggregatorSettings("fedavgm")},
                                    {"aggregator": AggregatorSettings("fedadam"), "server_lr": 1e-2}])
def test_server_optimizer_ignores_undelivered_updates(files, server):
    """Nothing delivered changes nothing, not even the optimiser state; undelivered states never count."""
    finals = []
    for idle in (False, True):
        trainer = SplitFedTrainer(_config(files, server))  # seeds torch, so both runs draw the same dropout
        start = {**trainer.global_server, **trainer.global_device}
        updates = trainer.local_train([0, 1, 2])
        if idle:
            trainer.aggregate(updates, set())
            assert all(torch.equal(v, start[k]) for k, v in {**trainer.global_server,
                                                             **trainer.global_device}.items())
            updates[1].server_state = {k: v + 100 for k, v in updates[1].server_state.items()}
        trainer.aggregate(updates, {0, 2})
        trainer.aggregate(trainer.local_train([0, 1]), {0, 1})
        finals.append({**trainer.global_server, **trainer.global_device})
    assert any(not torch.equal(finals[0][k], start[k]) for k in start)
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in start)


def test_server_optimizer_settings_are_checked():
    for bad in ({"server_lr": 0.0}, {"server_momentum": 1.0},
                {"server_beta2": 1.0}, {"server_beta2": 0.0}, {"server_lr_decay": "step"},
                {"rounds_hint": 0}, {"aggregation_weights": "uniform"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainerConfig(**bad)
    with pytest.raises(ValueError, match="aggregator 'fedsgd' is neither built in"):
        AggregatorSettings("fedsgd")
    with pytest.raises(ValueError, match="decay must be one of"):
        ServerOptimizer("fedadam", lr=0.1, momentum=0.9, decay="exp", horizon=3)
    with pytest.raises(ValueError, match="horizon >= 1"):
        ServerOptimizer("fedadam", lr=0.1, momentum=0.9, decay="cosine", horizon=0)


@pytest.mark.parametrize("decay", ["cosine", "linear"])
def test_server_lr_decays_from_server_lr_to_zero_over_the_horizon(decay):
    lrs = [server_lr_at(0.1, step, decay, horizon=10) for step in range(13)]
    assert lrs[0] == 0.1
    assert all(a > b for a, b in zip(lrs[:10], lrs[1:11], strict=True))  # strictly down to the horizon
    assert lrs[9] > 0 and lrs[10:] == [0.0] * 3                         # last step still moves
    halfway = server_lr_at(0.1, 5, decay, horizon=10)
    assert halfway == pytest.approx(0.05)                                 # both are at lr/2 halfway
    # No horizon, or constant: the server lr never changes.
    assert {server_lr_at(0.1, s, decay, None) for s in range(50)} == {0.1}
    assert {server_lr_at(0.1, s, "constant", 10) for s in range(50)} == {0.1}


def test_fedavgm_steps_follow_the_schedule_by_hand():
    opt = ServerOptimizer("fedavgm", lr=1.0, momentum=0.0, decay="linear", horizon=4)
    g = {"w": torch.zeros(1)}
    moves = []
    for _ in range(5):
        assert opt.current_lr == server_lr_at(1.0, opt.steps, "linear", 4)
        new = opt.step(g, {"w": g["w"] + 1.0})   # Δ = 1 each time, so the move is the step's η
        moves.append(float(new["w"] - g["w"]))
        g = new
    assert moves == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_undelivered_rounds_do_not_advance_the_server_lr(files):
    """The schedule counts server steps: a round with nothing delivered leaves η where it was."""
    trainer = SplitFedTrainer(_config(files, {"server_lr_decay": "cosine", "rounds_hint": 4}))
    opts = trainer.aggregator.optimizers.values()
    assert all(opt.current_lr == trainer.config.server_lr for opt in opts)
    updates = trainer.local_train([0, 1])
    trainer.aggregate(updates, set())
    assert all(opt.current_lr == trainer.config.server_lr for opt in opts)
    trainer.aggregate(updates, {0, 1})
    assert all(opt.current_lr == server_lr_at(trainer.config.server_lr, 1, "cosine", 4) for opt in opts)


def test_constant_schedule_is_the_default_without_a_horizon(files):
    """Without `rounds_hint` the default decay keeps η constant: same run as `server_lr_decay="constant"`."""
    finals = []
    for server in ({}, {"server_lr_decay": "constant", "rounds_hint": 2}):
        trainer = SplitFedTrainer(_config(files, server))
        run_rounds(trainer, 2)
        finals.append({**trainer.global_server, **trainer.global_device})
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])


def test_a_trainer_restored_from_its_state_trains_as_the_original_goes_on(files):
    """What a resumed run relies on: globals, FedAdam moments, batch samplers and torch's generator
    (LoRA dropout is on) all come back, so the next rounds give bit-identical models."""
    config = _config(files, {"server_lr_decay": "cosine", "rounds_hint": 4})
    original = SplitFedTrainer(config)
    run_rounds(original, 2)
    state = original.state_dict()
    finals = []
    for make in (lambda: original, lambda: SplitFedTrainer(config), lambda: SplitFedTrainer(config)):
        trainer = make()  # one after the other: torch's generator is global to the process
        if len(finals) == 1:
            trainer.load_state_dict(state)
        run_rounds(trainer, 2)
        finals.append({**trainer.global_server, **trainer.global_device})
    first, again, fresh = finals
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], fresh[k]) for k in first)
    old = {**state, "optimizers": state["aggregator"]}  # checkpoints from before aggregators by name
    del old["aggregator"]
    restored = SplitFedTrainer(config)
    restored.load_state_dict(old)
    assert restored.aggregator.state_dict()["server"]["steps"] == 2


@pytest.mark.parametrize(("mode", "wire", "embeddings"), [
    ("split", "fp32", "frozen"), ("split", "fp16", "lora"), ("split", "bf16", "frozen"),
    ("unsplit", "fp32", "frozen"), ("unsplit", "fp16", "lora")])
def test_measured_payload_equals_prediction(files, mode, wire, embeddings):
    config = _config(files, wire_dtype=wire, embeddings=embeddings)
    trainer = SplitFedTrainer(TrainerConfig(model=config.model, data=config.data, mode=mode, batch_size=4))
    update = trainer.local_train([1])[1]
    assert update.payload == trainer.payload_bytes(1)
    q = 4 if wire == "fp32" else 2
    device_params = count_trainable(trainer.model.device)
    server_params = count_trainable(trainer.model.server)
    if mode == "unsplit":
        assert update.payload.uplink_bytes == (device_params + server_params) * q
    else:
        assert update.payload.uplink_bytes == 2 * (2 * 4 * 12 * 32 * q + 4 * 12) + device_params * q


@pytest.mark.parametrize(("steps", "embeddings", "wire"), [
    (1, "frozen", "fp32"), (2, "lora", "bf16"), (4, "frozen", "fp16"), (4, "lora", "fp32")])
def test_measured_messages_equal_the_predicted_protocol(files, steps, embeddings, wire):
    """Message by message, in order, the real tensors of a round match the predicted protocol: the
    global device part down, per step activations (+ mask) up, encoder output down, its gradient up
    (and the activations' gradient down when the embeddings train), the device part up."""
    config = _config(files, wire_dtype=wire, embeddings=embeddings)
    trainer = SplitFedTrainer(TrainerConfig(model=config.model, data=config.data, local_steps=steps,
                                            batch_size=4))
    measured = trainer.local_train([1])[1].messages
    assert measured == trainer.messages(1)
    per_step = ["activations", "encoder_output", "encoder_output_grad"]
    per_step += ["activations_grad"] if embeddings == "lora" else []
    assert [m.name for m in measured] == ["device_params", *per_step * steps, "device_params"]
    q = 4 if wire == "fp32" else 2
    activations = 4 * 12 * 32 * q  # batch 4, 12 tokens, hidden 32, in the wire dtype
    assert [m.nbytes for m in measured[1:4]] == [activations + 4 * 12, activations, activations]


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_server_keeps_only_lora_tensors_per_device(files, tmp_path, family):
    if family == "bert":
        trainer = SplitFedTrainer(_config(files))
        projections = [(32, 32), (32, 32)]
    else:  # three layers, the first on the device; the value projection is 32 → 2 key/value heads of 8
        folder = tiny_model_dir(tmp_path / family, family, layers=3)
        trainer = SplitFedTrainer(_config((folder, files[1]), device_layers=1))
        projections = [(32, 32), (32, 16)]
    updates = trainer.local_train(range(4))
    # LoRA r = 8 on query and value of each of the two server layers: 8·(in + out) fp32 values each
    lora_bytes = 2 * sum(8 * (n_in + n_out) for n_in, n_out in projections) * 4
    assert all(sum(t.nbytes for t in u.server_state.values()) == lora_bytes for u in updates.values())
    assert all(all("lora_" in name for name in u.server_state) for u in updates.values())


def test_split_and_unsplit_rounds_learn_the_same(files):
    """Same seeds, dropout off: the split and unsplit federated runs give the same global model."""
    results = []
    for mode in ("split", "unsplit"):
        config = _config(files)
        trainer = SplitFedTrainer(TrainerConfig(model=config.model, data=config.data, mode=mode,
                                                local_steps=2, batch_size=4, lr=1e-2,
                                                lora=LoraSettings(lora_dropout=0.0)))
        for module in (*trainer.model.device.modules(), *trainer.model.server.modules()):
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        history = run_rounds(trainer, rounds=2)
        results.append((trainer.global_server, history[-1]))
    (split_state, split_metrics), (whole_state, whole_metrics) = results
    for name in split_state:
        torch.testing.assert_close(split_state[name], whole_state[name], atol=1e-5, rtol=1e-4)
    assert split_metrics["accuracy"] == whole_metrics["accuracy"]


def test_centralised_trainer_learns_the_topics(files):
    trainer = CentralisedTrainer(_config(files))
    first = trainer.evaluate()
    trainer.train(steps=30)
    after = trainer.evaluate()
    assert after["loss"] < first["loss"] and after["accuracy"] > 0.8
    assert set(after) == {"accuracy", "macro_f1", "loss", "samples", "val_accuracy", "val_macro_f1",
                          "val_loss", "val_samples"}
    assert after["samples"] > 0 and after["val_samples"] > 0  # the test and validation sets both evaluated


def test_evaluation_cut_to_the_texts_lengths_gives_the_padded_logits(files):
    trainer = CentralisedTrainer(_config(files))
    trainer.train(steps=5)
    trainer.model.train(False)
    data = trainer.test_data
    with torch.no_grad():
        padded = trainer.model.logits(data.input_ids, data.attention_mask)  # every text at max_length
        cut = torch.empty_like(padded)
        widths = []
        for index, batch in data.by_length(4):
            cut[index] = trainer.model.logits(batch.input_ids, batch.attention_mask)
            widths.append(batch.input_ids.shape[1])
    assert min(widths) < data.input_ids.shape[1]  # some batches were cut, so the comparison bites
    torch.testing.assert_close(cut, padded, rtol=0, atol=1e-5)
    labels = data.labels.numpy()
    assert trainer.evaluate()["accuracy"] == float((padded.argmax(dim=1).numpy() == labels).mean())


def _distance_to_global(trainer: SplitFedTrainer, updates: dict) -> float:
    """Mean over devices of ‖w_k − w_global‖ over both parts' trainable tensors."""
    total = 0.0
    for update in updates.values():
        squares = sum(((update.server_state[n] - v) ** 2).sum() for n, v in trainer.global_server.items())
        squares += sum(((update.device_state[n] - v) ** 2).sum() for n, v in trainer.global_device.items())
        total += float(squares) ** 0.5
    return total / len(updates)


def test_fedprox_with_mu_zero_is_fedavg_exactly(files):
    finals = []
    for aggregator in (AggregatorSettings("fedavg"), AggregatorSettings("fedprox", FedProxConfig(mu=0.0))):
        trainer = SplitFedTrainer(_config(files, {"aggregator": aggregator}))
        for _ in range(2):
            trainer.aggregate(trainer.local_train([0, 1, 2, 3]), {0, 1, 2, 3})
        finals.append({**trainer.global_server, **trainer.global_device})
    assert all(torch.equal(finals[0][name], finals[1][name]) for name in finals[0])


def test_fedprox_keeps_local_models_closer_to_the_global_one(files):
    """The proximal term pulls each device's model back towards the round's global one: the
    measured distance shrinks as μ grows."""
    distances = []
    for mu in (0.0, 1.0, 10.0):
        prox = AggregatorSettings("fedprox", FedProxConfig(mu))
        trainer = SplitFedTrainer(replace(_config(files, {"aggregator": prox}), local_steps=4))
        distances.append(_distance_to_global(trainer, trainer.local_train([0, 1, 2, 3])))
    assert distances[0] > distances[1] > distances[2] and distances[2] < 0.7 * distances[0], distances


def test_the_proximal_terms_gradient_is_mu_times_the_distance():
    """∂/∂w of μ/2·‖w − w_g‖² is μ·(w − w_g), against autograd through the hook."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    start = {"w": torch.tensor([0.0, -1.0, 0.5])}
    FedProx(FedProxConfig(mu=0.3), TrainerConfig()).local_term("device", {"w": w}, start).backward()
    torch.testing.assert_close(w.grad, 0.3 * torch.tensor([1.0, -1.0, 0.0]))
    with pytest.raises(ValueError, match="mu=-1"):
        FedProxConfig(mu=-1)
