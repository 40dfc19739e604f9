"""Floating-point operations of the server part, counted on the real modules (not a formula), so the
simulated server time follows the model and the LoRA configuration without timing this host."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from learning.split import ServerPart


@dataclass(frozen=True)
class ServerStepFlops:
    """FLOPs of one sample's split step on the server: its forward pass and the backward pass after it."""

    forward: float
    backward: float

    @property
    def total(self) -> float:
        return self.forward + self.backward


def server_step_flops_per_sample(server: ServerPart, hidden_size: int, seq_len: int,
                                 activations_train: bool) -> ServerStepFlops:
    """FLOPs of one sample's pass through the server part: forward, then the backward the split
    step runs (gradients of the trainable LoRA tensors, and of the activations when the device's
    embeddings train). torch's FlopCounterMode counts matrix products and attention, the bulk of
    the work; element-wise operations are left out. The batch's FLOPs are this times its size."""
    params = [p for p in server.parameters() if p.requires_grad]
    with torch.random.fork_rng():  # dropout draws here must not move the training's random stream
        torch.manual_seed(0)
        activations = torch.zeros(1, seq_len, hidden_size, requires_grad=activations_train)
        mask = torch.ones(1, seq_len, dtype=torch.long)
        with FlopCounterMode(display=False) as forward:
            out = server(activations, mask)
        with FlopCounterMode(display=False) as backward:
            inputs = params + ([activations] if activations_train else [])
            torch.autograd.grad(out, inputs, grad_outputs=torch.ones_like(out))
    return ServerStepFlops(float(forward.get_total_flops()), float(backward.get_total_flops()))
