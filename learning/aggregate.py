"""Aggregation: FedAvg of the delivered devices' states, optionally followed by a server optimiser step."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

State = dict[str, torch.Tensor]
FEDADAM_BETA2 = 0.99  # second-moment decay of `fedadam`
FEDADAM_EPS = 1e-8
LR_DECAYS = ("constant", "cosine", "linear")


def server_lr_at(lr: float, step: int, decay: str = "constant", horizon: int | None = None) -> float:
    """η of server step `step` (0 = the first): `lr` throughout for `constant` or `horizon=None`.

    `cosine` is lr·(1 + cos(π·step/horizon))/2 and `linear` lr·(1 − step/horizon); both start at `lr`,
    fall monotonically and are 0 from `step = horizon` on, so the last of `horizon` steps is still > 0.
    """
    if decay not in LR_DECAYS:
        raise ValueError(f"decay must be one of {LR_DECAYS}, got {decay!r}")
    if decay == "constant" or horizon is None:
        return lr
    if horizon < 1 or step < 0:
        raise ValueError(f"need horizon >= 1 and step >= 0, got horizon {horizon}, step {step}")
    progress = min(step, horizon) / horizon
    if decay == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr * (1.0 - progress)


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

    η follows `server_lr_at(lr, steps, decay, horizon)`: `steps` counts the server steps taken, so a round
    with nothing delivered (no `step` call) neither moves the weights nor advances the schedule. `beta2`
    is `fedadam`'s second-moment decay.
    """

    def __init__(self, kind: str, lr: float, momentum: float, decay: str = "constant",
                 horizon: int | None = None, beta2: float = FEDADAM_BETA2) -> None:
        server_lr_at(lr, 0, decay, horizon)  # checks decay and horizon
        self.kind, self.lr, self.momentum = kind, lr, momentum
        self.decay, self.horizon, self.beta2 = decay, horizon, beta2
        self.steps = 0
        self.m: State = {}
        self.v: State = {}

    def state_dict(self) -> dict:
        """What the next steps depend on (the moments and the step count), for a checkpoint."""
        return {"steps": self.steps, "m": dict(self.m), "v": dict(self.v)}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.m, self.v = int(state["steps"]), dict(state["m"]), dict(state["v"])

    @property
    def current_lr(self) -> float:
        """η the next step will use."""
        return server_lr_at(self.lr, self.steps, self.decay, self.horizon)

    def step(self, global_state: State, average: State) -> State:
        if self.kind == "fedavg":
            return average
        lr = self.current_lr
        self.steps += 1
        new = {}
        for name, value in global_state.items():
            delta = average[name] - value
            if self.kind == "fedavgm":
                self.m[name] = self.momentum * self.m.get(name, 0) + delta
                new[name] = value + lr * self.m[name]
            else:
                self.m[name] = self.momentum * self.m.get(name, 0) + (1 - self.momentum) * delta
                self.v[name] = self.beta2 * self.v.get(name, 0) + (1 - self.beta2) * delta ** 2
                m_hat = self.m[name] / (1 - self.momentum ** self.steps)
                v_hat = self.v[name] / (1 - self.beta2 ** self.steps)
                new[name] = value + lr * m_hat / (v_hat.sqrt() + FEDADAM_EPS)
        return new
