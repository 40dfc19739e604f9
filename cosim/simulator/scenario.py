"""Typed description of the ns-3 scenario, validated at construction, turned into its flags."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

RADIOS = ("lte", "ideal-fdma")
MOBILITY = ("constant", "random-walk", "random-waypoint", "gauss-markov", "ns2")
PROPAGATION = ("uma", "umi", "log-distance")
FADING = ("rayleigh", "nakagami", "none")
FADING_PROCESSES = ("doppler", "per-packet")
LTE_BANDWIDTHS_HZ = (1.4e6, 3e6, 5e6, 10e6, 15e6, 20e6)
# an ns-3 attribute default for the scenario's command line; it wins over the project's defaults
NS3_ATTRIBUTE = re.compile(r"ns3::[A-Za-z][A-Za-z0-9_]*(::[A-Za-z][A-Za-z0-9_]*)+=[^\s]+")


class ConfigError(ValueError):
    """An invalid setting: the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class ScenarioConfig:
    """Every knob of ``cosim-scenario``; field names carry units, defaults follow docs/design.md."""

    devices: int = 10
    radio: str = "ideal-fdma"
    mobility: str = "random-walk"
    trace_file: Path | None = None
    activity_file: Path | None = None
    cell_radius_m: float = 250.0
    min_distance_m: float = 10.0
    speed_min_mps: float = 0.5
    speed_max_mps: float = 1.5
    propagation: str = "uma"
    shadowing: bool = True
    shadowing_sigma_db: float = 8.0
    fading: str = "rayleigh"
    nakagami_m: float = 1.0
    fading_process: str = "doppler"
    los_correlation_m: float = 50.0
    frequency_hz: float = 2.1e9
    bandwidth_hz: float = 20e6
    ue_tx_power_dbm: float = 23.0
    bs_tx_power_dbm: float = 46.0
    bs_noise_figure_db: float = 5.0
    ue_noise_figure_db: float = 9.0
    bs_height_m: float = 25.0
    ue_height_m: float = 1.5
    packet_bytes: int = 1400
    link_margin_db: float = 3.0
    max_spectral_efficiency: float | None = None
    fdma_bins: int = 1000
    lte_bler_target: float = 0.1
    lte_harq: bool = True
    lte_power_control: bool = False
    ns3_attributes: tuple[str, ...] = ()
    rng_seed: int = 1
    rng_run: int = 1
    flow_monitor_xml: Path | None = None

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"scenario.{key}={getattr(self, key)!r} is invalid: {allowed}")

        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"scenario.{f.name}={value!r} is invalid: must be a finite number")
        need(isinstance(self.devices, int) and 1 <= self.devices <= 10_000, "devices",
             "an integer from 1 to 10000")
        need(self.radio in RADIOS, "radio", f"one of {', '.join(RADIOS)}")
        need(self.mobility in MOBILITY, "mobility", f"one of {', '.join(MOBILITY)}")
        need(self.propagation in PROPAGATION, "propagation", f"one of {', '.join(PROPAGATION)}")
        need(self.fading in FADING, "fading", f"one of {', '.join(FADING)}")
        need(self.cell_radius_m > 0, "cell_radius_m", "must be > 0")
        need(0 <= self.min_distance_m < self.cell_radius_m, "min_distance_m",
             "must be >= 0 and below cell_radius_m")
        need(0 <= self.speed_min_mps <= self.speed_max_mps, "speed_min_mps",
             "must be >= 0 and <= speed_max_mps")
        need(self.nakagami_m >= 0.5, "nakagami_m", "must be >= 0.5")
        need(self.fading_process in FADING_PROCESSES, "fading_process",
             f"one of {', '.join(FADING_PROCESSES)}")
        need(self.fading_process != "doppler" or self.fading != "nakagami"
             or float(2 * self.nakagami_m).is_integer(), "nakagami_m",
             "with fading_process=doppler, 2 × nakagami_m must be a whole number (0.5, 1, 1.5, ...)")
        need(self.los_correlation_m >= 0, "los_correlation_m",
             "must be >= 0 m (0: each link's LOS state is drawn once)")
        need(self.frequency_hz > 0, "frequency_hz", "must be > 0")
        need(self.bandwidth_hz > 0, "bandwidth_hz", "must be > 0")
        if self.radio == "lte":
            need(any(abs(self.bandwidth_hz - b) < 1 for b in LTE_BANDWIDTHS_HZ), "bandwidth_hz",
                 "LTE supports 1.4, 3, 5, 10, 15 or 20 MHz")
        need(self.packet_bytes >= 64, "packet_bytes", "must be >= 64")
        need(0 <= self.link_margin_db <= 30, "link_margin_db", "must be in [0, 30] dB")
        need(0.001 <= self.lte_bler_target <= 0.5, "lte_bler_target", "a block error rate in [0.001, 0.5]")
        need(self.max_spectral_efficiency is None or self.max_spectral_efficiency > 0,
             "max_spectral_efficiency", "must be > 0 bit/s/Hz (or null for no cap)")
        need(isinstance(self.fdma_bins, int) and self.devices <= self.fdma_bins <= 100_000, "fdma_bins",
             "an integer from scenario.devices (each device owns a downlink part) to 100000")
        need(self.rng_seed >= 1, "rng_seed", "must be >= 1")
        need(self.rng_run >= 1, "rng_run", "must be >= 1")
        object.__setattr__(self, "ns3_attributes", tuple(self.ns3_attributes))
        for item in self.ns3_attributes:
            need(isinstance(item, str) and NS3_ATTRIBUTE.fullmatch(item) is not None, "ns3_attributes",
                 f"{item!r} is not of the form ns3::Class::Attribute=value")
        if self.propagation in ("uma", "umi"):  # 3GPP TR 38.901 Table 7.4.1-1
            need(1.5 <= self.ue_height_m <= 22.5, "ue_height_m",
                 f"the {self.propagation} path loss model covers devices 1.5 to 22.5 m high")
        if self.mobility == "ns2":
            need(self.trace_file is not None, "trace_file", "an ns-2 trace is needed for mobility=ns2")
            need(Path(self.trace_file).is_file(), "trace_file", "file does not exist")
        if self.activity_file is not None:
            need(self.mobility == "ns2", "activity_file", "goes with mobility=ns2 (it times a trace's nodes)")
            need(Path(self.activity_file).is_file(), "activity_file", "file does not exist")

    def to_args(self) -> list[str]:
        """Command-line flags of ``cosim-scenario`` for this configuration."""
        flags = {
            "devices": self.devices,
            "radio": self.radio,
            "mobility": self.mobility,
            "cellRadius": self.cell_radius_m,
            "minDistance": self.min_distance_m,
            "speedMin": self.speed_min_mps,
            "speedMax": self.speed_max_mps,
            "propagation": self.propagation,
            "shadowing": "true" if self.shadowing else "false",
            "shadowingSigma": self.shadowing_sigma_db,
            "fading": self.fading,
            "nakagamiM": self.nakagami_m,
            "fadingProcess": self.fading_process,
            "losCorrelation": self.los_correlation_m,
            "frequency": self.frequency_hz,
            "bandwidth": self.bandwidth_hz,
            "ueTxPower": self.ue_tx_power_dbm,
            "bsTxPower": self.bs_tx_power_dbm,
            "bsNoiseFigure": self.bs_noise_figure_db,
            "ueNoiseFigure": self.ue_noise_figure_db,
            "bsHeight": self.bs_height_m,
            "ueHeight": self.ue_height_m,
            "packetBytes": self.packet_bytes,
            "linkMargin": self.link_margin_db,
            "maxSpectralEfficiency": self.max_spectral_efficiency or 0.0,
            "fdmaBins": self.fdma_bins,
            "lteBlerTarget": self.lte_bler_target,
            "lteHarq": "true" if self.lte_harq else "false",
            "ltePowerControl": "true" if self.lte_power_control else "false",
            "RngSeed": self.rng_seed,
            "RngRun": self.rng_run,
        }
        if self.trace_file is not None:
            flags["traceFile"] = Path(self.trace_file).resolve()
        if self.activity_file is not None:
            flags["activityFile"] = Path(self.activity_file).resolve()
        if self.flow_monitor_xml is not None:
            flags["flowMonitor"] = Path(self.flow_monitor_xml).resolve()
        args = [f"--{k}={v!r}" if isinstance(v, float) else f"--{k}={v}" for k, v in flags.items()]
        return args + [f"--{item}" for item in self.ns3_attributes]

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items()}
