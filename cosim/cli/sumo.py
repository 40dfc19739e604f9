"""``cosim sumo``: ns-2 mobility traces from SUMO (cosim/simulator/sumo.py does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cosim.cli.terminal import fail
from cosim.simulator.sumo import DEFAULT_NET, SumoError, activity_path, fcd_to_ns2, fmt, generate_trace

sumo_app = typer.Typer(
    help="Vehicular mobility from SUMO: ns-2 traces for `scenario.mobility=ns2`.",
    no_args_is_help=True)


TRACE_HELP = """Drive DEVICES cars through a road network with SUMO and write their
motion as an ns-2 mobility trace for the ns-3 scenario (--mobility=ns2).

The default network, ns3_scenarios/sumo/grid.net.xml, is a 1 km x 1 km grid
of 250 m blocks: one lane each way, limit 50 km/h (13.9 m/s), traffic lights
on the 9 inner junctions. The base station stands on the central junction,
so devices are 0 to about 710 m away (cell_radius_m does not apply to
traces). Each car drives a seeded random walk (a random turn at every
junction) and wants 0.8 to 1.2 times the limit (SUMO speedFactor
normc(1,0.1,0.8,1.2)); with the traffic lights they average about 9 m/s.
The same DEVICES cars stay on the road all along: node i is car dev<i>.

SUMO first runs --warmup-s seconds (cars spread and reach speed); the end
of the warm-up is time 0 of the trace and of ns-3. Beside the trace goes
OUT.activity (SUMO's ns2activity format): every car is in the scenario from
0 to the trace's end and absent after it, where no policy can schedule it;
make the trace at least as long as the simulated time of the run (about
rounds x deadline_s). The same options give the same files.

\b
Example (the default preset has 10 devices; otherwise add
scenario.devices=K to match --devices):
  cosim sumo trace --devices 10 --duration-s 600 --seed 1 --out trace.ns2
  cosim run default scenario.mobility=ns2 scenario.trace_file=trace.ns2
      scenario.activity_file=trace.ns2.activity
"""


@sumo_app.command("trace", help=TRACE_HELP)
def trace_cmd(
    devices: Annotated[int, typer.Option(help="number of devices (cars) K; nodes 0..K-1")] = 10,
    duration_s: Annotated[float, typer.Option(help="length of the trace (s)")] = 600.0,
    seed: Annotated[int, typer.Option(help="seed of the routes and of SUMO")] = 1,
    out: Annotated[Path, typer.Option(help="ns-2 trace to write")] = Path("trace.ns2"),
    net: Annotated[Path, typer.Option(help="SUMO network (.net.xml)",
                                      show_default="the shipped grid.net.xml")] = DEFAULT_NET,
    step_s: Annotated[float, typer.Option(help="SUMO step = FCD sampling period (s)")] = 1.0,
    warmup_s: Annotated[float, typer.Option(help="SUMO time simulated before the trace starts (s)")] = 60.0,
    background: Annotated[int, typer.Option(help="other cars on the roads, not traced")] = 0,
    ue_height_m: Annotated[float, typer.Option(help="device height written to the trace (m)")] = 1.5,
    bs_x: Annotated[float | None, typer.Option(help="base station x in the network (default: its centre)",
                                            show_default=False)] = None,
    bs_y: Annotated[float | None, typer.Option(help="base station y in the network (default: its centre)",
                                            show_default=False)] = None,
    fcd: Annotated[Path | None, typer.Option(help="also keep SUMO's FCD output here")] = None,
) -> None:
    if (bs_x is None) != (bs_y is None):
        fail("give both --bs-x and --bs-y, or neither")
    try:
        result = generate_trace(out, devices, duration_s, seed, net=net, step_s=step_s,
                                warmup_s=warmup_s, background=background, ue_height_m=ue_height_m,
                                bs_xy=None if bs_x is None else (bs_x, bs_y), fcd_out=fcd)
    except SumoError as e:
        fail(str(e))
    t = result.trace
    print(f"wrote {result.path}: {devices} devices over {fmt(t.duration_s, 3)} s on {result.net.name} "
          f"(seed {seed}) in {result.elapsed_s:.1f} s")
    print(f"mean speed {result.mean_speed_mps:.1f} m/s, farthest {t.max_distance_m:.0f} m from the "
          "base station")
    print(f"use: cosim run default scenario.mobility=ns2 scenario.trace_file={result.path} "
          f"scenario.activity_file={activity_path(result.path)} scenario.devices={devices}")


@sumo_app.command("convert")
def convert_cmd(
    fcd: Annotated[Path, typer.Argument(help="SUMO --fcd-output file")],
    devices: Annotated[int, typer.Option(help="number of devices K (vehicles to keep)")] = 10,
    out: Annotated[Path, typer.Option(help="ns-2 trace to write")] = Path("trace.ns2"),
    start_s: Annotated[float | None, typer.Option(
        help="FCD time that becomes time 0 (default: the first)", show_default=False)] = None,
    end_s: Annotated[float | None, typer.Option(help="last FCD time to keep (default: last)")] = None,
    bs_x: Annotated[float, typer.Option(help="base station x in the FCD coordinates")] = 0.0,
    bs_y: Annotated[float, typer.Option(help="base station y in the FCD coordinates")] = 0.0,
    ue_height_m: Annotated[float, typer.Option(help="device height written to the trace (m)")] = 1.5,
) -> None:
    """Convert an FCD file of your own SUMO scenario into an ns-2 trace.

    Keeps the first DEVICES vehicles (natural id order) that are present in every timestep of
    the window, shifts time so the window starts at 0 and positions so the base station is at
    (0, 0), and writes one setdest per sample so ns-3 passes through every FCD position.
    """
    try:
        trace = fcd_to_ns2(fcd, devices, start_s=start_s, end_s=end_s, origin_xy=(bs_x, bs_y),
                           z_m=ue_height_m, header=[f"converted from {fcd.name} by cosim sumo convert"])
    except SumoError as e:
        fail(str(e))
    trace.write(out)
    print(f"wrote {out} and {activity_path(out)}: vehicles {', '.join(trace.vehicles)} as nodes "
          f"0..{devices - 1}, {fmt(trace.duration_s, 3)} s")
