"""The causal-LM task: its files, its targets, the split step against transformers' own causal-LM
model and loss, its perplexity, the device's LM-head FLOPs, and its clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_learning_split import _grads
from test_learning_support import DECODERS, tiny_model_dir
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForCausalLM
from transformers.loss.loss_utils import ForCausalLMLoss

from cosim.experiment.protocol import DeviceFlops
from learning import trainer as trainer_module
from learning.config import DataSettings, LoraSettings, ModelSettings, TrainerConfig
from learning.data import IGNORE_INDEX, Batch, Encoded, TextDataset, encode_lm, load_dataset, load_lm_table
from learning.encoder import load_encoder
from learning.payload import DOWN, UP, Link
from learning.split import LmHead, build_split_model
from learning.step import split_step
from learning.trainer import SplitFedTrainer

torch.set_num_threads(1)
TEXTS = ["the match ended with a late goal", "new phone chips save battery life",
         "bread soup and cheese for dinner tonight", "the team scored"]


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def test_plain_instruction_and_grouped_rows_load(tmp_path):
    rows = [{"text": "a goal"}, {"prompt": "Q: food? A:", "response": " soup", "label": "food"},
            {"text": "chips", "label": "tech"}]
    path = _jsonl(tmp_path / "lm.jsonl", rows)
    data = load_lm_table(path)
    assert data.texts == ["a goal", " soup", "chips"]
    assert data.prompts == ["", "Q: food? A:", ""]
    assert data.label_names == ("all", "food", "tech")
    assert data.labels.tolist() == [0, 1, 2]
    csv = tmp_path / "plain.csv"
    csv.write_text("text\nfirst text\nsecond text\nfirst text\n")
    plain = load_dataset(csv, language_model=True)
    assert plain.texts == ["first text", "second text"] and plain.prompts is None  # deduplicated
    assert plain.label_names == ("all",)


@pytest.mark.parametrize(("row", "message"), [
    ({"body": "x"}, r"lm.jsonl:1: a language-model row needs a 'text' field, or 'prompt' and 'response'"),
    ({"prompt": "x"}, r"lm.jsonl:1: an instruction row needs both prompt and response; missing "
                      r"\['response'\]"),
    ({"text": "  "}, r"lm.jsonl:1: column 'text' must be non-empty text"),
])
def test_a_malformed_language_model_row_names_its_line(tmp_path, row, message):
    with pytest.raises(ValueError, match=message):
        load_lm_table(_jsonl(tmp_path / "lm.jsonl", [row]))


def test_targets_are_the_response_tokens_and_never_padding_or_prompt():
    tokenizer = load_encoder().tokenizer  # BERT's: [CLS] ... [SEP], no end-of-sequence token
    data = TextDataset([" team score", "goal match"], np.zeros(2, np.int64), ("all",),
                       ["question : goal ?", ""])
    encoded = encode_lm(data, tokenizer, max_length=12)
    ids = tokenizer.convert_tokens_to_ids
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    # [CLS] question : goal ? | team score [SEP] then padding: only the response and [SEP] are targets
    prompt, response = ids(["question", ":", "goal", "?"]), ids(["team", "score"])
    assert encoded.input_ids[0, :8].tolist() == [cls, *prompt, *response, sep]
    assert encoded.labels[0].tolist() == [IGNORE_INDEX] * 5 + [*response, sep] + [IGNORE_INDEX] * 4
    # plain text: every real token is a target
    assert encoded.labels[1].tolist() == [cls, *ids(["goal", "match"]), sep] + [IGNORE_INDEX] * 8


def _lm_split(folder, cut: int):
    encoder = load_encoder(folder, lm_head=True)
    model = build_split_model(encoder, ModelSettings(device_layers=cut), LoraSettings(lora_dropout=0.0), 0)
    model.train(False)
    return encoder, model


def _lm_batch(tokenizer, length: int = 16) -> Batch:
    data = TextDataset(TEXTS, np.zeros(len(TEXTS), np.int64), ("all",))
    return encode_lm(data, tokenizer, length).batch(np.arange(len(TEXTS)))


@pytest.mark.parametrize("family", sorted(DECODERS))
def test_the_split_loss_at_the_start_is_transformers_causal_lm_loss(tmp_path, family):
    """LoRA starts at zero, so the split model is the stock model: its loss must be the one
    `AutoModelForCausalLM(labels=...)` computes, at a cut after the embeddings and after two layers."""
    folder = tiny_model_dir(tmp_path, family, layers=4)
    stock = AutoModelForCausalLM.from_pretrained(folder).eval()
    for cut in (0, 2):
        encoder, model = _lm_split(folder, cut)
        batch = _lm_batch(encoder.tokenizer)
        with torch.no_grad():
            expected = stock(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                             labels=batch.labels).loss
        loss = split_step(model, batch, Link())
        assert loss == pytest.approx(float(expected), rel=1e-6)  # float32: 1e-6 of a loss near ln V


@pytest.mark.parametrize("cut", [0, 2])
@pytest.mark.parametrize("family", sorted(DECODERS))
def test_split_gradients_equal_transformers_loss_through_the_whole_model(tmp_path, family, cut):
    """With LoRA B non-zero: the gradients of the split step equal those of the whole base model's
    forward (LoRA inside its layers), its LM head and transformers' `ForCausalLMLoss`; the bytes sent
    are the tensors' (no parameters cross when the device trains nothing)."""
    encoder, model = _lm_split(tiny_model_dir(tmp_path, family, layers=4), cut)
    with torch.no_grad():
        for name, param in [*model.device.named_parameters(), *model.server.named_parameters()]:
            if param.requires_grad and "lora_B" in name:
                param.normal_(0, 0.02)
    assert not any(p.requires_grad for p in encoder.lm_head.parameters())
    batch = _lm_batch(encoder.tokenizer)
    hidden = encoder.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    logits = encoder.lm_head(hidden)
    ForCausalLMLoss(logits, batch.labels, vocab_size=logits.shape[-1]).backward()
    reference = _grads(model)
    link = Link()
    split_step(model, batch, link)
    split = _grads(model)
    assert split.keys() == reference.keys()
    assert sum(name.startswith("device.") for name in split) == (4 * cut if family != "gpt2" else 2 * cut)
    for name in split:
        assert split[name].abs().sum() > 0, name
        torch.testing.assert_close(split[name], reference[name], atol=1e-6, rtol=0, msg=name)
    s, length, d = len(TEXTS), 16, 32
    sent = {(t.name, t.direction): t.nbytes for t in link.transfers}
    expected = {("activations", UP): s * length * d * 4, ("attention_mask", UP): s * length,
                ("encoder_output", DOWN): s * length * d * 4, ("encoder_output_grad", UP): s * length * d * 4}
    if cut:  # the device's layers train: their gradient comes down
        expected[("activations_grad", DOWN)] = s * length * d * 4
    assert sent == expected


def _lm_trainer(tmp_path, family: str = "llama", cut: int = 0, **data) -> SplitFedTrainer:
    rows = [{"text": f"{TEXTS[i % 4]} number {i}"} for i in range(30)]
    rows += [{"prompt": f"question {i} : what is for dinner ?", "response": " bread and soup"}
             for i in range(30)]
    path = _jsonl(tmp_path / "lm.jsonl", rows)
    return SplitFedTrainer(TrainerConfig(
        task="causal-lm", model=ModelSettings(path=tiny_model_dir(tmp_path / "model", family, layers=2),
                                              max_length=24, device_layers=cut),
        data=DataSettings(dataset=path, devices=3, partition="iid", **data), eval_batch_size=5))


@pytest.mark.parametrize("logits_of_texts", [None, 2], ids=["eval_batch_size", "logits-budget"])
def test_perplexity_is_the_exponential_of_the_token_weighted_loss_of_the_stock_model(tmp_path, monkeypatch,
                                                                                     logits_of_texts):
    """Before training, the split model is the stock one: summing `AutoModelForCausalLM`'s loss text by
    text, weighted by each text's target tokens, gives the test set's mean loss and its perplexity;
    also when the logits' memory bound, not `eval_batch_size`, sets how many texts a batch holds."""
    trainer = _lm_trainer(tmp_path)
    sizes = []
    by_length = Encoded.by_length
    monkeypatch.setattr(Encoded, "by_length", lambda self, size: sizes.append(size) or by_length(self, size))
    if logits_of_texts is not None:
        per_text = 4 * trainer.test_data.input_ids.shape[1] * trainer.lm_vocab
        monkeypatch.setattr(trainer_module, "EVAL_LOGITS_BYTES", logits_of_texts * per_text + per_text - 1)
    stock = AutoModelForCausalLM.from_pretrained(tmp_path / "model").eval()
    data = trainer.test_data
    total, tokens = 0.0, 0
    with torch.no_grad():
        for i in range(len(data)):
            batch = data.batch(np.array([i]))
            targets = int((batch.labels[:, 1:] != IGNORE_INDEX).sum())
            total += float(stock(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                 labels=batch.labels).loss) * targets
            tokens += targets
    metrics = trainer.evaluate()
    assert metrics["tokens"] == tokens > len(data)
    assert metrics["loss"] == pytest.approx(total / tokens, abs=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(total / tokens), rel=1e-5)
    assert "accuracy" not in metrics and metrics["val_perplexity"] > 1
    assert set(sizes) == {logits_of_texts or 5}  # eval_batch_size=5


def test_a_round_lowers_the_loss_and_its_messages_are_the_predicted_ones(tmp_path):
    trainer = _lm_trainer(tmp_path, cut=1)
    before = trainer.evaluate()["loss"]
    for _ in range(3):
        updates = trainer.local_train(range(3))
        trainer.aggregate(updates, set(updates))
    for k, update in updates.items():
        assert update.messages == trainer.messages(k)
    assert trainer.evaluate()["loss"] < before


def test_the_device_lm_head_flops_are_counted_as_on_the_real_module(tmp_path):
    encoder = load_encoder(tiny_model_dir(tmp_path, "llama", layers=2), lm_head=True)
    seq_len, hidden, vocab = 16, 32, encoder.lm_head.weight.shape[0]
    head = LmHead(encoder.lm_head)
    head.requires_grad_(False)
    states = torch.zeros(1, seq_len, hidden, requires_grad=True)
    with FlopCounterMode(display=False) as forward:
        out = head(states, torch.ones(1, seq_len))
    with FlopCounterMode(display=False) as backward:
        out.backward(torch.ones_like(out))
    flops = DeviceFlops.of(seq_len, hidden, labels=1, lm_vocab=vocab)
    counted = forward.get_total_flops() + backward.get_total_flops()
    assert flops.head == counted == 4 * seq_len * hidden * vocab


def test_the_causal_lm_task_refuses_an_encoder_by_name(tmp_path):
    with pytest.raises(ValueError, match="the causal-lm task needs a decoder .* holds an encoder: set "
                                         "learning.model.path to a decoder folder"):
        load_encoder(tiny_model_dir(tmp_path, "bert"), lm_head=True)
    with pytest.raises(ValueError, match="task must be one of"):
        TrainerConfig(task="translation")
