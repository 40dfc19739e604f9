"""Helpers for the learning tests: tiny random encoders saved as real model folders, small CSV data."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    BertConfig,
    DistilBertConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
    RobertaConfig,
)

from learning.encoder import MINILM_VOCABULARY, save_random_model

TINY = dict(vocab_size=MINILM_VOCABULARY, max_position_embeddings=128)
CONFIGS = {
    "bert": lambda layers: BertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                                      intermediate_size=64, **TINY),
    "roberta": lambda layers: RobertaConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                                            intermediate_size=64, pad_token_id=0, **TINY),
    "distilbert": lambda layers: DistilBertConfig(dim=32, n_layers=layers, n_heads=2, hidden_dim=64, **TINY),
}
DECODER = dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
               pad_token_id=0, **TINY)
DECODERS = {
    "gpt2": lambda layers: GPT2Config(n_embd=32, n_layer=layers, n_head=2, vocab_size=MINILM_VOCABULARY,
                                      n_positions=128, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                      bos_token_id=None, eos_token_id=None),
    "llama": lambda layers: LlamaConfig(num_hidden_layers=layers, **DECODER),
    # Qwen2's tokenizer class adds its end-of-text token to MiniLM's vocabulary, as token 30522
    "qwen2": lambda layers: Qwen2Config(num_hidden_layers=layers,
                                        **{**DECODER, "vocab_size": MINILM_VOCABULARY + 1}),
    "mistral": lambda layers: MistralConfig(num_hidden_layers=layers, **DECODER),
}
WORDS = {"sport": "match goal team score player", "tech": "chip software phone data code",
         "food": "bread soup cheese apple dinner"}


def tiny_model_dir(folder: Path, family: str = "bert", layers: int = 2) -> Path:
    """A random encoder or decoder of `family` with `layers` layers saved with save_pretrained, with
    MiniLM's (BERT) tokenizer beside it (the vocabularies have the same size)."""
    return save_random_model({**CONFIGS, **DECODERS}[family](layers), folder)


def topic_csv(path: Path, per_class: int = 20) -> Path:
    """Three separable topics: each text draws its words from its class's vocabulary."""
    lines = ["text,label"]
    for label, words in WORDS.items():
        vocab = words.split()
        for i in range(per_class):
            lines.append(" ".join(vocab[(i + j) % len(vocab)] for j in range(3 + i % 4)) + f",{label}")
    path.write_text("\n".join(lines) + "\n")
    return path
