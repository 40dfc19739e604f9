"""Units of a round, on the real compiled scenario: the scheduler's predicted times against what
ns-3 measures, and energy and airtime against formulas written out here (bytes × 8 = bits,
dB → linear, dBm → W), not taken from the code under test."""

import math

import numpy as np
import pytest

from cosim.experiment.runloop import downlink_rate_bps
from cosim.simulator.simulation import Ns3Simulation
from cosim.wire.messages import RoundPlan
from optimizer import RoundInputs
from optimizer.problem import RoundProblem
from tests.test_ns3_scenario import RADIOS, fixed_cell

pytestmark = pytest.mark.ns3

DISTANCES_M = [80.0, 150.0, 240.0]
SHARES = np.array([0.5, 0.3, 0.2])  # whole bins, so the radio enacts them exactly
UPLINK_BYTES, DOWNLINK_BYTES = 300_000, 120_000
# The radio's times differ from the formula by the propagation delay of one packet (< 1 µs) and
# the downlink's whole bins (333 of 1000 for B/3): 0.1 %. 1 % leaves room for nothing else; the
# downlink planned at bytes/rate (without the 8) was 8 times too short, the uplink without the
# link margin 20-40 % too short.
REL_TOL = 0.01


def dbm_to_w(dbm: float) -> float:
    return 10.0 ** ((dbm - 30.0) / 10.0)


def run_round(cfg, shares, uplink_bytes, downlink_bytes):
    k = len(shares)
    plan = RoundPlan.lumped(0, shares > 0, shares, np.full(k, uplink_bytes), np.full(k, downlink_bytes),
                            np.zeros(k), deadline_s=60.0)
    with Ns3Simulation(cfg) as sim:
        report = sim.channel_report()
        outcome = sim.execute(plan)
    assert outcome.delivered[shares > 0].all()
    return report, outcome.records


def test_scheduler_predicts_the_ideal_fdma_round_in_a_static_cell(ns3_binary, tmp_path):
    """No fading, no shadowing, standing devices: what the scheduler plans is what the radio does."""
    cfg = fixed_cell(tmp_path, "ideal-fdma", DISTANCES_M)
    report, rec = run_round(cfg, SHARES, UPLINK_BYTES, DOWNLINK_BYTES)
    inputs = RoundInputs(
        snr_db=report.snr_db, uplink_bytes=UPLINK_BYTES, downlink_bytes=DOWNLINK_BYTES,
        compute_time_s=0.0, downlink_rate_bps=downlink_rate_bps(report, cfg), tx_power_w=dbm_to_w(23.0),
        compute_energy_j=0.0, energy_budget_j=1.0, server_time_s=0.0, deadline_s=60.0,
        bandwidth_hz=report.bandwidth_hz, snr_gap_db=cfg.link_margin_db)
    problem = RoundProblem(inputs, queues=np.zeros(3), weight=1.0)
    idx = np.arange(3)
    planned_down = inputs.fixed_time_s()
    planned_up = problem.delay(idx, SHARES) - planned_down
    assert rec["uplink_transfer_s"] == pytest.approx(planned_up, rel=REL_TOL)
    assert rec["downlink_transfer_s"] == pytest.approx(planned_down, rel=REL_TOL)
    assert rec["completion_time_s"] == pytest.approx(planned_up + planned_down, rel=REL_TOL)
    # the scheduler's predicted energy is the radio's: P × the uplink's airtime
    assert rec["tx_energy_j"] == pytest.approx(problem.energy(idx, SHARES), rel=REL_TOL)


def test_ideal_fdma_airtime_is_bits_over_the_link_adapted_rate(ns3_binary, tmp_path):
    """airtime = 8·bytes / (log2(1 + SNR_b / margin) · b·B), SNR_b the reported full-band SNR over
    the share b; energy = P × airtime with P = 23 dBm = 0.1995 W."""
    cfg = fixed_cell(tmp_path, "ideal-fdma", DISTANCES_M)
    report, rec = run_round(cfg, SHARES, UPLINK_BYTES, DOWNLINK_BYTES)
    bandwidth_hz = 20e6
    assert report.bandwidth_hz == bandwidth_hz
    snr_full = 10.0 ** (report.snr_db / 10.0)
    margin = 10.0 ** (3.0 / 10.0)
    efficiency = np.log2(1.0 + snr_full / SHARES / margin)  # bit/s/Hz on the share's band
    airtime_s = UPLINK_BYTES * 8 / (efficiency * SHARES * bandwidth_hz)
    assert rec["airtime_s"] == pytest.approx(airtime_s, rel=1e-6)
    assert rec["packets_sent"].tolist() == [math.ceil(UPLINK_BYTES / 1400)] * 3  # no loss without fading
    assert rec["tx_energy_j"] == pytest.approx(0.19952623 * airtime_s, rel=1e-6)


def test_spectral_efficiency_cap_binds_where_the_snr_would_exceed_it(ns3_binary, tmp_path):
    cfg = fixed_cell(tmp_path, "ideal-fdma", DISTANCES_M, max_spectral_efficiency=4.0)
    report, rec = run_round(cfg, SHARES, UPLINK_BYTES, DOWNLINK_BYTES)
    uncapped = np.log2(1.0 + 10.0 ** ((report.snr_db - 3.0) / 10.0) / SHARES)
    efficiency = np.minimum(uncapped, 4.0)
    assert uncapped[0] > 4.0  # the near device is capped
    assert rec["airtime_s"] == pytest.approx(UPLINK_BYTES * 8 / (efficiency * SHARES * 20e6), rel=1e-6)


def test_ideal_fdma_downlink_part_is_one_kth_whoever_is_scheduled(ns3_binary, tmp_path):
    """One of four devices scheduled: its downlink runs on B/4, as the scheduler plans."""
    cfg = fixed_cell(tmp_path, "ideal-fdma", [120.0, 100.0, 100.0, 100.0])
    shares = np.array([0.4, 0.0, 0.0, 0.0])
    report, rec = run_round(cfg, shares, 50_000, 400_000)
    snr_dl_db = report.snr_db[0] + (46.0 - 23.0) - (9.0 - 5.0)  # BS power and device noise figure
    rate_bps = 20e6 / 4 * math.log2(1.0 + 10.0 ** ((snr_dl_db - 3.0) / 10.0))
    assert rec["downlink_transfer_s"][0] == pytest.approx(400_000 * 8 / rate_bps, rel=REL_TOL)


@pytest.mark.parametrize("radio", RADIOS)
def test_transmit_energy_is_power_times_airtime(ns3_binary, tmp_path, radio):
    cfg = fixed_cell(tmp_path, radio, DISTANCES_M, ue_tx_power_dbm=20.0)
    _, rec = run_round(cfg, SHARES, UPLINK_BYTES, DOWNLINK_BYTES)
    assert (rec["airtime_s"] > 0).all()
    assert rec["tx_energy_j"] == pytest.approx(dbm_to_w(20.0) * rec["airtime_s"], rel=1e-9)
    assert dbm_to_w(20.0) == pytest.approx(0.1, rel=1e-12)
