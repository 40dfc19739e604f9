"""The split step: same gradients as the unsplit model, payloads equal to the tensors that crossed."""

from __future__ import annotations

import pytest
import torch
from test_learning_support import CONFIGS, DECODERS, tiny_model_dir

from learning.config import LoraSettings, ModelSettings
from learning.data import Batch
from learning.encoder import Encoder, load_encoder
from learning.payload import DOWN, UP, Link
from learning.split import SplitModel, build_split_model, count_trainable
from learning.step import split_step, unsplit_step

torch.set_num_threads(1)
TEXTS = ["The central bank raised interest rates again.", "A late goal won the cup final",
         "New phone chips save battery", "Parliament debates the budget bill tonight, at length"]


def _split(encoder: Encoder, embeddings: str = "lora") -> SplitModel:
    """Dropout off everywhere; LoRA B and the head made non-zero so every trainable tensor gets a gradient."""
    model = build_split_model(encoder, ModelSettings(embeddings=embeddings),
                              LoraSettings(lora_dropout=0.0), num_labels=3)
    model.train(False)
    with torch.no_grad():
        for name, param in [*model.device.named_parameters(), *model.server.named_parameters()]:
            if param.requires_grad and ("lora_B" in name or "lora_embedding" in name or "head" in name):
                param.normal_(0, 0.02)
    return model


def _batch(encoder: Encoder, length: int) -> Batch:
    tokens = encoder.tokenizer(TEXTS, padding="max_length", truncation=True, max_length=length,
                               return_tensors="pt")
    return Batch(tokens["input_ids"], tokens["attention_mask"].bool(), torch.tensor([0, 1, 2, 0]))


def _grads(model: SplitModel) -> dict[str, torch.Tensor]:
    named = [*model.device.named_parameters(prefix="device"), *model.server.named_parameters(prefix="server")]
    grads = {name: p.grad.clone() for name, p in named if p.requires_grad}
    for _, p in named:
        p.grad = None
    return grads


def _assert_same_forward(encoder: Encoder, model: SplitModel, batch: Batch) -> None:
    """The separately built 4-D mask gives what the whole model's forward computes, padding included."""
    with torch.no_grad():
        split = model.server(model.device.embed(batch.input_ids, batch.attention_mask), batch.attention_mask)
        whole = encoder.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    torch.testing.assert_close(split, whole.last_hidden_state, atol=1e-6, rtol=0)


def _assert_same_gradients(model: SplitModel, batch: Batch) -> Link:
    link = Link()
    split_step(model, batch, link)
    split = _grads(model)
    unsplit_step(model, batch)
    whole = _grads(model)
    assert split.keys() == whole.keys()
    assert any("lora_A" in name for name in split) and any("head" in name for name in split)
    for name in split:
        assert split[name].abs().sum() > 0, name
        torch.testing.assert_close(split[name], whole[name], atol=1e-6, rtol=0, msg=name)
    return link


def test_split_gradients_equal_unsplit_on_real_minilm():
    encoder = load_encoder()  # the packaged all-MiniLM-L6-v2, checksum verified
    model = _split(encoder)
    batch = _batch(encoder, length=24)
    link = _assert_same_gradients(model, batch)

    s, length, d = 4, 24, 384
    expected = {("activations", UP): s * length * d * 4, ("attention_mask", UP): s * length,
                ("encoder_output", DOWN): s * length * d * 4, ("encoder_output_grad", UP): s * length * d * 4,
                ("activations_grad", DOWN): s * length * d * 4}
    assert {(t.name, t.direction): t.nbytes for t in link.transfers} == expected
    payload = link.payload()
    assert payload.uplink_bytes == sum(n for (_, side), n in expected.items() if side == UP)
    assert payload.downlink_bytes == sum(n for (_, side), n in expected.items() if side == DOWN)
    assert count_trainable(model.server) == 73_728


def test_server_part_reproduces_the_whole_model_forward_on_real_minilm():
    encoder = load_encoder()
    model = _split(encoder, embeddings="frozen")
    _assert_same_forward(encoder, model, _batch(encoder, length=24))


@pytest.mark.parametrize("family", sorted(CONFIGS) + sorted(DECODERS))
def test_every_family_splits_with_equal_gradients(tmp_path, family):
    encoder = load_encoder(tiny_model_dir(tmp_path, family))
    model = _split(encoder)
    batch = _batch(encoder, length=16)
    _assert_same_forward(encoder, model, batch)
    _assert_same_gradients(model, batch)


@pytest.mark.parametrize(("wire", "size"), [("fp16", 2), ("bf16", 2), ("fp32", 4)])
def test_wire_dtype_sets_the_bytes_and_the_received_values(tmp_path, wire, size):
    encoder = load_encoder(tiny_model_dir(tmp_path))
    model = _split(encoder, embeddings="frozen")
    batch = _batch(encoder, length=16)
    dtype = ModelSettings(wire_dtype=wire).torch_wire_dtype
    link = Link(dtype)
    x = torch.randn(4, 16, 32)
    received = link.send("x", UP, x, requires_grad=True)
    assert received.dtype == torch.float32 and received.requires_grad and received.grad_fn is None
    assert torch.equal(received, x.to(dtype).float())
    assert link.transfers[-1].nbytes == x.numel() * size

    link = Link(dtype)
    split_step(model, batch, link)
    sizes = {t.name: t.nbytes for t in link.transfers}
    assert sizes == {"activations": 4 * 16 * 32 * size, "attention_mask": 4 * 16,
                     "encoder_output": 4 * 16 * 32 * size, "encoder_output_grad": 4 * 16 * 32 * size}


# the LoRA targets' shapes in the tiny decoders: GPT-2's fused query/key/value (32 → 3·32); Llama,
# Qwen2 and Mistral's query (32 → 32) and value projections (32 → 2 key/value heads of 8)
PROJECTIONS = {"gpt2": [(32, 96)], **{name: [(32, 32), (32, 16)] for name in ("llama", "qwen2", "mistral")}}


def _stock_gradients(encoder: Encoder, model: SplitModel, batch: Batch) -> dict[str, torch.Tensor]:
    """The loss through the stock Hugging Face model's own forward (LoRA sits inside its layers), then
    the split model's head: the reference the split step must reproduce."""
    hidden = encoder.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    logits = model.device.head(hidden, batch.attention_mask)
    torch.nn.functional.cross_entropy(logits, batch.labels).backward()
    return _grads(model)


@pytest.mark.parametrize("cut", [0, 2])
@pytest.mark.parametrize("family", sorted(CONFIGS) + sorted(DECODERS))
def test_a_cut_after_any_layer_keeps_the_stock_models_gradients(tmp_path, family, cut):
    encoder = load_encoder(tiny_model_dir(tmp_path, family, layers=4))
    model = build_split_model(encoder, ModelSettings(device_layers=cut), LoraSettings(lora_dropout=0.0), 3)
    model.train(False)
    with torch.no_grad():  # LoRA B and the head non-zero, so every trainable tensor gets a gradient
        for name, param in [*model.device.named_parameters(), *model.server.named_parameters()]:
            if param.requires_grad and ("lora_B" in name or "head" in name):
                param.normal_(0, 0.02)
    batch = _batch(encoder, length=16)
    reference = _stock_gradients(encoder, model, batch)
    link = Link()
    split_step(model, batch, link)
    split = _grads(model)
    assert split.keys() == reference.keys()
    projections = PROJECTIONS.get(family, [(32, 32), (32, 32)])  # (in, out) of each LoRA target
    assert sum("lora_A" in name for name in split if name.startswith("device.")) == len(projections) * cut
    for name in split:
        assert split[name].abs().sum() > 0, name
        torch.testing.assert_close(split[name], reference[name], atol=1e-6, rtol=0, msg=name)
    # LoRA r = 8 on each target: A is 8 × in, B out × 8
    per_layer = sum(8 * (n_in + n_out) for n_in, n_out in projections)
    assert count_trainable(model.device) == cut * per_layer + 32 * 3 + 3
    assert count_trainable(model.server) == (4 - cut) * per_layer
    s, d = 4, 32
    sent = {(t.name, t.direction): t.nbytes for t in link.transfers}
    expected = {("activations", UP): s * 16 * d * 4, ("attention_mask", UP): s * 16,
                ("encoder_output", DOWN): s * 16 * d * 4, ("encoder_output_grad", UP): s * 16 * d * 4}
    if cut:  # the device's layers train, so the activations' gradient comes back down
        expected[("activations_grad", DOWN)] = s * 16 * d * 4
    assert sent == expected


def test_the_cut_moves_layer_flops_from_the_server_to_the_device(tmp_path):
    from learning.flops import step_flops_per_sample

    folder = tiny_model_dir(tmp_path, layers=4)
    flops = {}
    for cut in (0, 1, 3):
        model = build_split_model(load_encoder(folder), ModelSettings(device_layers=cut), LoraSettings(), 3)
        server = step_flops_per_sample(model.server, 32, 16, activations_train=cut > 0)
        device = step_flops_per_sample(model.device.blocks, 32, 16, False) if cut else None
        flops[cut] = server, device
    whole = flops[0][0].forward
    for cut in (1, 3):
        server, device = flops[cut]
        # forward passes add up layer by layer; each layer costs the same
        assert device.forward + server.forward == pytest.approx(whole, rel=1e-9)
        assert device.forward == pytest.approx(whole * cut / 4, rel=1e-9)


@pytest.mark.parametrize("cut", [4, 9])
def test_a_cut_that_leaves_the_server_nothing_is_refused(tmp_path, cut):
    encoder = load_encoder(tiny_model_dir(tmp_path, layers=4))
    refused = rf"device_layers={cut} leaves no layer on the server: .* has 4 layers, so give 0 to 3"
    with pytest.raises(ValueError, match=refused):
        build_split_model(encoder, ModelSettings(device_layers=cut), LoraSettings(), 3)
    with pytest.raises(ValueError, match="device_layers must be >= 0"):
        ModelSettings(device_layers=-1)


def test_a_decoders_head_reads_the_last_real_token():
    from learning.split import LastTokenHead

    head = LastTokenHead(hidden_size=2, num_labels=2)
    with torch.no_grad():
        head.classifier.weight.copy_(torch.eye(2))
    hidden = torch.arange(12.0).reshape(2, 3, 2)  # text 0: three real tokens; text 1: two, then padding
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    torch.testing.assert_close(head(hidden, mask), torch.tensor([[4.0, 5.0], [8.0, 9.0]]))
