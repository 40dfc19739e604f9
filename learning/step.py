"""One training step (forward + backward, no optimiser update), split across the link or not."""

from __future__ import annotations

import torch

from learning.data import Batch
from learning.payload import DOWN, UP, Link
from learning.split import SplitModel


def split_step(model: SplitModel, batch: Batch, link: Link) -> float:
    """Device embeds (and runs its layers), server encodes, device applies its head (a classifier or the
    LM head) and the loss; gradients travel back the same way.

    Each side only ever holds its own autograd graph: what crosses is a detached copy in the wire dtype.
    """
    device, server = model.device, model.server
    # device
    with model.autocast():
        embedded = device.embed(batch.input_ids, batch.attention_mask)
    activations = link.send("activations", UP, embedded, requires_grad=embedded.requires_grad)
    mask = link.send("attention_mask", UP, batch.attention_mask, message="activations")
    # server
    with model.autocast():
        encoded = server(activations, mask)
    received = link.send("encoder_output", DOWN, encoded, requires_grad=True)
    # device
    with model.autocast():
        logits = device.head(received, batch.attention_mask)
    loss = model.loss(logits, batch.labels)
    loss.backward()
    output_grad = link.send("encoder_output_grad", UP, received.grad)
    # server (a gradient arrives in fp32 and is cast to its output's dtype, bf16 under autocast)
    encoded.backward(output_grad.to(encoded.dtype))
    if activations.requires_grad:
        activation_grad = link.send("activations_grad", DOWN, activations.grad)
        embedded.backward(activation_grad.to(embedded.dtype))  # device
    return loss.item()


def unsplit_step(model: SplitModel, batch: Batch) -> float:
    """The same modules in one graph on one machine (the unsplit baseline; nothing crosses per step)."""
    loss = model.loss(model.logits(batch.input_ids, batch.attention_mask), batch.labels)
    loss.backward()
    return loss.item()


@torch.inference_mode()
def predict_logits(model: SplitModel, batch: Batch) -> torch.Tensor:
    return model.logits(batch.input_ids, batch.attention_mask)
