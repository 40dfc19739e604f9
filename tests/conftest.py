"""Shared fixtures. Integration tests run the real compiled ns-3 scenario (built by `make test`)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from cosim.simulator.simulation import scenario_binary
from cosim.wire import bridge


@pytest.fixture(scope="session")
def ns3_binary() -> Path:
    """The compiled scenario; missing means a broken build, so this fails rather than skips."""
    return scenario_binary()


@pytest.fixture(autouse=True)
def no_leftover_segments():
    """Every test must leave /dev/shm as it found it (other processes' live runs aside)."""
    before = {s.name for s in bridge.list_segments()}
    yield
    mine = os.getpid()
    leaked = {s.name for s in bridge.list_segments()
              if s.name not in before and (s.python_pid == mine or s.stale)}
    for name in leaked:
        (bridge.SHM_DIR / name).unlink(missing_ok=True)
    assert not leaked, f"segments left behind: {sorted(leaked)}"


def default_sigint() -> None:
    """preexec_fn for a child that must turn Ctrl-C into KeyboardInterrupt: a suite started in the
    background (`make test &`, nohup) passes SIGINT on as ignored, and Python then keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_trace(path: Path, positions: dict[int, tuple[float, float]],
                moves: list[tuple[float, int, float, float, float]] = ()) -> Path:
    """An ns-2 mobility trace: initial positions, then `(t, node, x, y, speed)` setdest moves."""
    lines = []
    for node, (x, y) in positions.items():
        lines += [f"$node_({node}) set X_ {x}", f"$node_({node}) set Y_ {y}",
                  f"$node_({node}) set Z_ 1.5"]
    lines += [f'$ns_ at {t} "$node_({n}) setdest {x} {y} {v}"' for t, n, x, y, v in moves]
    path.write_text("\n".join(lines) + "\n")
    return path
