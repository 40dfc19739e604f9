"""Faults of either side: clear errors, no orphan process, no leftover segment."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from cosim.simulator.scenario import ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation, ScenarioNotBuilt, SimulationError
from cosim.wire import bridge, layout
from cosim.wire.messages import RoundPlan
from tests.conftest import default_sigint

pytestmark = pytest.mark.ns3


def pid_gone(pid: int, within_s: float) -> bool:
    """The process has exited (a zombie counts) by now or within the time; checked at least once."""
    end = time.monotonic() + within_s
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


def test_killed_simulator_gives_clear_error_and_leaves_nothing(ns3_binary):
    cfg = ScenarioConfig(devices=4)
    sim = Ns3Simulation(cfg, timeout_s=30)
    with pytest.raises(SimulationError) as err, sim:
        sim.channel_report()
        pid, seg = sim.pid, sim.segment_name
        threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
        t0 = time.monotonic()
        plan = RoundPlan.equal_shares(0, [True] * 4, 50_000_000, 1000, deadline_s=300.0)
        try:
            sim.execute(plan)
        finally:
            elapsed = time.monotonic() - t0
    msg = str(err.value)
    assert "killed by signal SIGKILL" in msg and "Last lines of its log" in msg
    assert "--shm=" in msg  # the log tail starts with the command line
    assert elapsed < 3.0
    assert not (bridge.SHM_DIR / seg).exists()


def test_killed_python_side_makes_ns3_exit(ns3_binary, tmp_path):
    script = textwrap.dedent("""
        import sys, time
        from cosim.simulator.scenario import ScenarioConfig
        from cosim.simulator.simulation import Ns3Simulation
        sim = Ns3Simulation(ScenarioConfig(devices=2))
        sim.start()
        sim.channel_report()
        print(sim.pid, sim.segment_name, flush=True)
        time.sleep(600)
    """)
    py = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid, seg = py.stdout.readline().split()
    py.kill()
    py.wait()
    assert pid_gone(int(pid), within_s=3.0), "ns-3 outlived its Python side"
    assert not (bridge.SHM_DIR / seg).exists(), "the orphaned segment was not removed"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_to_python_clean_up(ns3_binary, sig):
    script = textwrap.dedent("""
        import time
        from cosim.simulator.scenario import ScenarioConfig
        from cosim.simulator.simulation import Ns3Simulation
        with Ns3Simulation(ScenarioConfig(devices=2)) as sim:
            print(sim.pid, sim.segment_name, flush=True)
            time.sleep(600)
    """)
    py = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    pid, seg = py.stdout.readline().split()
    py.send_signal(sig)
    _, stderr = py.communicate(timeout=15)
    assert py.returncode != 0 and "KeyboardInterrupt" in stderr
    assert pid_gone(int(pid), within_s=1.0)
    assert not (bridge.SHM_DIR / seg).exists()


def test_two_runs_at_once_do_not_collide(ns3_binary):
    a_cfg = ScenarioConfig(devices=2, rng_run=1)
    b_cfg = ScenarioConfig(devices=3, rng_run=2)
    with Ns3Simulation(a_cfg) as a, Ns3Simulation(b_cfg) as b:
        assert a.segment_name != b.segment_name
        ra, rb = a.channel_report(), b.channel_report()
        oa = a.execute(RoundPlan.equal_shares(0, [True] * 2, 50_000, 5_000, deadline_s=5.0))
        ob = b.execute(RoundPlan.equal_shares(0, [True] * 3, 50_000, 5_000, deadline_s=5.0))
    assert len(ra.records) == 2 and len(rb.records) == 3
    assert oa.delivered.all() and ob.delivered.all()


def test_layout_mismatch_names_both_versions(ns3_binary):
    old = layout.LAYOUT_VERSION + 1
    with pytest.raises(SimulationError) as err, Ns3Simulation(ScenarioConfig(devices=1),
                                                              layout_version=old):
        pass
    msg = str(err.value)
    assert f"layout version {old}" in msg and f"built for version {layout.LAYOUT_VERSION}" in msg


def test_echo_round_trip_carries_the_plan(ns3_binary):
    with Ns3Simulation(ScenarioConfig(devices=5)) as sim:
        plan = RoundPlan.equal_shares(0, [True, False, True, True, False], 1, 1, deadline_s=1.0)
        report = sim.echo(plan)
    assert report.records["device_id"].tolist() == list(range(5))
    assert np.allclose(report.records["snr_db"], plan.bandwidth_share)


def test_missing_build_names_the_fix(tmp_path):
    with pytest.raises(ScenarioNotBuilt, match="make build"):
        Ns3Simulation(ScenarioConfig(devices=1), binary=tmp_path / "nope")


def test_a_ctrl_c_during_the_clean_up_waits_for_it(ns3_binary):
    """A second Ctrl-C while the simulation shuts down (users press it twice; a cluster's SIGTERM
    follows the first) takes effect once ns-3 is gone and the segment removed, not half-way."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive run
    try:
        sim = Ns3Simulation(ScenarioConfig(devices=2))
        sim.start()
        pid, path = sim.pid, sim._segment.path
        finished = []
        clean_up = sim._close

        def interrupted_clean_up(graceful: bool) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the signal is delivered in here
            clean_up(graceful)
            finished.append(True)

        sim._close = interrupted_clean_up
        with pytest.raises(KeyboardInterrupt):
            sim.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert finished and not path.exists() and pid_gone(pid, within_s=1.0)
