"""Fast fading with memory on the real compiled scenario: a channel report predicts the transfer
that follows it, and the fading decorrelates with the distance a device moves as a Doppler
spectrum says (Clarke's model: the complex gain's autocorrelation is J0(2π f_d Δt), so the
received power's normalised autocovariance is J0(2π f_d Δt)²)."""

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.special import j0

from cosim.simulator.scenario import ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation
from cosim.wire.messages import RoundPlan
from tests.conftest import write_trace
from tests.test_ns3_scenario import RADIOS, fixed_cell

pytestmark = pytest.mark.ns3
CARRIER_HZ = 2.1e9
WAVELENGTH_M = 299_792_458.0 / CARRIER_HZ


@pytest.mark.parametrize("radio", RADIOS)
def test_a_standing_device_meets_the_fade_its_report_measured(ns3_binary, tmp_path, radio):
    """The transfer's mean SINR is the report's SNR (over the whole band B) times B over the band
    the device was granted: the same power on less noise. To 0.1 dB; on LTE to 0.3 dB, the step of
    the uplink SINR its MAC reports, where a grant is resource blocks of 180 kHz (100 in 20 MHz)."""
    cfg = fixed_cell(tmp_path, radio, [90.0, 140.0, 200.0], fading="rayleigh")
    shares = np.array([0.5, 0.3, 0.2])
    plan = RoundPlan.lumped(0, np.ones(3, bool), shares, np.full(3, 200_000), np.full(3, 1000), np.zeros(3),
                            deadline_s=30.0)
    with Ns3Simulation(cfg) as sim:
        report = sim.channel_report()
        rec = sim.execute(plan).records
        again = sim.channel_report()
    granted_hz = rec["granted_share"] * (20e6 if radio == "ideal-fdma" else 100 * 180e3)
    expected = report.snr_db + 10 * np.log10(20e6 / granted_hz)
    assert rec["mean_sinr_db"] == pytest.approx(expected, abs=0.1 if radio == "ideal-fdma" else 0.3)
    assert again.snr_db == pytest.approx(report.snr_db, abs=0.05)


def test_a_per_packet_draw_does_not_follow_the_report(ns3_binary, tmp_path):
    cfg = fixed_cell(tmp_path, "ideal-fdma", [90.0, 140.0, 200.0, 120.0], fading="rayleigh",
                     fading_process="per-packet")
    with Ns3Simulation(cfg) as sim:
        reports = [sim.channel_report().snr_db for _ in range(3)]
    assert np.abs(np.diff(reports, axis=0)).max() > 3.0


def movers(tmp_path, radio: str, devices: int, speed_mps: float) -> ScenarioConfig:
    """Devices on a circle of 100 m, each walking straight along its tangent at one speed."""
    angles = np.linspace(0, 2 * np.pi, devices, endpoint=False)
    start = {i: (100 * math.cos(a), 100 * math.sin(a)) for i, a in enumerate(angles)}
    moves = [(0.0, i, x - 1000 * math.sin(a), y + 1000 * math.cos(a), speed_mps)
             for i, ((x, y), a) in enumerate(zip(start.values(), angles, strict=True))]
    trace = write_trace(tmp_path / f"movers-{speed_mps}.ns2", start, moves)
    return ScenarioConfig(devices=devices, radio=radio, mobility="ns2", trace_file=trace, fading="rayleigh",
                          propagation="log-distance", shadowing=False, frequency_hz=CARRIER_HZ)


def log_distance_loss_db(distance_m: np.ndarray) -> np.ndarray:
    """The macro-cell log-distance model, 128.1 + 37.6·log10(d / km)."""
    return 128.1 + 37.6 * np.log10(distance_m / 1000.0)


def fading_pairs(sim: Ns3Simulation, devices: int, lag_s: float, measuring_s: float, gap_s: float,
                 repeats: int):
    """Every device's fading power gain (received over transmitted power and path gain, linear)
    at t and at t + lag_s, and the exact lags; a report takes measuring_s of simulated time (each
    device sounds at the same point of it); a round of gap_s between repeats moves the devices
    several wavelengths on, so the repeats are nearly independent samples."""
    def wait(t: int, seconds: float) -> None:  # a round of nothing but one device's computing
        scheduled = np.zeros(devices, bool)
        scheduled[0] = True
        sim.execute(RoundPlan.lumped(t, scheduled, scheduled * 1.0, np.zeros(devices), np.zeros(devices),
                                     np.full(devices, seconds), deadline_s=seconds + 1.0))

    def gains(report) -> np.ndarray:
        rec = report.records
        path_gain_db = rec["tx_power_dbm"] - log_distance_loss_db(rec["distance_m"])
        return 10 ** ((rec["rx_power_dbm"] - path_gain_db) / 10)

    first, second, lags = [], [], []
    for r in range(repeats):
        a = sim.channel_report()
        wait(2 * r, max(lag_s - measuring_s, 1e-6))
        b = sim.channel_report()
        wait(2 * r + 1, gap_s)
        first.append(gains(a))
        second.append(gains(b))
        lags.append(b.sim_time_s - a.sim_time_s)
    return np.concatenate(first), np.concatenate(second), np.array(lags)


# radio, devices, one report's simulated time (ideal-fdma: 100 µs a device; lte: one SRS period,
# 40 ms below 40 devices), speed, lags, repeats; the estimate's spread is about 0.04 to 0.05
DOPPLER_CASES = [
    ("ideal-fdma", 40, 40 * 1e-4, 1.0, (0.0182, 0.0364, 0.0546), 30),
    ("ideal-fdma", 40, 40 * 1e-4, 4.0, (0.0046, 0.0091, 0.0137), 30),
    ("lte", 20, 0.04, 0.5, (0.04, 0.08, 0.12), 20),
    ("lte", 20, 0.04, 1.0, (0.04, 0.08), 20),
]


@pytest.mark.parametrize("radio, devices, measuring_s, speed_mps, lags_s, repeats", DOPPLER_CASES)
def test_received_power_decorrelates_as_the_doppler_spectrum_says(ns3_binary, tmp_path, radio, devices,
                                                                  measuring_s, speed_mps, lags_s, repeats):
    doppler_hz = speed_mps / WAVELENGTH_M
    with Ns3Simulation(movers(tmp_path, radio, devices, speed_mps)) as sim:
        for lag_s in lags_s:
            # 0.5 m between repeats, 3.5 wavelengths: J0(2π·3.5)² < 0.03
            p1, p2, lags = fading_pairs(sim, devices, lag_s, measuring_s, 0.5 / speed_mps, repeats)
            assert np.concatenate([p1, p2]).mean() == pytest.approx(1.0, abs=0.15)  # unit-mean fading
            expected = j0(2 * np.pi * doppler_hz * lags.mean()) ** 2
            measured = np.corrcoef(p1, p2)[0, 1]
            assert measured == pytest.approx(expected, abs=0.12), (radio, speed_mps, lag_s, measured)


def test_ideal_fdma_link_adaptation_follows_a_walkers_fading(ns3_binary, tmp_path):
    """Each packet's rate follows the SINR the last one met: at walking speed the fading hardly
    changes from one packet to the next (coherence about 20 ms), so few packets are lost; drawn
    anew for every packet the fading defeats the feedback."""
    def loss(process: str) -> float:
        cfg = replace(movers(tmp_path, "ideal-fdma", 10, 1.5), propagation="uma", fading_process=process)
        plan = RoundPlan.equal_shares(0, [True] * 10, 1_000_000, 100_000, deadline_s=60.0)
        with Ns3Simulation(cfg) as sim:
            sim.channel_report()
            rec = sim.execute(plan).records
        assert rec["deadline_met"].all()
        return rec["packets_lost"].sum() / rec["packets_sent"].sum()

    walking, drawn = loss("doppler"), loss("per-packet")
    assert walking < 0.03 and drawn > 5 * walking, (walking, drawn)
