"""SUMO-generated vehicular mobility for the ns-3 scenario (``cosim sumo ...``).

``generate_trace`` puts K vehicles on a road network, runs SUMO with floating-car-data (FCD)
output and converts the FCD into an ns-2 mobility trace that ``cosim-scenario --mobility=ns2``
reads: node ids 0..K-1, initial positions, then one ``setdest`` per FCD sample.

The shipped network ``ns3_scenarios/sumo/grid.net.xml`` is a 5 x 5 grid of 250 m blocks
(1 km x 1 km, one lane per direction, 50 km/h, traffic lights on the 9 inner junctions), built
with SUMO 1.28's netgenerate by ``NETGENERATE_ARGS`` (see ``ns3_scenarios/sumo/README.md``).
Its coordinates are centred on (0, 0): the base station of the scenario sits on the central
junction C2, and FCD and ns-3 coordinates coincide. Another network works too: the base station
then goes to the centre of its boundary unless ``bs_xy`` says where.

Vehicles stay present for the whole window: each tracked vehicle drives a random walk over the
network (at every junction a uniformly chosen allowed continuation, drawn from a seeded RNG),
long enough that it cannot reach the end of its route even at its highest possible speed. So
the K devices are the same K vehicles from start to end, and a trace of any duration needs no
more vehicles than devices. SUMO itself runs with the same seed, so a (seed, devices, duration,
network) always gives the same trace, byte for byte.

The conversion is our own rather than SUMO's ``tools/traceExporter.py``: its ns-2 output sets
each node's destination at time t to the position *at* t with the speed *at* t, so in ns-3 the
devices trail the FCD by one sample (about 14 m at 50 km/h and 1 s steps); it numbers every
vehicle in the file (ids beyond K, which the scenario rejects), sets the height to 0 and gives
vehicles that appear later an initial position at time 0. Here ``setdest`` at sample time t_i
heads for the position of sample t_(i+1) with speed distance / (t_(i+1) - t_i), so ns-3's
linear motion passes through every FCD position at its sample time.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SUMO_DIR = REPO_ROOT / "ns3_scenarios" / "sumo"
DEFAULT_NET = SUMO_DIR / "grid.net.xml"

# How grid.net.xml was made (run in ns3_scenarios/sumo/ with SUMO 1.28.0's netgenerate).
NETGENERATE_ARGS = (
    "--grid", "--grid.number", "5", "--grid.length", "250",
    "--offset.disable-normalization", "--offset.x", "-500", "--offset.y", "-500",
    "--tls.set", "B1,B2,B3,C1,C2,C3,D1,D2,D3",
    "--no-turnarounds", "--no-internal-links",
    "--output-file", "grid.net.xml",
)

VEHICLE_CLASS = "passenger"
# a vehicle's desired speed is speedFactor x the lane's limit; bounded so routes can be sized
SPEED_FACTOR = "normc(1,0.1,0.8,1.2)"
SPEED_FACTOR_MAX = 1.2
TRACKED_PREFIX = "dev"
BACKGROUND_PREFIX = "bg"


class SumoError(RuntimeError):
    """SUMO is missing or failed, or its output cannot become a trace; the message says why."""


class FcdError(SumoError, ValueError):
    """An FCD file that is unreadable, empty, malformed, or holds too few vehicles."""


# -- locating SUMO ---------------------------------------------------------------------------------

def sumo_home() -> Path:
    """SUMO_HOME of the ``eclipse-sumo`` wheel (``sumo.SUMO_HOME``), else of $SUMO_HOME."""
    spec = importlib.util.find_spec("sumo")  # no import: importing it sets os.environ
    if spec is not None and spec.origin:
        home = Path(spec.origin).parent
        if (home / "bin").is_dir():
            return home
    if os.environ.get("SUMO_HOME"):
        return Path(os.environ["SUMO_HOME"])
    raise SumoError("SUMO is not installed: `pip install -e '.[sumo]'` in the project "
                    "(`make` does it), or set SUMO_HOME to a SUMO installation")


def sumo_binary(name: str = "sumo") -> Path:
    """A SUMO program (sumo, netgenerate, duarouter, ...) of ``sumo_home()`` or on $PATH."""
    try:
        candidate = sumo_home() / "bin" / name
    except SumoError:
        candidate = None
    if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise SumoError(f"SUMO's `{name}` was not found (looked in {candidate} and on PATH): "
                    "`pip install -e '.[sumo]'` in the project (`make` does it)")


def _run_sumo_tool(name: str, args: Sequence[str], cwd: Path, timeout_s: float) -> None:
    binary = sumo_binary(name)
    env = dict(os.environ)
    env["SUMO_HOME"] = str(binary.parent.parent)  # its own data, never another version's
    try:
        proc = subprocess.run([str(binary), *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SumoError(f"`{name}` did not finish within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SumoError(f"`{name}` exited with status {proc.returncode}:\n{tail}")


# -- FCD -> ns-2 ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fcd:
    """Floating car data: the sample times and, per vehicle, its (t, x, y) samples in order."""

    path: Path
    times: list[float]
    tracks: dict[str, list[tuple[float, float, float]]]


def read_fcd(path: Path | str) -> Fcd:
    """Parse a SUMO ``--fcd-output`` file; any problem is one ``FcdError`` naming the file."""
    path = Path(path)
    times: list[float] = []
    tracks: dict[str, list[tuple[float, float, float]]] = {}
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise FcdError(f"FCD file {path} is empty")
        events = ET.iterparse(path, events=("start", "end"))
        _, root = next(events)
        if root.tag != "fcd-export":
            raise FcdError(f"{path} is not a SUMO FCD file: its root element is <{root.tag}>, "
                           "expected <fcd-export> (sumo --fcd-output)")
        for event, elem in events:
            if event != "end":
                continue
            if elem.tag == "timestep":
                t = _number(path, elem, "time", "a <timestep>")
                if times and t <= times[-1]:
                    raise FcdError(f"{path}: timestep {t:g} s does not come after {times[-1]:g} s")
                times.append(t)
                for veh in elem.iter("vehicle"):
                    vid = veh.get("id")
                    if not vid:
                        raise FcdError(f"{path}: a <vehicle> at {t:g} s has no id")
                    what = f"vehicle {vid} at {t:g} s"
                    tracks.setdefault(vid, []).append(
                        (t, _number(path, veh, "x", what), _number(path, veh, "y", what)))
                root.clear()  # keep memory flat on long files
    except FileNotFoundError:
        raise FcdError(f"FCD file {path} does not exist") from None
    except OSError as e:
        raise FcdError(f"FCD file {path} cannot be read: {e.strerror or e}") from None
    except ET.ParseError as e:
        raise FcdError(f"FCD file {path} is not well-formed XML ({e}); was SUMO interrupted "
                       "while writing it?") from None
    except StopIteration:
        raise FcdError(f"FCD file {path} is empty") from None
    if not tracks:
        raise FcdError(f"FCD file {path} holds no vehicles ({len(times)} empty timesteps)")
    return Fcd(path, times, tracks)


def _number(path: Path, elem: ET.Element, attr: str, what: str) -> float:
    text = elem.get(attr)
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise FcdError(f"{path}: {what} has no numeric '{attr}' (got {text!r})")
    return value


def fmt(value: float, digits: int) -> str:
    """Fixed-point without trailing zeros: 12.5, 0, -3.25."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _names(ids: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(ids[:most])
    return shown if len(ids) <= most else f"{shown} and {len(ids) - most} more"


def _natural(vid: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", vid)]


@dataclass(frozen=True)
class Ns2Trace:
    """An ns-2 mobility trace made from FCD; node i is the SUMO vehicle ``vehicles[i]``."""

    text: str
    vehicles: list[str]
    start_s: float  # FCD time that becomes trace time 0
    duration_s: float
    origin_xy: tuple[float, float]  # FCD point that becomes (0, 0): the base station
    path_length_m: list[float]  # per node, along the sampled positions
    max_distance_m: float  # farthest horizontal distance from the base station

    @property
    def activity(self) -> str:
        """SUMO's ns2activity format: every node is in the scenario from 0 to the window's end
        (the vehicles were chosen for that), and absent after it, where the trace knows nothing."""
        lines = [f'$ns_ at 0 "$g({n}) start"; # SUMO-ID: {vid}' for n, vid in enumerate(self.vehicles)]
        lines += [f'$ns_ at {fmt(self.duration_s, 6)} "$g({n}) stop"; # SUMO-ID: {vid}'
                  for n, vid in enumerate(self.vehicles)]
        return "\n".join(lines) + "\n"

    def write(self, out: Path | str) -> Path:
        """The trace to `out` and its activity file to `activity_path(out)`."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.text)
        activity_path(out).write_text(self.activity)
        return out


def activity_path(trace: Path) -> Path:
    """Where `cosim sumo` puts the activity file of the trace `trace`."""
    return trace.with_name(trace.name + ".activity")


def fcd_to_ns2(fcd: Fcd | Path | str, devices: int, *, start_s: float | None = None,
               end_s: float | None = None, origin_xy: tuple[float, float] = (0.0, 0.0),
               z_m: float = 1.5, vehicles: Sequence[str] | None = None,
               header: Sequence[str] = ()) -> Ns2Trace:
    """Turn FCD into an ns-2 trace for ``devices`` nodes over the window [start_s, end_s].

    Node i follows ``vehicles[i]`` or, by default, the i-th (in natural id order) of the vehicles
    present in every timestep of the window. Times shift by ``-start_s`` (the window starts at
    trace time 0), positions by ``-origin_xy`` (that FCD point is the base station); the height
    is ``z_m``. Each move is ``$ns_ at t_i "$node_(n) setdest x_(i+1) y_(i+1) v"`` with
    v = distance / (t_(i+1) - t_i); samples that do not move give no line (ns-3 stops a node
    when it arrives). Coordinates are written in mm, times in us, speeds in um/s.
    """
    if not isinstance(fcd, Fcd):
        fcd = read_fcd(fcd)
    if devices < 1:
        raise FcdError(f"devices must be at least 1, got {devices}")
    eps = 1e-6
    first, last = fcd.times[0], fcd.times[-1]
    start = first if start_s is None else start_s
    end = last if end_s is None else end_s
    if not (first - eps <= start < end <= last + eps):
        raise FcdError(f"{fcd.path} covers {first:g}..{last:g} s, which does not hold the window "
                       f"{start:g}..{end:g} s")
    window = [t for t in fcd.times if start - eps <= t <= end + eps]
    if abs(window[0] - start) > eps:
        raise FcdError(f"{fcd.path} has no timestep at the window start {start:g} s")
    if len(window) < 2:
        raise FcdError(f"{fcd.path} has a single timestep in {start:g}..{end:g} s: nothing moves")

    def in_window(vid: str) -> list[tuple[float, float, float]]:
        return [s for s in fcd.tracks.get(vid, ()) if start - eps <= s[0] <= end + eps]

    complete = {vid for vid in fcd.tracks if len(in_window(vid)) == len(window)}
    if vehicles is not None:
        chosen = list(vehicles)
        if len(chosen) != devices:
            raise FcdError(f"{len(chosen)} vehicles named for {devices} devices")
        missing = [v for v in chosen if v not in complete]
        if missing:
            raise FcdError(f"{fcd.path}: vehicle(s) {_names(missing)} are not present in every "
                           f"timestep of {start:g}..{end:g} s")
    else:
        if len(complete) < devices:
            raise FcdError(
                f"{fcd.path}: only {len(complete)} of its {len(fcd.tracks)} vehicles are present "
                f"in every timestep of {start:g}..{end:g} s, {devices} are needed (one per device); "
                "use a shorter window or a scenario where vehicles stay longer")
        chosen = sorted(complete, key=_natural)[:devices]

    ox, oy = origin_xy
    lines = [f"# {h}" for h in header]
    lines += [f"# node {n} = SUMO vehicle {vid}" for n, vid in enumerate(chosen)]
    moves: list[tuple[float, int, str]] = []
    lengths: list[float] = []
    max_dist = 0.0
    for n, vid in enumerate(chosen):
        pts = [(round(t - start, 6), round(x - ox, 3), round(y - oy, 3)) for t, x, y in in_window(vid)]
        _, x0, y0 = pts[0]
        lines += [f"$node_({n}) set X_ {fmt(x0, 3)}", f"$node_({n}) set Y_ {fmt(y0, 3)}",
                  f"$node_({n}) set Z_ {fmt(z_m, 3)}"]
        length = 0.0
        for (ta, xa, ya), (tb, xb, yb) in zip(pts, pts[1:], strict=False):
            max_dist = max(max_dist, math.hypot(xa, ya), math.hypot(xb, yb))
            d = math.hypot(xb - xa, yb - ya)
            if d == 0:
                continue
            length += d
            moves.append((ta, n, f'$ns_ at {fmt(ta, 6)} "$node_({n}) setdest {fmt(xb, 3)} '
                                 f'{fmt(yb, 3)} {fmt(d / (tb - ta), 6)}"'))
        lengths.append(length)
    moves.sort(key=lambda m: (m[0], m[1]))
    lines += [m[2] for m in moves]
    return Ns2Trace("\n".join(lines) + "\n", chosen, start, end - start, (ox, oy), lengths, max_dist)


# -- SUMO run -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TraceResult:
    """What ``generate_trace`` wrote and how."""

    path: Path
    trace: Ns2Trace
    net: Path
    seed: int
    step_s: float
    elapsed_s: float
    fcd_path: Path | None  # the FCD kept on request

    @property
    def mean_speed_mps(self) -> float:
        return sum(self.trace.path_length_m) / (len(self.trace.path_length_m) * self.trace.duration_s)


def load_network(net: Path | str):
    """The network as a ``sumolib.net.Net``; a missing or broken file is one ``SumoError``."""
    import sumolib

    net = Path(net)
    if not net.is_file():
        raise SumoError(f"SUMO network {net} does not exist")
    try:
        return sumolib.net.readNet(str(net))
    except Exception as e:  # sumolib raises whatever its XML parser raises
        raise SumoError(f"{net} is not a readable SUMO network: {e}") from None


def network_center(network) -> tuple[float, float]:
    """Centre of a network's boundary (its convBoundary), in its own coordinates."""
    (xmin, ymin, xmax, ymax) = network.getBoundary()
    return (0.5 * (xmin + xmax), 0.5 * (ymin + ymax))


def random_walk_routes(network, count: int, min_length_m: float,
                       rng: random.Random) -> list[list[str]]:
    """``count`` routes that are random walks over the network's passenger edges, each at least
    ``min_length_m`` long: a uniformly drawn start edge, then at every junction a uniformly drawn
    allowed continuation."""

    def car_edges(edges) -> list:
        return sorted((e for e in edges if e.allows(VEHICLE_CLASS)), key=lambda e: e.getID())

    edges = car_edges(network.getEdges())
    if not edges:
        raise SumoError(f"the network has no edge that a {VEHICLE_CLASS} car may use")
    routes = []
    for _ in range(count):
        edge = rng.choice(edges)
        route, length = [edge], edge.getLength()
        while length < min_length_m:
            nxt = car_edges(edge.getOutgoing())
            if not nxt:
                raise SumoError(f"edge {edge.getID()} of the network is a dead end for cars; random "
                                "walks need a network where every edge continues")
            edge = rng.choice(nxt)
            route.append(edge)
            length += edge.getLength()
        routes.append([e.getID() for e in route])
    return routes


def write_routes(path: Path, tracked: list[list[str]], background: list[list[str]]) -> None:
    """All vehicles depart at time 0 at a random free place on their first edge."""
    lines = ["<routes>",
             f'    <vType id="car" vClass="{VEHICLE_CLASS}" speedFactor="{SPEED_FACTOR}"/>']
    for prefix, routes in ((TRACKED_PREFIX, tracked), (BACKGROUND_PREFIX, background)):
        for i, edges in enumerate(routes):
            lines += [f'    <vehicle id="{prefix}{i}" type="car" depart="0" departPos="random_free" '
                      'departSpeed="random" departLane="best">',
                      f'        <route edges="{" ".join(edges)}"/>',
                      "    </vehicle>"]
    lines.append("</routes>")
    path.write_text("\n".join(lines) + "\n")


def _steps(value: float, step_s: float, name: str) -> int:
    n = round(value / step_s)
    if n < 0 or abs(n * step_s - value) > 1e-9 * max(1.0, value):
        raise SumoError(f"{name}={value:g} s must be a non-negative multiple of step_s={step_s:g} s")
    return n


def generate_trace(out: Path | str, devices: int, duration_s: float, seed: int = 1, *,
                   net: Path | str = DEFAULT_NET, step_s: float = 1.0, warmup_s: float = 60.0,
                   background: int = 0, ue_height_m: float = 1.5,
                   bs_xy: tuple[float, float] | None = None, fcd_out: Path | str | None = None,
                   timeout_s: float = 3600.0) -> TraceResult:
    """Simulate ``devices`` cars with SUMO for ``warmup_s + duration_s`` and write the last
    ``duration_s`` as an ns-2 trace to ``out`` (trace time 0 = SUMO time ``warmup_s``).

    The cars drive seeded random walks (``random_walk_routes``) among ``background`` other cars
    doing the same (not traced). ``bs_xy`` is where the base station stands in the network's
    coordinates (default: the centre of the network, (0, 0) for the shipped grid); devices are at
    height ``ue_height_m``. ``fcd_out`` keeps SUMO's FCD file.
    """
    began = time.monotonic()
    net = Path(net).resolve()
    if devices < 1 or background < 0:
        raise SumoError(f"devices must be >= 1 and background >= 0, got {devices} and {background}")
    if not (math.isfinite(step_s) and 0.01 <= step_s <= 60):
        raise SumoError(f"step_s={step_s:g} must be between 0.01 and 60 s")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise SumoError(f"duration_s={duration_s:g} must be > 0")
    n_warm = _steps(warmup_s, step_s, "warmup_s")
    n_dur = _steps(duration_s, step_s, "duration_s")
    if n_dur < 1:
        raise SumoError(f"duration_s={duration_s:g} s is shorter than one step ({step_s:g} s)")
    begin_trace, end_trace = n_warm * step_s, (n_warm + n_dur) * step_s

    network = load_network(net)
    rng = random.Random(seed)
    # long enough that even the fastest car cannot finish its route: no car leaves early
    top_speed = max(e.getSpeed() for e in network.getEdges()) * SPEED_FACTOR_MAX
    reach_m = (end_trace + 2 * step_s) * top_speed + 500.0
    tracked = random_walk_routes(network, devices, reach_m, rng)
    others = random_walk_routes(network, background, reach_m, rng)
    origin = network_center(network) if bs_xy is None else (float(bs_xy[0]), float(bs_xy[1]))
    ids = [f"{TRACKED_PREFIX}{i}" for i in range(devices)]

    with tempfile.TemporaryDirectory(prefix="cosim-sumo-") as tmp:
        work = Path(tmp)
        write_routes(work / "vehicles.rou.xml", tracked, others)
        fcd_path = work / "fcd.xml"
        _run_sumo_tool("sumo", [
            "--net-file", str(net), "--route-files", "vehicles.rou.xml",
            "--begin", "0", "--end", fmt(end_trace + step_s, 6), "--step-length", fmt(step_s, 6),
            "--seed", str(seed), "--time-to-teleport", "-1",  # a stuck car waits, never jumps
            "--fcd-output", str(fcd_path), "--device.fcd.explicit", ",".join(ids),
            "--device.fcd.begin", fmt(begin_trace, 6),
            "--no-step-log", "--no-warnings", "--duration-log.disable",
        ], cwd=work, timeout_s=timeout_s)
        header = [f"SUMO {_sumo_version()} FCD -> ns-2 by cosim sumo trace: {devices} devices, "
                  f"{fmt(duration_s, 6)} s, seed {seed}, step {fmt(step_s, 6)} s, "
                  f"background {background}",
                  f"network {net.name}; trace time 0 = SUMO time {fmt(begin_trace, 6)} s; base station "
                  f"at ({fmt(origin[0], 3)}, {fmt(origin[1], 3)}) of the network = (0, 0) here"]
        fcd = read_fcd(fcd_path)

        def samples(times) -> int:
            return sum(1 for t in times if begin_trace - 1e-6 <= t <= end_trace + 1e-6)

        steps = samples(fcd.times)
        gone = [v for v in ids if samples(s[0] for s in fcd.tracks.get(v, ())) < steps]
        if gone:
            raise SumoError(
                f"SUMO could not keep all {devices} cars on {net.name} for the whole trace: {len(gone)} "
                f"were missing at some time ({_names(gone)}), the roads were too full to insert them; "
                "use fewer --devices or --background, a longer --warmup-s, or a larger network")
        trace = fcd_to_ns2(fcd, devices, start_s=begin_trace, end_s=end_trace, origin_xy=origin,
                           z_m=ue_height_m, vehicles=ids, header=header)
        kept = None
        if fcd_out is not None:
            kept = Path(fcd_out)
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fcd_path, kept)
    path = trace.write(out)
    return TraceResult(path, trace, net, seed, step_s, time.monotonic() - began, kept)


def _sumo_version() -> str:
    try:
        from importlib.metadata import version

        return version("eclipse-sumo")
    except Exception:  # a SUMO outside the wheel
        return "(version unknown)"
