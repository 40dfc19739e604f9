"""The compiled scenario's path loss and noise against the formulas written out from their sources
(3GPP TR 38.901 Table 7.4.1-1 for UMa and UMi street canyon, the macro-cell log-distance model,
thermal noise kT = -174 dBm/Hz), not against the code under test: devices standing at known
distances, no fading, no shadowing, on both radios."""

import math

import numpy as np
import pytest

from cosim.simulator.simulation import Ns3Simulation
from tests.test_ns3_scenario import RADIOS, fixed_cell

pytestmark = pytest.mark.ns3
FC_GHZ = 2.1
H_BS, H_UT = 25.0, 1.5
# both sides of UMa's breakpoint (336 m here); LTE's random access fails beyond about 500 m NLOS
DISTANCES_2D_M = {"ideal-fdma": [20.0, 60.0, 150.0, 400.0, 900.0, 2000.0], "lte": [20.0, 60.0, 150.0, 400.0]}
LIGHT_MPS = 3e8  # TR 38.901's c for the breakpoint distance


def los_db(d2d: float, d3d: float, near: float, fc_coef: float, far_coef: float) -> float:
    """TR 38.901's LOS path loss: `near` + 20·log10(fc), slope fc_coef (22 UMa, 21 UMi) up to
    the breakpoint d'_BP (effective heights h - 1 m), 40 beyond it less far_coef·log10(d'_BP² + Δh²)."""
    bp = 4 * (H_BS - 1.0) * (H_UT - 1.0) * FC_GHZ * 1e9 / LIGHT_MPS
    if d2d <= bp:
        return near + fc_coef * math.log10(d3d) + 20 * math.log10(FC_GHZ)
    beyond = far_coef * math.log10(bp**2 + (H_BS - H_UT) ** 2)
    return near + 40 * math.log10(d3d) + 20 * math.log10(FC_GHZ) - beyond


def uma_db(d2d: float, d3d: float, los: bool) -> float:
    pl_los = los_db(d2d, d3d, near=28.0, fc_coef=22.0, far_coef=9.0)
    nlos = 13.54 + 39.08 * math.log10(d3d) + 20 * math.log10(FC_GHZ) - 0.6 * (H_UT - 1.5)
    return pl_los if los else max(pl_los, nlos)


def umi_db(d2d: float, d3d: float, los: bool) -> float:
    pl_los = los_db(d2d, d3d, near=32.4, fc_coef=21.0, far_coef=9.5)
    nlos = 35.3 * math.log10(d3d) + 22.4 + 21.3 * math.log10(FC_GHZ) - 0.3 * (H_UT - 1.5)
    return pl_los if los else max(pl_los, nlos)


def log_distance_db(d2d: float, d3d: float, los: bool) -> float:
    return 128.1 + 37.6 * math.log10(d3d / 1000.0)


REFERENCES = {"uma": uma_db, "umi": umi_db, "log-distance": log_distance_db}


@pytest.mark.parametrize("radio", RADIOS)
@pytest.mark.parametrize("propagation", list(REFERENCES))
def test_path_loss_follows_the_reference_formula(ns3_binary, tmp_path, radio, propagation):
    d2d = DISTANCES_2D_M[radio]
    cfg = fixed_cell(tmp_path, radio, d2d, propagation=propagation, frequency_hz=FC_GHZ * 1e9)
    with Ns3Simulation(cfg) as sim:
        rec = sim.channel_report().records
    d3d = np.hypot(d2d, H_BS - H_UT)
    assert rec["distance_m"] == pytest.approx(d3d, rel=1e-9)
    if propagation == "log-distance":
        assert (rec["los_state"] == 2).all()
    losses = rec["tx_power_dbm"] - rec["rx_power_dbm"]
    expected = [REFERENCES[propagation](d2, d3, los == 1)
                for d2, d3, los in zip(d2d, d3d, rec["los_state"], strict=True)]
    # ideal-fdma reads the sounding's power exactly; LTE derives it from the SRS SINR it reports
    assert losses == pytest.approx(expected, abs=0.01 if radio == "ideal-fdma" else 0.05)


@pytest.mark.parametrize("radio", RADIOS)
def test_the_reported_snr_is_received_power_over_thermal_noise_in_the_whole_band(ns3_binary, tmp_path, radio):
    """-174 dBm/Hz + the base station's noise figure + 10·log10(B): the same quantity on both radios."""
    cfg = fixed_cell(tmp_path, radio, [80.0, 200.0], bs_noise_figure_db=7.0, bandwidth_hz=10e6)
    with Ns3Simulation(cfg) as sim:
        report = sim.channel_report()
    noise_dbm = -174.0 + 7.0 + 10 * math.log10(10e6)
    assert report.records["snr_db"] == pytest.approx(report.records["rx_power_dbm"] - noise_dbm, abs=0.01)
    assert report.noise_psd_dbm_hz == pytest.approx(-167.0)
