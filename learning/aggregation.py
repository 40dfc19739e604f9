"""The server's aggregation rule, chosen by name or import path, and its hook into local training.

An aggregator is any class with ``aggregate``; subclassing `Aggregator` is optional. The trainer
builds it once as ``cls(config, trainer_config)`` (`config`: an instance of its ``Config`` dataclass,
built from the other ``learning.aggregator.*`` keys; ``NoKnobs()`` without one) and calls, for each
of the two parts of the model (``"server"``: the LoRA of the encoder; ``"device"``: the device's
trainable part):

- ``aggregate(part, global_state, states, weights) -> State``: the part's new global state from the
  delivered devices' states and their weights (sample counts, or as `aggregation_weights` says);
  called only in rounds where something was delivered.
- ``local_term(part, params, global_state) -> Tensor | None``: a term added to a device's local
  objective at every local step, over the part's trainable parameters (`params`, by name) and the
  global state the round started from; None adds nothing. In split learning the device adds the
  device part's term and the server the server part's: each side back-propagates its own.
- ``state_dict()`` / ``load_state_dict(state)``: what later rounds depend on (server moments), for
  checkpoints.

Built-ins: ``fedavg``, ``fedavgm`` and ``fedadam`` (the server step of `learning.server_*`) and
``fedprox`` (FedAvg with the proximal term μ/2·‖w − w_global‖², Li et al. 2020).
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from learning.aggregate import ServerOptimizer, State, fedavg

PARTS = ("server", "device")


class TrainerSettings(Protocol):
    """What the built-in rules read of the run's `TrainerConfig` (learning/config.py), which every
    rule gets whole."""

    server_lr: float
    server_momentum: float
    server_beta2: float
    server_lr_decay: str
    rounds_hint: int | None


@dataclass(frozen=True)
class NoKnobs:
    """The config of an aggregator that takes none."""


class Aggregator(ABC):
    """See the module's docstring for the contract of each method."""

    Config: ClassVar[type] = NoKnobs

    def __init__(self, config: Any, trainer: TrainerSettings) -> None:
        self.config, self.trainer = config, trainer

    @abstractmethod
    def aggregate(self, part: str, global_state: State, states: Sequence[State],
                  weights: Sequence[float]) -> State: ...

    def local_term(self, part: str, params: Mapping[str, torch.Tensor],
                   global_state: State) -> torch.Tensor | None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027 (optional)
        """Nothing to restore by default."""


class FedAvg(Aggregator):
    """The weighted mean of the delivered states (McMahan et al. 2017)."""

    def aggregate(self, part: str, global_state: State, states: Sequence[State],
                  weights: Sequence[float]) -> State:
        return fedavg(states, weights)


class _ServerStep(FedAvg):
    """FedAvg's mean as a pseudo-gradient for a server optimiser (`aggregate.ServerOptimizer`), one per
    part, with `learning.server_lr`, `server_momentum`, `server_beta2`, `server_lr_decay`."""

    kind = "fedavg"

    def __init__(self, config: Any, trainer: TrainerSettings) -> None:
        super().__init__(config, trainer)
        self.optimizers = {part: ServerOptimizer(self.kind, trainer.server_lr, trainer.server_momentum,
                                                 decay=trainer.server_lr_decay, horizon=trainer.rounds_hint,
                                                 beta2=trainer.server_beta2) for part in PARTS}

    def aggregate(self, part: str, global_state: State, states: Sequence[State],
                  weights: Sequence[float]) -> State:
        average = super().aggregate(part, global_state, states, weights)
        return self.optimizers[part].step(global_state, average)

    def state_dict(self) -> dict:
        return {part: opt.state_dict() for part, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for part, opt in self.optimizers.items():
            opt.load_state_dict(state[part])


class FedAvgM(_ServerStep):
    """Server momentum (Hsu et al. 2019)."""

    kind = "fedavgm"


class FedAdam(_ServerStep):
    """Adam on the server (Reddi et al. 2021)."""

    kind = "fedadam"


@dataclass(frozen=True)
class FedProxConfig:
    mu: float = 0.01  # μ of the proximal term μ/2·‖w − w_global‖²: `learning.aggregator.mu`

    def __post_init__(self) -> None:
        if not (self.mu >= 0 and self.mu < float("inf")):
            raise ValueError(f"mu={self.mu!r} must be finite and >= 0")


class FedProx(FedAvg):
    """FedAvg whose devices minimise their loss plus μ/2·‖w − w_global‖² (Li et al. 2020), which keeps
    each local model near the global one when the devices' data differ."""

    Config = FedProxConfig

    def local_term(self, part: str, params: Mapping[str, torch.Tensor],
                   global_state: State) -> torch.Tensor | None:
        distance = sum(((w - global_state[name].to(w.dtype)) ** 2).sum() for name, w in params.items())
        return 0.5 * self.config.mu * distance


AGGREGATORS: dict[str, type] = {"fedavg": FedAvg, "fedavgm": FedAvgM, "fedadam": FedAdam, "fedprox": FedProx}


def aggregator_class(name: str) -> type:
    """A built-in's class, or the class at `module:Class`; ValueError saying what is wrong."""
    if name in AGGREGATORS:
        return AGGREGATORS[name]
    module_name, sep, attribute = name.partition(":")
    if not sep:
        raise ValueError(f"aggregator {name!r} is neither built in ({', '.join(AGGREGATORS)}) nor an import "
                         "path module:Class")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except Exception as err:
        raise ValueError(f"aggregator {name!r} cannot be loaded: {type(err).__name__}: {err}") from err
    if not (isinstance(found, type) and callable(getattr(found, "aggregate", None))):
        raise ValueError(f"aggregator {name!r} is not a class with aggregate(part, global_state, states, "
                         "weights) (learning/aggregation.py)")
    config = getattr(found, "Config", NoKnobs)
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise ValueError(f"aggregator {name!r}: its Config must be a dataclass of its knobs")
    return found
