"""The scheduling policy interface: what a policy is given, what it must answer, what it may keep.

A policy is any class with these methods; subclassing `Policy` is optional (it supplies the three
that have defaults). The run builds it once, as ``cls(config, context)``, then each round calls
``plan`` and, after ns-3 carried the round, ``observe``; ``state_dict`` goes into every checkpoint
and ``load_state_dict`` gets it back on resume. A built-in policy is chosen by name
(``policy.name=lyapunov``), any other by import path (``policy.name=my_package.my_module:MyPolicy``,
a file on PYTHONPATH included; optimizer/registry.py).

Knobs: a policy's class attribute ``Config`` is a dataclass of its typed knobs with defaults; the
config's other ``policy.*`` keys become its fields (parsed to the field's type; a key it lacks is an
error naming those it has), and ``__post_init__`` may refuse values with ValueError. No ``Config``:
the policy takes no knobs and gets ``NoKnobs()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from optimizer.inputs import RoundInputs
from optimizer.plan import Plan


@dataclass(frozen=True)
class NoKnobs:
    """The config of a policy that takes none."""


@dataclass(frozen=True)
class PolicyContext:
    """What the run tells a policy when it builds it: how many rounds (the horizon T), the run's seed
    (seed your own generators with it, so the run reproduces), the number of devices, and how many
    threads a solver may use."""

    rounds: int
    seed: int = 0
    devices: int | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.threads < 1 or (self.devices is not None and self.devices < 1):
            raise ValueError(f"rounds, threads and devices must be >= 1, got {self}")


class Policy(ABC):
    """One round's scheduling decision, from what the run knows.

    - ``plan(inputs)``: called once per round, before anything is sent. `inputs` (a `RoundInputs`)
      holds every device's reported SNR, payloads, compute and server times, energy budget, the
      run's energy queues (`energy_queue_j`) and a read-only `history` of the rounds before (a
      `History`, optimizer/history.py; None when the policy is used outside a run). Return a
      `Plan` (optimizer/plan.py: `make_plan(problem, devices, shares, ...)` builds one from a
      `RoundProblem`, `empty_plan` an empty one with its reason). Shares must sum to at most 1 and
      absent devices cannot be scheduled; the run refuses a plan that breaks either.
    - ``observe(plan, realised_energy_j)``: after the round, what each scheduled device spent
      (transmit energy measured by ns-3 plus compute), in J; 0 for the others. Delivery and delay
      reach the next round's `history`.
    - ``state_dict()`` / ``load_state_dict(state)``: whatever later plans depend on (generators,
      counters, learned estimates), as plain Python and numpy values; a resumed run restores it,
      so the rounds after the resume are those an uninterrupted run would have had. A policy that
      keeps state without them does not resume faithfully.
    """

    Config: ClassVar[type] = NoKnobs
    name: str = "policy"

    def __init__(self, config: object, context: PolicyContext) -> None:
        self.config, self.context = config, context

    @abstractmethod
    def plan(self, inputs: RoundInputs) -> Plan: ...

    def observe(self, plan: Plan, realised_energy_j: np.ndarray) -> None:  # noqa: B027 (optional)
        """Nothing to learn by default."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027 (optional)
        """Nothing to restore by default."""
