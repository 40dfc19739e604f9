"""The model cut in two: the device keeps embeddings (and the first `device_layers` layers) + task head,
the server runs the rest of the LoRA-wrapped encoder.

Both parts reference the modules of one loaded encoder, so the frozen base exists once in memory;
only the small trainable tensors differ between devices (see `trainable_state` / `load_trainable`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model, inject_adapter_in_model
from torch import nn
from transformers import PretrainedConfig
from transformers.masking_utils import create_bidirectional_mask

from learning.accelerator import autocast
from learning.config import LoraSettings, ModelSettings
from learning.data import IGNORE_INDEX
from learning.encoder import Encoder


class MeanPoolHead(nn.Module):
    """Task head: mean of the encoder output over real tokens, then a linear classifier.

    The classifier starts at zero: Adam moves each weight by about `lr` per step, so a random start
    (±1/sqrt(d)) would take dozens of rounds to outweigh, while from zero the first step already points
    the right way.
    """

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        weights = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
        pooled = (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled))

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the batch's texts."""
        return F.cross_entropy(logits.float(), labels)


class LmHead(nn.Module):
    """Task head of the causal-LM task: the decoder's own pre-trained LM head (frozen, tied or not to
    the word embeddings) on every position, so the device turns the server's output into next-token
    logits without anything of the vocabulary's size crossing the link."""

    def __init__(self, lm_head: nn.Module) -> None:
        super().__init__()
        self.lm_head = lm_head

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden_states)

    @staticmethod
    def targets(labels: torch.Tensor) -> torch.Tensor:
        """What each position predicts: the next token (`IGNORE_INDEX` for padding and prompts)."""
        return labels[:, 1:]

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Next-token cross-entropy over the target tokens of the batch, their mean (transformers'
        causal-LM loss) or, with `reduction="sum"`, their sum (evaluation weighs every token alike)."""
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), LmHead.targets(labels).flatten(),
                               ignore_index=IGNORE_INDEX, reduction=reduction)


class LayerRun(nn.Module):
    """A run of the encoder's layers fed with hidden states, LoRA inside: the server's part after the
    cut, or the device's layers before it."""

    def __init__(self, body: nn.Module, config: PretrainedConfig) -> None:
        super().__init__()
        self.body = body
        self.config = config

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # transformers 5.x: the layer stack called on its own needs the 4-D mask the full model would build.
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states,
                                         attention_mask=attention_mask)
        return self.body(hidden_states=hidden_states, attention_mask=mask).last_hidden_state


class ServerPart(LayerRun):
    """What the server runs: the encoder layers after the cut, with LoRA (peft), fed with activations."""


class LastTokenHead(MeanPoolHead):
    """Task head of a decoder: the output at each text's last real token (right padding), which has
    attended to the whole text, then a linear classifier (zero at the start, as `MeanPoolHead`'s)."""

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        last = attention_mask.long().sum(dim=1).clamp(min=1) - 1
        pooled = hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), last]
        return self.classifier(self.dropout(pooled))


class CausalRun(nn.Module):
    """A run of a decoder's layers fed with hidden states: its base model restricted to those layers
    (`Encoder.body_view`), which builds its own causal mask and rotary positions."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.body(inputs_embeds=hidden_states, attention_mask=attention_mask,
                         use_cache=False).last_hidden_state


class _NoPositions(nn.Module):
    """Stands in for position embeddings the device has already added."""

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), device=position_ids.device)


class DecoderDevicePart(nn.Module):
    """What a device runs of a decoder: the token (and position) embeddings and the layers before the
    cut (`front`, the base model restricted to them, without its final norm), then the task head.
    `blocks` is that front fed with hidden states, for counting the layers' FLOPs (None at cut 0)."""

    def __init__(self, front: nn.Module, head: LastTokenHead | LmHead, has_layers: bool) -> None:
        super().__init__()
        self.front = front
        self.head = head
        self.blocks = CausalRun(front) if has_layers else None

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.front(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.last_hidden_state


class DevicePart(nn.Module):
    """What a device runs: token embeddings and the layers before the cut (`blocks`, None at a cut
    right after the embeddings), then the link, then the task head."""

    def __init__(self, embeddings: nn.Module, head: MeanPoolHead, blocks: LayerRun | None = None) -> None:
        super().__init__()
        self.embeddings = embeddings
        self.head = head
        self.blocks = blocks

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The activations the device sends up."""
        hidden = self.embeddings(input_ids=input_ids)
        return hidden if self.blocks is None else self.blocks(hidden, attention_mask)


@dataclass
class SplitModel:
    device: DevicePart | DecoderDevicePart
    server: ServerPart | CausalRun
    where: torch.device = field(default_factory=lambda: torch.device("cpu"))  # the torch device of both parts
    precision: str = "fp32"

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The unsplit forward through the same modules (evaluation, the unsplit mode, references)."""
        with self.autocast():
            hidden = self.server(self.device.embed(input_ids, attention_mask), attention_mask)
            return self.device.head(hidden, attention_mask).float()

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The task's training loss (the head's)."""
        return self.device.head.loss(logits, labels)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context forward passes run in (`learning.precision`)."""
        return autocast(self.where, self.precision)

    def to(self, where: torch.device, precision: str = "fp32") -> SplitModel:
        """Both parts moved to `where` (in place: the base is shared), forward passes in `precision`."""
        self.device.to(where)
        self.server.to(where)
        self.where, self.precision = where, precision
        return self

    def train(self, mode: bool = True) -> None:
        self.device.train(mode)
        self.server.train(mode)


def lora_config(settings: LoraSettings, targets: tuple[str, ...]) -> LoraConfig:
    return LoraConfig(r=settings.r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=list(targets))


def build_split_model(encoder: Encoder, model: ModelSettings, lora: LoraSettings, num_labels: int,
                      seed: int = 0) -> SplitModel:
    """Freeze the base, cut the encoder after `model.device_layers` layers, add LoRA to every layer
    (and to the word embeddings if asked), add a fresh head: a classifier over `num_labels` classes,
    or, for an encoder loaded with its LM head (the causal-LM task), that head.

    `seed` fixes the head and LoRA initialisation so that runs (and the modes compared) start equal.
    """
    cut = model.device_layers
    if cut >= encoder.depth:
        raise ValueError(f"device_layers={cut} leaves no layer on the server: the model in {encoder.path} "
                         f"has {encoder.depth} layers, so give 0 to {encoder.depth - 1}")
    torch.manual_seed(seed)
    encoder.model.requires_grad_(False)
    if encoder.lm_head is not None:
        encoder.lm_head.requires_grad_(False)
    targets = lora.target_modules or encoder.family.query_value
    if encoder.family.causal:
        return _split_decoder(encoder, model, lora, targets, num_labels)
    embeddings = encoder.embeddings
    if model.embeddings == "lora":
        inject_adapter_in_model(lora_config(lora, (encoder.family.word_embeddings,)), embeddings)
    blocks = None
    if cut:
        front = encoder.body_view(slice(0, cut))
        inject_adapter_in_model(lora_config(lora, targets), front)
        blocks = LayerRun(front, encoder.model.config)
    body = get_peft_model(encoder.body if cut == 0 else encoder.body_view(slice(cut, None)),
                          lora_config(lora, targets))
    head = MeanPoolHead(encoder.hidden_size, num_labels, model.head_dropout)
    return SplitModel(DevicePart(embeddings, head, blocks), ServerPart(body, encoder.model.config))


def trainable_parameters(module: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable parameters themselves, by the names their states use."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable tensors: one device's (or the global) LoRA / head state."""
    return {name: p.detach().clone() for name, p in trainable_parameters(module).items()}


@torch.no_grad()
def load_trainable(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Swap a state into the shared module in place (the frozen base is never copied)."""
    params = dict(module.named_parameters())
    for name, value in state.items():
        params[name].copy_(value)


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _split_decoder(encoder: Encoder, model: ModelSettings, lora: LoraSettings, targets: tuple[str, ...],
                   num_labels: int) -> SplitModel:
    """A decoder cut after `model.device_layers` layers: the device's view of the base model embeds and
    runs the layers before the cut (its final norm left out), the server's runs the rest and the norm
    (the embeddings its forward would add left out, since the device added them)."""
    family, cut = encoder.family, model.device_layers
    if model.embeddings == "lora":  # into the model itself, before the views copy its module table
        inject_adapter_in_model(lora_config(lora, (family.word_embeddings,)), encoder.model)
    front = encoder.body_view(slice(0, cut))
    setattr(front, family.final_norm, nn.Identity())
    if cut:
        inject_adapter_in_model(lora_config(lora, targets), front)
    back = encoder.body_view(slice(cut, None))
    for name in family.positions:
        added = getattr(back, name)
        setattr(back, name, _NoPositions() if isinstance(added, nn.Embedding) else nn.Identity())
    body = get_peft_model(back, lora_config(lora, targets))
    head = LastTokenHead(encoder.hidden_size, num_labels, model.head_dropout) if encoder.lm_head is None \
        else LmHead(encoder.lm_head)
    return SplitModel(DecoderDevicePart(front, head, has_layers=cut > 0), CausalRun(body))
