"""Loading encoders offline: the pinned MiniLM, any local encoder folder, clear errors otherwise."""

from __future__ import annotations

import shutil

import pytest
from test_learning_support import tiny_model_dir
from transformers import T5Config, T5Model

from learning.config import DataSettings, LoraSettings, ModelSettings, TrainerConfig
from learning.encoder import MINILM_SHA256, WEIGHTS_FILE, default_model_path, load_encoder, sha256_of


def test_pinned_digest_is_the_packaged_file():
    assert MINILM_SHA256.startswith("53aa5117")
    assert sha256_of(default_model_path() / WEIGHTS_FILE) == MINILM_SHA256


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope'} does not exist"):
        load_encoder(tmp_path / "nope")


def test_folder_without_config(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path} is not a Hugging Face model folder"):
        load_encoder(tmp_path)


def test_a_model_of_an_unsupported_family_is_named_with_the_supported_ones(tmp_path):
    config = T5Config(num_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32, vocab_size=50)
    T5Model(config).save_pretrained(tmp_path)
    listed = "bert, roberta, xlm-roberta, distilbert, gpt2, llama, qwen2, mistral"
    refused = rf"{tmp_path} holds a 't5' model, not a supported family \({listed}\)"
    with pytest.raises(ValueError, match=refused):
        load_encoder(tmp_path)


def test_unreadable_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        load_encoder(tmp_path)


def test_bad_checksum_names_the_file(tmp_path):
    folder = tiny_model_dir(tmp_path / "m")
    with pytest.raises(ValueError, match=rf"{folder / WEIGHTS_FILE}: sha256 [0-9a-f]{{64}} does not match"):
        load_encoder(folder, sha256="0" * 64)
    assert load_encoder(folder, sha256=sha256_of(folder / WEIGHTS_FILE)).hidden_size == 32


def test_checksum_without_weights_file(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir(tmp_path / "src"), folder)
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=f"{folder / WEIGHTS_FILE} is missing"):
        load_encoder(folder, sha256="0" * 64)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: LoraSettings(r=0), "rank r must be >= 1"),
    (lambda: LoraSettings(lora_dropout=1.0), "lora_dropout"),
    (lambda: LoraSettings(target_modules=()), "target_modules"),
    (lambda: ModelSettings(wire_dtype="fp8"), "wire_dtype must be one of"),
    (lambda: ModelSettings(embeddings="full"), "embeddings must be one of"),
    (lambda: ModelSettings(sha256="53aa5117"), "sha256 must be 64"),
    (lambda: DataSettings(partition="zipf"), "partition must be one of"),
    (lambda: DataSettings(dirichlet_alpha=0), "dirichlet_alpha"),
    (lambda: DataSettings(test_fraction=1.0), "test_fraction"),
    (lambda: TrainerConfig(mode="async"), "mode must be one of"),
    (lambda: TrainerConfig(local_steps=0), "local_steps"),
])
def test_settings_are_validated_when_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()
