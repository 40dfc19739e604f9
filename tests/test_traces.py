"""ns-2 mobility traces on the real compiled scenario: device heights, and devices that are not in
the scenario before they enter their trace or after they leave it."""

import numpy as np
import pytest

from cosim.simulator.scenario import ConfigError, ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation, SimulationError
from cosim.wire.messages import RoundPlan
from optimizer import POLICIES, RoundInputs, make_policy
from tests.conftest import write_trace

pytestmark = pytest.mark.ns3


def trace_text(path, lines: list[str]):
    path.write_text("\n".join(lines) + "\n")
    return path


def report_of(tmp_path, lines, **kw):
    trace = trace_text(tmp_path / "t.ns2", lines)
    cfg = ScenarioConfig(**{"devices": 1, "mobility": "ns2", "trace_file": trace, "fading": "none",
                            "shadowing": False, **kw})
    with Ns3Simulation(cfg) as sim:
        return sim.channel_report().records[0]


def test_a_node_without_height_or_at_zero_stands_at_the_device_height(ns3_binary, tmp_path):
    xy = ["$node_(0) set X_ 120", "$node_(0) set Y_ 30"]
    explicit = report_of(tmp_path, [*xy, "$node_(0) set Z_ 1.5"])
    for lines in (xy, [*xy, "$node_(0) set Z_ 0"]):  # SUMO's exporter writes Z_ 0
        rec = report_of(tmp_path, lines)
        assert rec["z_m"] == 1.5
        assert rec["snr_db"] == explicit["snr_db"]
    assert report_of(tmp_path, xy, ue_height_m=10.0)["z_m"] == 10.0


def test_a_height_outside_the_path_loss_model_is_an_error_naming_file_node_and_model(ns3_binary, tmp_path):
    lines = ["$node_(0) set X_ 120", "$node_(0) set Y_ 30", "$node_(0) set Z_ 40"]
    with pytest.raises(SimulationError, match=r"t\.ns2: node 0 is 40.* outside the uma path loss model's "
                                              r"device heights \(1\.5.*22\.5"):
        report_of(tmp_path, lines)
    assert report_of(tmp_path, lines, propagation="log-distance")["z_m"] == 40.0
    with pytest.raises(ConfigError, match="ue_height_m.*1.5 to 22.5"):
        ScenarioConfig(ue_height_m=0.5)


def walk(sim, devices, rounds, seconds):
    """Rounds of nothing but device `devices - 1` computing for `seconds`; the reports in between."""
    reports = []
    for t in range(rounds):
        reports.append(sim.channel_report())
        scheduled = np.zeros(devices, bool)
        scheduled[-1] = True
        sim.execute(RoundPlan.lumped(t, scheduled, scheduled * 1.0, np.zeros(devices), np.zeros(devices),
                                     np.full(devices, seconds), deadline_s=seconds + 1))
    return reports


def test_a_device_is_absent_after_its_last_position_and_cannot_be_scheduled(ns3_binary, tmp_path):
    """Device 0 walks 20 m at 10 m/s from t = 1 s (its trace ends at t = 3 s); device 1 never moves
    and stays (its one position holds)."""
    trace = write_trace(tmp_path / "leave.ns2", {0: (100.0, 0.0), 1: (0.0, 100.0)},
                        moves=[(1.0, 0, 120.0, 0.0, 10.0)])
    cfg = ScenarioConfig(devices=2, mobility="ns2", trace_file=trace, fading="none")
    with Ns3Simulation(cfg) as sim:
        reports = walk(sim, 2, 8, 0.5)
        times = np.array([r.sim_time_s for r in reports])
        present = np.array([r.present for r in reports])
        assert present[:, 1].all()
        assert (present[:, 0] == (times <= 3.0)).all() and (times > 3.0).any()
        go = np.array([True, False])
        with pytest.raises(SimulationError, match=r"schedules device 0, which is not in the mobility trace"):
            sim.execute(RoundPlan.lumped(9, go, go * 1.0, np.full(2, 1000), np.full(2, 1000), np.zeros(2),
                                         5.0))


def test_an_activity_file_says_when_devices_enter_and_leave(ns3_binary, tmp_path):
    trace = write_trace(tmp_path / "cars.ns2", {0: (100.0, 0.0), 1: (0.0, 100.0), 2: (50.0, 50.0)})
    activity = trace_text(tmp_path / "cars.activity", [
        '$ns_ at 2.0 "$g(0) start"; # SUMO-ID: late', '$ns_ at 1.0 "$g(1) stop"; # SUMO-ID: early'])
    cfg = ScenarioConfig(devices=3, mobility="ns2", trace_file=trace, activity_file=activity, fading="none")
    with Ns3Simulation(cfg) as sim:
        reports = walk(sim, 3, 8, 0.5)
    times = np.array([r.sim_time_s for r in reports])
    present = np.array([r.present for r in reports])
    assert (present[:, 0] == (times >= 2.0)).all() and (present[:, 1] == (times <= 1.0)).all()
    assert present[:, 2].all() and present[:, 0].any() and not present[:, 0].all()


def test_a_malformed_activity_file_names_its_line(ns3_binary, tmp_path):
    trace = write_trace(tmp_path / "cars.ns2", {0: (100.0, 0.0)})
    activity = trace_text(tmp_path / "bad.activity", ['$ns_ at 2.0 "$g(0) start"', '$ns_ at x "$g(0) stop"'])
    cfg = ScenarioConfig(devices=1, mobility="ns2", trace_file=trace, activity_file=activity)
    with pytest.raises(SimulationError, match=r"bad\.activity:2: time 'x' is not a finite number"), \
            Ns3Simulation(cfg):
        pass


@pytest.mark.parametrize("name", list(POLICIES))
def test_no_policy_schedules_an_absent_device(name):
    present = np.array([True, False, True, False, True, True])
    inputs = RoundInputs(snr_db=np.full(6, 20.0), uplink_bytes=1e5, downlink_bytes=1e4, compute_time_s=0.1,
                         downlink_rate_bps=1e7, tx_power_w=0.2, compute_energy_j=0.01, energy_budget_j=2.0,
                         server_time_s=0.05, deadline_s=5.0, bandwidth_hz=20e6, present=present)
    plan = make_policy(name, **({"k": 6} if name.endswith("-k") else {})).plan(inputs)
    assert plan.n_scheduled >= 1 and not (plan.scheduled & ~present).any()
    assert "absent" in plan.infeasible[1]
