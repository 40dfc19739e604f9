"""Floating-point operations of the encoder's layers on either side of the cut, counted on the real
modules (not a formula), so the simulated server and device times follow the model, the cut and the
LoRA configuration without timing this host."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from learning.split import LayerRun


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one sample's pass through a run of layers in a split step: forward, then the backward
    pass after it."""

    forward: float
    backward: float

    @property
    def total(self) -> float:
        return self.forward + self.backward


def step_flops_per_sample(layers: LayerRun, hidden_size: int, seq_len: int,
                          activations_train: bool) -> StepFlops:
    """FLOPs of one sample's pass through a run of layers (the server part, or the device's layers
    before the cut): forward, then the backward the split step runs (gradients of the trainable LoRA
    tensors, and of the layers' input when what runs before them trains). torch's FlopCounterMode
    counts matrix products and attention, the bulk of the work; element-wise operations are left out.
    The batch's FLOPs are this times its size."""
    params = [p for p in layers.parameters() if p.requires_grad]
    with torch.random.fork_rng():  # dropout draws here must not move the training's random stream
        torch.manual_seed(0)
        where = params[0].device if params else torch.device("cpu")
        activations = torch.zeros(1, seq_len, hidden_size, requires_grad=activations_train, device=where)
        mask = torch.ones(1, seq_len, dtype=torch.long, device=where)
        with FlopCounterMode(display=False) as forward:
            out = layers(activations, mask)
        with FlopCounterMode(display=False) as backward:
            inputs = params + ([activations] if activations_train else [])
            torch.autograd.grad(out, inputs, grad_outputs=torch.ones_like(out))
    return StepFlops(float(forward.get_total_flops()), float(backward.get_total_flops()))
