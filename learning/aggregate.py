"""FedAvg: the new global state is the sample-weighted mean of the delivered devices' states."""

from __future__ import annotations

from collections.abc import Sequence

import torch

State = dict[str, torch.Tensor]


def fedavg(states: Sequence[State], weights: Sequence[float]) -> State:
    """Σ w_k θ_k / Σ w_k, tensor by tensor (weights are usually the devices' sample counts)."""
    if not states:
        raise ValueError("fedavg needs at least one state")
    if len(states) != len(weights) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"need one non-negative weight per state with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return {name: sum(w / total * s[name] for s, w in zip(states, weights, strict=True))
            for name in states[0]}
