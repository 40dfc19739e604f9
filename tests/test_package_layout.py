"""cosim/ by concern: dependencies point one way, the public API imports from `cosim`, and the
modules' names from before the arrangement still work."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import cosim
from cosim import _moved

ROOT = Path(__file__).resolve().parents[1]
# each part, and the parts of the project it may import (besides itself)
MAY_IMPORT = {
    "cosim.wire": set(),
    "cosim.simulator": {"cosim.wire"},
    "cosim.experiment": {"cosim.wire", "cosim.simulator", "optimizer", "learning"},
    "cosim.campaign": {"cosim.wire", "cosim.simulator", "cosim.experiment", "optimizer", "learning"},
    "optimizer": set(),
    "learning": set(),
}
PARTS = ("cosim.wire", "cosim.simulator", "cosim.experiment", "cosim.campaign", "cosim.cli",
         "cosim.ns3_server", "optimizer", "learning")


def _part(module: str) -> str | None:
    return next((p for p in PARTS if module == p or module.startswith(p + ".")), None)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("part", list(MAY_IMPORT))
def test_dependencies_point_one_way(part):
    folder = ROOT.joinpath(*part.split("."))
    files = sorted(folder.rglob("*.py"))
    assert len(files) >= 4
    wrong = []
    for path in files:
        for name in _imports(path):
            other = _part(name) if (name.startswith(("cosim.", "optimizer", "learning")) or name == "cosim") \
                else None
            if name == "cosim" or (other not in (None, part) and other not in MAY_IMPORT[part]):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_the_public_api_imports_from_cosim():
    assert len(cosim.__all__) >= 25
    for name in cosim.__all__:
        value = getattr(cosim, name)
        assert value.__name__ == name and value.__module__.startswith("cosim.")
    with pytest.raises(AttributeError, match="no attribute 'Ns3Simulator'"):
        cosim.Ns3Simulator  # noqa: B018


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_an_old_module_name_is_the_module_at_its_new_one(old):
    new = __import__(_moved.MOVED[old], fromlist=["_"])
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = __import__(old, fromlist=["_"])
    assert module is new and module.__spec__.name == _moved.MOVED[old]
    assert any(issubclass(w.category, DeprecationWarning) and _moved.MOVED[old] in str(w.message)
               for w in caught)


def test_old_names_keep_what_users_imported_from_them():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from cosim.messages import RoundPlan
        from cosim.protocol import Step, lumped_steps
        from cosim.runloop import run_experiment
        from cosim.simulation import Ns3Simulation
    assert (RoundPlan, Step, lumped_steps, run_experiment, Ns3Simulation) == (
        cosim.RoundPlan, cosim.Step, cosim.lumped_steps, cosim.run_experiment, cosim.Ns3Simulation)


def test_python_m_with_an_old_name_runs_the_new_module():
    out = subprocess.run([sys.executable, "-m", "cosim.layout", "--check"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    study = subprocess.run([sys.executable, "-m", "cosim.protocol_gap", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert study.returncode == 0 and "usage: python -m cosim.campaign.protocol_gap" in study.stdout
