"""Scenario settings are checked before any process starts."""

import pytest

from cosim.simulator.scenario import ConfigError, ScenarioConfig


@pytest.mark.parametrize("kw, msg", [
    (dict(devices=0), "scenario.devices=0"),
    (dict(radio="wimax"), "one of lte, ideal-fdma"),
    (dict(mobility="teleport"), "mobility"),
    (dict(radio="lte", bandwidth_hz=7e6), "LTE supports"),
    (dict(min_distance_m=300.0), "min_distance_m"),
    (dict(speed_min_mps=3.0, speed_max_mps=1.0), "speed_min_mps"),
    (dict(frequency_hz=float("nan")), "finite"),
    (dict(mobility="ns2"), "trace is needed"),
    (dict(mobility="ns2", trace_file="/nonexistent.ns2"), "does not exist"),
])
def test_invalid_settings_name_key_and_fix(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        ScenarioConfig(**kw)


def test_flags_follow_ns3_conventions():
    args = ScenarioConfig(devices=3, rng_run=7, shadowing=False).to_args()
    assert "--devices=3" in args and "--RngRun=7" in args and "--shadowing=false" in args
