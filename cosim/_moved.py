"""The modules' names before cosim/ was arranged by concern, kept working.

`import cosim.simulation` (or `python -m cosim.layout`) still gives the module at its new name,
the same object, with a DeprecationWarning that names it. New code imports from the new names or
from `cosim` itself (cosim/__init__.py).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import CodeType, ModuleType

MOVED = {
    "cosim.layout": "cosim.wire.layout",
    "cosim.messages": "cosim.wire.messages",
    "cosim.bridge": "cosim.wire.bridge",
    "cosim.scenario": "cosim.simulator.scenario",
    "cosim.simulation": "cosim.simulator.simulation",
    "cosim.transport_zmq": "cosim.simulator.zmq_client",
    "cosim.zmq_keys": "cosim.simulator.zmq_keys",
    "cosim.sumo": "cosim.simulator.sumo",
    "cosim.config": "cosim.experiment.config",
    "cosim.protocol": "cosim.experiment.protocol",
    "cosim.runloop": "cosim.experiment.runloop",
    "cosim.calibration": "cosim.experiment.calibration",
    "cosim.checkpoint": "cosim.experiment.checkpoint",
    "cosim.rundir": "cosim.experiment.rundir",
    "cosim.plots": "cosim.experiment.plots",
    "cosim.sweep": "cosim.campaign.sweep",
    "cosim.report": "cosim.campaign.report",
    "cosim.protocol_gap": "cosim.campaign.protocol_gap",
    "cosim.doctor": "cosim.cli.doctor",
    "cosim.terminal": "cosim.cli.terminal",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Finds an old name and loads it as the module at the new one."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        real = importlib.util.find_spec(MOVED[fullname])  # its file, for `python -m OLD_NAME`
        return importlib.util.spec_from_loader(fullname, self, origin=real.origin)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} is now {MOVED[spec.name]}; import it from there (or from cosim)",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(MOVED[spec.name])
        self._specs[module.__name__] = module.__spec__  # the import system sets the old name's spec on it
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._specs.pop(module.__name__)

    def get_code(self, fullname: str) -> CodeType | None:
        """What `python -m OLD_NAME` runs: the new module's code."""
        spec = importlib.util.find_spec(MOVED[fullname])
        return spec.loader.get_code(MOVED[fullname])

    def get_source(self, fullname: str) -> str | None:
        spec = importlib.util.find_spec(MOVED[fullname])
        return spec.loader.get_source(MOVED[fullname])


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
