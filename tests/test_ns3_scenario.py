"""The real compiled ns-3 scenario, on both radios, driven over shared memory."""

import math

import numpy as np
import pytest

from cosim.simulator.scenario import ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation, SimulationError
from cosim.wire.messages import RoundPlan
from tests.conftest import write_trace

pytestmark = pytest.mark.ns3
RADIOS = ["ideal-fdma", "lte"]


def fixed_cell(tmp_path, radio, distances_m, **kw) -> ScenarioConfig:
    """Devices standing still on the x axis at the given distances; no fading, no shadowing
    unless `kw` says otherwise."""
    trace = write_trace(tmp_path / "fixed.ns2", {i: (d, 0.0) for i, d in enumerate(distances_m)})
    return ScenarioConfig(**{"devices": len(distances_m), "radio": radio, "mobility": "ns2",
                             "trace_file": trace, "fading": "none", "shadowing": False, **kw})


def one_device_plan(k: int, share: float, payload: int, deadline_s: float = 20.0) -> RoundPlan:
    scheduled = np.zeros(k, bool)
    scheduled[0] = True
    shares = np.where(scheduled, share, 0.0)
    return RoundPlan.lumped(0, scheduled, shares, np.full(k, payload), np.full(k, payload // 10),
                            np.zeros(k), deadline_s)


@pytest.mark.parametrize("radio", RADIOS)
def test_larger_share_gives_shorter_uplink(ns3_binary, tmp_path, radio):
    cfg = fixed_cell(tmp_path, radio, [120.0, 150.0])
    delays = {}
    for share in (0.2, 0.6):
        with Ns3Simulation(cfg) as sim:
            sim.channel_report()
            out = sim.execute(one_device_plan(2, share, 400_000))
        rec = out.records[0]
        assert rec["uplink_delivered_bytes"] == 400_000 and rec["deadline_met"] == 1
        delays[share] = rec["uplink_transfer_s"]
    assert delays[0.6] < 0.75 * delays[0.2], delays


@pytest.mark.parametrize("radio", RADIOS)
def test_unscheduled_device_transmits_nothing(ns3_binary, tmp_path, radio):
    cfg = fixed_cell(tmp_path, radio, [100.0, 100.0, 150.0])
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        out = sim.execute(one_device_plan(3, 0.5, 200_000))
    rec = out.records
    assert rec["scheduled"].tolist() == [1, 0, 0]
    assert rec["uplink_delivered_bytes"][0] == 200_000
    for field in ("uplink_delivered_bytes", "downlink_delivered_bytes", "airtime_s",
                  "tx_energy_j", "packets_sent"):
        assert rec[field][1:].tolist() == [0, 0], field
    assert rec["airtime_s"][0] > 0 and rec["tx_energy_j"][0] > 0


@pytest.mark.parametrize("radio", RADIOS)
def test_farther_device_sees_lower_snr(ns3_binary, tmp_path, radio):
    cfg = fixed_cell(tmp_path, radio, [60.0, 150.0, 240.0])
    with Ns3Simulation(cfg) as sim:
        report = sim.channel_report()
    snr = report.snr_db
    assert report.records["distance_m"] == pytest.approx(
        [math.hypot(d, 25.0 - 1.5) for d in (60.0, 150.0, 240.0)], rel=1e-6)
    assert snr[0] > snr[1] > snr[2], snr


@pytest.mark.parametrize("radio", RADIOS)
def test_same_rng_run_reproduces_and_another_differs(ns3_binary, radio):
    def run(rng_run):
        cfg = ScenarioConfig(devices=3, radio=radio, rng_run=rng_run)
        with Ns3Simulation(cfg) as sim:
            reports = [sim.channel_report()]
            plan = RoundPlan.equal_shares(0, [True] * 3, 100_000, 20_000, deadline_s=5.0)
            outcome = sim.execute(plan)
            reports.append(sim.channel_report())
        return reports, outcome

    (r1, o1), (r2, o2), (r3, _) = run(4), run(4), run(5)
    for a, b in zip(r1, r2, strict=True):
        assert a.records.tobytes() == b.records.tobytes()
    assert o1.records.tobytes() == o2.records.tobytes()
    assert not np.allclose(r1[0].snr_db, r3[0].snr_db)


def test_ns2_trace_moves_the_devices(ns3_binary, tmp_path):
    trace = write_trace(tmp_path / "walk.ns2", {0: (50.0, 0.0), 1: (0.0, 80.0)},
                        moves=[(0.0, 0, 150.0, 0.0, 10.0)])  # 100 m at 10 m/s: there at t = 10 s
    cfg = ScenarioConfig(devices=2, mobility="ns2", trace_file=trace, fading="none")
    with Ns3Simulation(cfg) as sim:
        first = sim.channel_report()
        for t in range(3):
            sim.execute(RoundPlan.equal_shares(t, [False, True], 10_000_000, 1000, deadline_s=4.0))
        later = sim.channel_report()
        t = later.sim_time_s
    x0 = first.records["x_m"][0]
    assert x0 == pytest.approx(50.0 + 10.0 * first.sim_time_s, abs=0.05)
    assert later.records["x_m"][0] == pytest.approx(min(150.0, 50.0 + 10.0 * t), abs=0.05)
    assert t > first.sim_time_s + 1.0 and later.records["x_m"][0] > x0 + 10
    assert later.records["y_m"][1] == pytest.approx(80.0)


def test_malformed_trace_names_file_line_and_reason(ns3_binary, tmp_path):
    trace = tmp_path / "bad.ns2"
    trace.write_text('$node_(0) set X_ 10\n$node_(0) set Y_ 0\n'
                     '$ns_ at 1.0 "$node_(0) setdest 5 abc 2"\n')
    cfg = ScenarioConfig(devices=1, mobility="ns2", trace_file=trace)
    with pytest.raises(SimulationError, match=r"bad\.ns2:3: y 'abc' is not a finite number"), \
            Ns3Simulation(cfg):
        pass


@pytest.mark.parametrize("radio", RADIOS)
def test_round_cut_by_deadline_does_not_spill_into_the_next(ns3_binary, tmp_path, radio):
    cfg = fixed_cell(tmp_path, radio, [100.0])
    plan = RoundPlan.lumped(0, np.array([True]), np.array([1.0]), np.array([20_000_000]),
                            np.array([1000]), np.zeros(1), deadline_s=0.3)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        first = sim.execute(plan).records[0]
        second = sim.execute(plan).records[0]
    assert first["deadline_met"] == 0 and second["deadline_met"] == 0
    assert 0 < first["uplink_delivered_bytes"] < 20_000_000
    # leftovers of the first round would eat the second round's deadline
    assert second["uplink_delivered_bytes"] >= 0.8 * first["uplink_delivered_bytes"]


def test_flow_monitor_xml_records_the_round_traffic(ns3_binary, tmp_path):
    xml = tmp_path / "flows.xml"
    cfg = ScenarioConfig(devices=2, radio="lte", flow_monitor_xml=xml)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        out = sim.execute(RoundPlan.equal_shares(0, [True, True], 100_000, 50_000, deadline_s=5.0))
    assert out.delivered.all()
    text = xml.read_text()
    assert "<FlowMonitor>" in text
    assert text.count("<Flow flowId=") >= 4  # uplink and downlink of both devices


def test_los_state_is_redrawn_as_devices_move_and_kept_at_rest(ns3_binary, tmp_path):
    """No fading or shadowing: only the 3GPP LOS/NLOS state can change a device's SNR beyond what
    its distance does. Devices 0-5 walk 40 m (well under 1 dB of path loss at 150 m) in steps of
    2 m, devices 6-11 stand still: only walkers, and only with a correlation distance, change
    state (LOS and NLOS UMa losses differ by several dB)."""
    positions = {i: (150.0, 0.0) if i < 6 else (150.0 * math.cos(i), 150.0 * math.sin(i)) for i in range(12)}
    moves = [(0.0, i, 150.0, 40.0, 2.0) for i in range(6)]
    trace = write_trace(tmp_path / "walk.ns2", positions, moves)

    def jumps(correlation_m: float) -> np.ndarray:
        cfg = ScenarioConfig(devices=12, mobility="ns2", trace_file=trace, fading="none", shadowing=False,
                             los_correlation_m=correlation_m)
        snrs, distances = [], []
        with Ns3Simulation(cfg) as sim:
            for t in range(20):
                report = sim.channel_report()
                snrs.append(report.snr_db)
                distances.append(report.records["distance_m"])
                sim.execute(RoundPlan.equal_shares(t, [True] + [False] * 11, 1, 1, deadline_s=1.0,
                                                   compute_time_s=1.0))
        assert distances[-1][0] > distances[0][0] + 3.0  # the walkers did move
        return np.abs(np.diff(np.array(snrs), axis=0)).max(axis=0)

    once, redrawn = jumps(0.0), jumps(5.0)
    assert once.max() < 1.0
    assert redrawn[6:].max() == 0.0 and redrawn[:6].max() > 3.0


def test_ideal_fdma_splits_the_downlink_equally_whatever_the_uplink_shares(ns3_binary, tmp_path):
    """The plan's shares are the uplink's; two devices at the same distance then get the same
    downlink rate (each owns 1/K of the downlink band) although their uplink shares are 9:1."""
    cfg = fixed_cell(tmp_path, "ideal-fdma", [100.0, 100.0])
    plan = RoundPlan.lumped(0, np.array([True, True]), np.array([0.9, 0.1]), np.full(2, 200_000),
                            np.full(2, 2_000_000), np.zeros(2), deadline_s=30.0)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        rec = sim.execute(plan).records
    up, down = rec["uplink_transfer_s"], rec["downlink_transfer_s"]
    assert up[1] > 5 * up[0]  # the uplink follows the shares
    assert down[1] == pytest.approx(down[0], rel=0.05)


def test_ideal_fdma_gives_a_narrow_share_the_band_it_asked_for(ns3_binary, tmp_path):
    """Shares become whole bins within 0.001 of the band: two nearly equal narrow shares get
    nearly equal rates (rounding each down to 1/200 of the band made them differ by a fifth)."""
    cfg = fixed_cell(tmp_path, "ideal-fdma", [100.0, 100.0])
    shares = np.array([0.0295, 0.0305])
    plan = RoundPlan.lumped(0, np.array([True, True]), shares, np.full(2, 500_000), np.full(2, 1000),
                            np.zeros(2), deadline_s=60.0)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        up = sim.execute(plan).records["uplink_transfer_s"]
    assert up[0] / up[1] == pytest.approx(shares[1] / shares[0], rel=0.04)


def test_lte_delivers_every_round_as_devices_come_and_go(ns3_binary, tmp_path, monkeypatch):
    """Ten walking devices, rounds that schedule changing subsets: every scheduled device's 900 kB
    up and 700 kB down arrive within 10 s. With HARQ, RLC STATUS PDUs arrive out of order here, and
    ns-3's RLC AM, given a stale one, stalled device 6 for good from round 4 on (30 of 32 delivered)
    until the scenario dropped them; the log shows that it had to."""
    monkeypatch.setenv("NS_LOG", "LteStaleStatusFilter=level_info")
    log = tmp_path / "ns3.log"
    subsets = [list(range(10)), [0, 1, 2, 6], [0, 1, 4, 7, 8], [0, 1, 2, 3], [5, 6, 7], [1, 2, 3, 4, 5, 6]]
    with Ns3Simulation(ScenarioConfig(devices=10, radio="lte", rng_run=2), log_path=log) as sim:
        for t, subset in enumerate(subsets):
            sim.channel_report()
            scheduled = np.isin(np.arange(10), subset)
            plan = RoundPlan.equal_shares(t, scheduled, 900_000, 700_000, deadline_s=10.0, server_time_s=0.03)
            assert sim.execute(plan).delivered[scheduled].all(), t
    assert "stale STATUS dropped" in log.read_text()


def test_lte_harq_never_resends_on_a_block_a_new_round_gave_to_another_device(ns3_binary):
    """Uploads cut by a 0.5 s deadline leave transport blocks in HARQ when the next round lays the
    blocks out anew. A retransmission on the old block would overlap another device's new one, which
    ns-3's LTE PHY aborts on (it did here, in round 2); it is left to RLC AM instead."""
    shares = np.array([0.1, 0.2, 0.3, 0.4])
    with Ns3Simulation(ScenarioConfig(devices=4, radio="lte", rng_run=1)) as sim:
        for t in range(4):
            sim.channel_report()
            plan = RoundPlan.lumped(t, np.ones(4, bool), np.roll(shares, t), np.full(4, 2_000_000),
                                    np.full(4, 20_000), np.zeros(4), deadline_s=0.5)
            assert (sim.execute(plan).records["uplink_delivered_bytes"] > 0).all(), t
