"""Aggregation: FedAvg of the delivered devices' states, optionally followed by a server optimiser step."""

from __future__ import annotations

from collections.abc import Sequence

import torch

State = dict[str, torch.Tensor]
FEDADAM_BETA2 = 0.99  # second-moment decay of `fedadam`
FEDADAM_EPS = 1e-8


def fedavg(states: Sequence[State], weights: Sequence[float]) -> State:
    """Σ w_k θ_k / Σ w_k, tensor by tensor (weights are usually the devices' sample counts)."""
    if not states:
        raise ValueError("fedavg needs at least one state")
    if len(states) != len(weights) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"need one non-negative weight per state with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return {name: sum(w / total * s[name] for s, w in zip(states, weights, strict=True))
            for name in states[0]}


class ServerOptimizer:
    """Moves the global state along the pseudo-gradient Δ = FedAvg(delivered) − global (Reddi et al. 2021).

    `fedavg` takes the average as it is. `fedavgm` keeps a momentum m ← βm + Δ and sets
    global ← global + η·m (Hsu et al. 2019); β = 0, η = 1 is FedAvg. `fedadam` keeps Adam's
    bias-corrected moments of Δ (β1 = `momentum`) and sets global ← global + η·m̂ / (√v̂ + ε), so each
    weight moves by about η per round however small the devices' two-step updates are. The state is one
    or two tensors the size of the global LoRA and head, held by the server.
    """

    def __init__(self, kind: str, lr: float, momentum: float) -> None:
        self.kind, self.lr, self.momentum = kind, lr, momentum
        self.steps = 0
        self.m: State = {}
        self.v: State = {}

    def step(self, global_state: State, average: State) -> State:
        if self.kind == "fedavg":
            return average
        self.steps += 1
        new = {}
        for name, value in global_state.items():
            delta = average[name] - value
            if self.kind == "fedavgm":
                self.m[name] = self.momentum * self.m.get(name, 0) + delta
                new[name] = value + self.lr * self.m[name]
            else:
                self.m[name] = self.momentum * self.m.get(name, 0) + (1 - self.momentum) * delta
                self.v[name] = FEDADAM_BETA2 * self.v.get(name, 0) + (1 - FEDADAM_BETA2) * delta ** 2
                m_hat = self.m[name] / (1 - self.momentum ** self.steps)
                v_hat = self.v[name] / (1 - FEDADAM_BETA2 ** self.steps)
                new[name] = value + self.lr * m_hat / (v_hat.sqrt() + FEDADAM_EPS)
        return new
