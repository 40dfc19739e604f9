"""SUMO traces: real SUMO runs, the FCD -> ns-2 converter, and the real ns-3 scenario following them."""

import math
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from typer.testing import CliRunner

from cosim.cli.sumo import sumo_app
from cosim.simulator import sumo
from cosim.simulator.scenario import ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation
from cosim.wire.messages import RoundPlan

WARMUP_S = 20.0


def fcd_positions(path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Read SUMO's FCD directly (not through cosim.simulator.sumo): vehicle -> (t, x, y)."""
    samples: dict[str, list[tuple[float, float, float]]] = {}
    for step in ET.parse(path).getroot().iter("timestep"):
        for v in step.iter("vehicle"):
            samples.setdefault(v.get("id"), []).append(
                (float(step.get("time")), float(v.get("x")), float(v.get("y"))))
    return {vid: tuple(np.array(c) for c in zip(*s, strict=True)) for vid, s in samples.items()}


@pytest.mark.ns3
def test_ns3_devices_follow_the_sumo_fcd(ns3_binary, tmp_path):
    k = 3
    result = sumo.generate_trace(tmp_path / "cars.ns2", k, duration_s=60, seed=3, warmup_s=WARMUP_S,
                                 fcd_out=tmp_path / "fcd.xml")
    assert result.trace.vehicles == ["dev0", "dev1", "dev2"]
    fcd = fcd_positions(result.fcd_path)
    cfg = ScenarioConfig(devices=k, radio="ideal-fdma", mobility="ns2", trace_file=result.path,
                         activity_file=sumo.activity_path(result.path), fading="none", shadowing=False)
    # a round lasts until its deadline when device 0 cannot finish 1 GB: 7.3 s of simulated time
    # per round, so reports land between FCD samples (1 s apart) and not on them
    hog = RoundPlan.lumped(0, np.array([True] + [False] * (k - 1)), np.array([1.0] + [0.0] * (k - 1)),
                           np.full(k, 10**9), np.full(k, 1000), np.zeros(k), deadline_s=7.3)
    reports = []
    with Ns3Simulation(cfg, binary=ns3_binary) as sim:
        reports.append(sim.channel_report())
        for _ in range(6):
            sim.execute(hog)
            reports.append(sim.channel_report())

    times = [r.sim_time_s for r in reports]
    assert times[-1] > 40 and all(b - a > 7 for a, b in zip(times, times[1:], strict=False)), times
    moved = 0.0
    for r in reports:
        for node, vid in enumerate(result.trace.vehicles):
            t, x, y = fcd[vid]
            sumo_t = WARMUP_S + r.sim_time_s  # trace time 0 is SUMO time WARMUP_S
            want = (np.interp(sumo_t, t, x), np.interp(sumo_t, t, y))  # the shipped grid's (0, 0) is the BS
            rec = r.records[node]
            # the trace carries SUMO's cm coordinates exactly and speeds to 1 um/s, ns-3 keeps time in
            # ns: any gap beyond 1 mm is a conversion error (a one-sample lag would be metres off)
            assert (rec["x_m"], rec["y_m"]) == pytest.approx(want, abs=1e-3), (node, r.sim_time_s)
            assert rec["z_m"] == pytest.approx(1.5)
            assert rec["present"] == 1  # a car waiting at a light when the trace ends is still there
            assert rec["distance_m"] == pytest.approx(math.hypot(*want, 25.0 - 1.5), abs=1e-3)
    for node in range(k):
        first, last = reports[0].records[node], reports[-1].records[node]
        moved += math.hypot(last["x_m"] - first["x_m"], last["y_m"] - first["y_m"])
    assert moved > 50, "the cars hardly moved: the comparison above proves little"


def test_same_seed_gives_the_same_trace_and_another_seed_does_not(tmp_path):
    def trace(seed, name):
        return sumo.generate_trace(tmp_path / name, 2, duration_s=20, seed=seed, warmup_s=5).path.read_text()

    a, b, c = trace(7, "a.ns2"), trace(7, "b.ns2"), trace(8, "c.ns2")
    assert a == b
    assert a != c
    assert a.count('setdest') > 10


HAND_FCD = """<?xml version="1.0" encoding="UTF-8"?>
<fcd-export>
    <timestep time="10.00">
        <vehicle id="v10" x="99.50" y="50.00" speed="0.00"/>
        <vehicle id="v2" x="130.00" y="90.00" speed="0.00"/>
    </timestep>
    <timestep time="11.00">
        <vehicle id="v10" x="102.50" y="54.00" speed="5.00"/>
        <vehicle id="v2" x="130.00" y="90.00" speed="0.00"/>
        <vehicle id="late" x="0.00" y="0.00" speed="0.00"/>
    </timestep>
    <timestep time="12.50">
        <vehicle id="v10" x="102.50" y="54.00" speed="0.00"/>
        <vehicle id="v2" x="127.00" y="90.00" speed="2.00"/>
        <vehicle id="late" x="1.00" y="0.00" speed="1.00"/>
    </timestep>
</fcd-export>
"""


def test_converter_writes_the_exact_ns2_lines(tmp_path):
    path = tmp_path / "hand.fcd.xml"
    path.write_text(HAND_FCD)
    trace = sumo.fcd_to_ns2(path, 2, origin_xy=(100.0, 50.0), z_m=1.5)
    # natural id order (v2 before v10); "late" misses the first timestep; v2 stands still in
    # the first second and v10 in the last 1.5 s: no line for them; times start at 0
    assert trace.vehicles == ["v2", "v10"]
    assert trace.text.splitlines() == [
        "# node 0 = SUMO vehicle v2",
        "# node 1 = SUMO vehicle v10",
        "$node_(0) set X_ 30",
        "$node_(0) set Y_ 40",
        "$node_(0) set Z_ 1.5",
        "$node_(1) set X_ -0.5",
        "$node_(1) set Y_ 0",
        "$node_(1) set Z_ 1.5",
        '$ns_ at 0 "$node_(1) setdest 2.5 4 5"',
        '$ns_ at 1 "$node_(0) setdest 27 40 2"',
    ]
    assert trace.duration_s == 2.5 and trace.path_length_m == [3.0, 5.0]
    later = sumo.fcd_to_ns2(path, 1, start_s=11.0, vehicles=["late"], z_m=2.0)
    assert later.text.splitlines()[1:] == [
        "$node_(0) set X_ 0", "$node_(0) set Y_ 0", "$node_(0) set Z_ 2",
        '$ns_ at 0 "$node_(0) setdest 1 0 0.666667"']


@pytest.mark.parametrize(("content", "message"), [
    (None, r"FCD file .*nope\.xml does not exist"),
    ("", r"FCD file .*bad\.xml is empty"),
    ('<fcd-export><timestep time="0">', r"bad\.xml is not well-formed XML"),
    ("<routes/>", r"bad\.xml is not a SUMO FCD file: its root element is <routes>"),
    ('<fcd-export><timestep time="0"/></fcd-export>', r"bad\.xml holds no vehicles"),
    ('<fcd-export><timestep time="0"><vehicle id="a" x="abc" y="1"/></timestep></fcd-export>',
     r"bad\.xml: vehicle a at 0 s has no numeric 'x' \(got 'abc'\)"),
    (HAND_FCD, r"bad\.xml: only 2 of its 3 vehicles are present in every timestep of 10\.\.12\.5 s, "
               r"3 are needed"),
])
def test_bad_fcd_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / ("nope.xml" if content is None else "bad.xml")
    if content is not None:
        path.write_text(content)
    with pytest.raises(sumo.FcdError, match=message) as err:
        sumo.fcd_to_ns2(path, 3)
    assert "\n" not in str(err.value)


def test_cli_makes_a_trace_and_reports_errors_in_one_line(tmp_path):
    runner = CliRunner()
    help_text = runner.invoke(sumo_app, ["trace", "--help"], terminal_width=120).output
    assert "grid.net.xml" in help_text and "scenario.trace_file=trace.ns2" in help_text
    out = tmp_path / "cli.ns2"
    ok = runner.invoke(sumo_app, ["trace", "--devices", "2", "--duration-s", "10", "--warmup-s", "0",
                                       "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert f"scenario.trace_file={out} scenario.activity_file={out}.activity scenario.devices=2" in ok.output
    assert (tmp_path / "cli.ns2.activity").read_text().count("start") == 2
    assert out.read_text().count("set Z_ 1.5") == 2
    bad = runner.invoke(sumo_app, ["convert", str(tmp_path / "missing.xml"), "--out", str(out)])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    odd = runner.invoke(sumo_app, ["trace", "--duration-s", "10.5", "--out", str(out)])
    assert odd.exit_code == 2 and "multiple of step_s" in odd.output


def test_shipped_network_is_what_netgenerate_makes_and_centred_on_the_base_station(tmp_path):
    subprocess.run([str(sumo.sumo_binary("netgenerate")), *sumo.NETGENERATE_ARGS], cwd=tmp_path,
                   check=True, capture_output=True)

    def body(path):  # without the header comment (date, options)
        text = path.read_text()
        return text[text.index("<net "):]

    assert body(tmp_path / "grid.net.xml") == body(sumo.DEFAULT_NET)
    assert sumo.DEFAULT_NET.stat().st_size < 64_000
    net = sumo.load_network(sumo.DEFAULT_NET)
    assert sumo.network_center(net) == (0.0, 0.0)
    assert net.getNode("C2").getCoord() == (0.0, 0.0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"net": "/nonexistent/city.net.xml"}, r"SUMO network /nonexistent/city\.net\.xml does not exist"),
    ({"duration_s": 2.5}, r"duration_s=2\.5 s must be a non-negative multiple of step_s=1 s"),
    ({"devices": 2600, "duration_s": 1.0}, r"SUMO could not keep all 2600 cars on grid\.net\.xml for the "
                                           r"whole trace: \d+ were missing at some time \(dev\d+, .* more\)"),
])
def test_generation_errors_are_one_clear_message(tmp_path, kwargs, message):
    args = {"devices": 2, "duration_s": 10.0, "warmup_s": 0.0, **kwargs}
    with pytest.raises(sumo.SumoError, match=message) as err:
        sumo.generate_trace(tmp_path / "x.ns2", **args)
    assert "\n" not in str(err.value) and not (tmp_path / "x.ns2").exists()
    with pytest.raises(sumo.SumoError, match="`no-such-sumo-tool` was not found"):
        sumo.sumo_binary("no-such-sumo-tool")
