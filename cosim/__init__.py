"""splitlora-cosim: split federated LoRA fine-tuning co-simulated with an ns-3 wireless network.

The package is arranged by concern, dependencies pointing one way (docs/design.md):

- ``cosim.wire``: what crosses the process boundary (the message layouts, the plan's steps, the
  shared-memory bridge); imports nothing else of cosim.
- ``cosim.simulator``: the ns-3 program as a Python object, over shared memory or ZMQ, its
  scenario config, SUMO traces.
- ``cosim.experiment``: one run (config and presets, the round loop, the protocol's steps,
  calibration, checkpoint, run folder, plots).
- ``cosim.campaign``: many runs (sweeps, reports, studies).
- ``cosim.cli`` and ``cosim.ns3_server``: the programs on top.

The names below are the public API, importable from ``cosim`` itself; each loads its module on
first use, so ``import cosim`` stays cheap. The modules' names before this arrangement still import
(cosim/_moved.py).
"""

from __future__ import annotations

import importlib
from typing import Any

from cosim import _moved

_PUBLIC = {
    "cosim.wire.messages": ("ChannelReport", "RoundOutcome", "RoundPlan"),
    "cosim.wire.steps": ("Step", "lumped_steps"),
    "cosim.wire.bridge": ("BridgeError", "PeerDied"),
    "cosim.simulator.scenario": ("ConfigError", "ScenarioConfig"),
    "cosim.simulator.simulation": ("Ns3Simulation", "ScenarioNotBuilt", "SimulationError"),
    "cosim.simulator.zmq_client": ("ServerRefused", "ServerUnreachable", "TransportError", "ZmqSimulation"),
    "cosim.simulator.sumo": ("SumoError", "fcd_to_ns2", "generate_trace"),
    "cosim.experiment.config": ("ExperimentConfig", "load_config"),
    "cosim.experiment.protocol": ("DeviceFlops", "StepTimes", "per_step_steps"),
    "cosim.experiment.runloop": ("resume_experiment", "run_experiment"),
    "cosim.experiment.rundir": ("RunDir",),
    "cosim.experiment.checkpoint": ("ResumeError",),
    "cosim.campaign.sweep": ("load_sweep",),
    "cosim.campaign.report": ("NotARunFolder", "load_run", "write_report"),
}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_HOME)

_moved.install()


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'cosim' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
