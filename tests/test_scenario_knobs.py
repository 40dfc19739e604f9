"""Every knob of the scenario: the same names and defaults on both sides, and a user's ns-3
attribute wins over the project's defaults."""

import re
import subprocess

import numpy as np
import pytest

from cosim.ns3_server import scenario_from_dict
from cosim.simulator.scenario import ConfigError, ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation
from cosim.wire.messages import RoundPlan
from tests.test_ns3_scenario import fixed_cell

# set by the seed (RngRun) and ns-3's own global RngSeed, which --help does not list
GLOBALS = {"RngSeed", "RngRun"}


def help_defaults(binary) -> dict[str, str]:
    text = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True).stdout
    return {m[1]: m[2] for m in re.finditer(r"^\s+--(\w+):\s.*?(?:\[(.*)\])?$", text, re.M)}


def same_value(flag_value: str, help_value: str | None) -> bool:
    if help_value is None:
        return flag_value == ""
    try:
        return float(flag_value) == float(help_value)
    except ValueError:
        return flag_value == help_value


@pytest.mark.ns3
def test_scenario_help_and_scenario_config_agree_on_every_knob(ns3_binary):
    shown = help_defaults(ns3_binary)
    flags = dict(arg[2:].split("=", 1) for arg in ScenarioConfig().to_args())
    assert set(flags) - GLOBALS <= set(shown), set(flags) - GLOBALS - set(shown)
    for flag, value in flags.items():
        if flag not in GLOBALS:
            assert same_value(value, shown[flag]), (flag, value, shown[flag])
    # the optional ones, absent from a default config's flags
    assert {"traceFile", "flowMonitor"} <= set(shown)


@pytest.mark.ns3
def test_a_users_ns3_attribute_wins_over_the_projects_default(ns3_binary, tmp_path):
    """TCP buffers of 3 kB (the project sets 256 kB) cap the LTE uplink at a few segments per RTT."""
    def uplink_s(**kw):
        cfg = fixed_cell(tmp_path, "lte", [100.0], **kw)
        plan = RoundPlan.lumped(0, np.array([True]), np.array([1.0]), np.array([300_000]), np.array([1000]),
                                np.zeros(1), deadline_s=30.0)
        with Ns3Simulation(cfg) as sim:
            sim.channel_report()
            return sim.execute(plan).records["uplink_transfer_s"][0]

    small = ("ns3::TcpSocket::SndBufSize=3000", "ns3::TcpSocket::RcvBufSize=3000")
    assert uplink_s(ns3_attributes=small) > 3 * uplink_s()


def test_ns3_attributes_are_checked_and_not_accepted_from_a_remote_client():
    with pytest.raises(ConfigError, match="ns3_attributes.*ns3::Class::Attribute=value"):
        ScenarioConfig(ns3_attributes=("TcpSocket::SndBufSize=3000",))
    remote = ScenarioConfig(ns3_attributes=["ns3::TcpSocket::SndBufSize=3000"]).to_dict()
    with pytest.raises(ConfigError, match="cannot be sent to an ns-3 server"):
        scenario_from_dict(remote)


@pytest.mark.ns3
def test_lte_uplink_power_control_lowers_a_near_devices_power_and_its_energy(ns3_binary, tmp_path):
    """ns-3's open-loop control at a 20 m device on 10 resource blocks asks for far less than
    23 dBm; one at 400 m stays at the maximum. The energy is each grant's power × airtime."""
    cfg = fixed_cell(tmp_path, "lte", [20.0, 400.0], lte_power_control=True)
    plan = RoundPlan.lumped(0, np.ones(2, bool), np.array([0.1, 0.5]), np.full(2, 300_000), np.full(2, 1000),
                            np.zeros(2), deadline_s=30.0)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        rec = sim.execute(plan).records
    assert rec["deadline_met"].all()
    power_dbm = 10 * np.log10(rec["tx_energy_j"] / rec["airtime_s"]) + 30
    assert power_dbm[0] < 13.0 and power_dbm[1] == pytest.approx(23.0, abs=0.01)


@pytest.mark.ns3
@pytest.mark.parametrize("target", [0.1, 0.02])
def test_lte_outer_loop_reaches_its_block_error_target(ns3_binary, tmp_path, target):
    """A standing device, about 1,000 transport blocks: the share lost is the target's, within a
    factor of 1.6 either way (the outer loop steps 1 dB down on an error, target/(1-target) up)."""
    cfg = fixed_cell(tmp_path, "lte", [250.0], fading="rayleigh", lte_bler_target=target)
    plan = RoundPlan.lumped(0, np.array([True]), np.array([1.0]), np.array([2_000_000]), np.array([1000]),
                            np.zeros(1), deadline_s=30.0)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        rec = sim.execute(plan).records[0]
    assert rec["packets_sent"] > 500
    assert target / 1.6 < rec["packets_lost"] / rec["packets_sent"] < target * 1.6


@pytest.mark.ns3
@pytest.mark.parametrize("harq", [True, False])
def test_lte_harq_resends_failed_blocks_and_the_enb_combines_them(ns3_binary, tmp_path, monkeypatch, harq):
    """The outer loop aims at 10 % block errors, so about one first transmission in ten fails. With
    HARQ each is granted again and, combined with the first attempt by ns-3's eNB, almost never
    fails a second time (without combining about one in ten would); without HARQ the MAC resends
    nothing."""
    monkeypatch.setenv("NS_LOG", "CosimShareFfMacScheduler=level_info")
    cfg = fixed_cell(tmp_path, "lte", [250.0], fading="rayleigh", lte_harq=harq)
    plan = RoundPlan.lumped(0, np.array([True]), np.array([1.0]), np.array([1_000_000]), np.array([1000]),
                            np.zeros(1), deadline_s=30.0)
    log = tmp_path / "ns3.log"
    with Ns3Simulation(cfg, log_path=log) as sim:
        sim.channel_report()
        rec = sim.execute(plan).records[0]
    assert rec["deadline_met"] == 1 and rec["packets_lost"] > 20
    text = log.read_text()
    first, second = text.count("HARQ retransmission 1 "), text.count("HARQ retransmission 2 ")
    if harq:
        assert first > 0.5 * rec["packets_lost"] and second <= 0.03 * first + 1, (first, second)
    else:
        assert first == 0
