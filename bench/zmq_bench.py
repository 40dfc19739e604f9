"""ZMQ transport overhead, side by side in one run: `python -m bench.zmq_bench`.

1. Echo round trip, a K=100 plan out and a K=100 report back (the real compiled scenario answering
   CMD_ECHO), p50/p99 over a few thousand exchanges:
   - shared memory: ``Ns3Simulation`` on this host;
   - ZMQ relay: ``ZmqSimulation`` -> TCP loopback -> ``python -m cosim.ns3_server`` -> shared memory;
   - TCP alone: pyzmq DEALER/ROUTER over TCP loopback with a Python peer that answers at once with
     the same bytes (what any ZMQ transport pays for the network part, with no ns-3 behind it).
   The relay's extra local hop is (ZMQ relay) - (TCP alone), the whole overhead (ZMQ relay) - (shm).
2. A full round (channel report + execute) of a small ideal-fdma scenario, over shared memory and
   over the ZMQ relay, same seed and plans: per-round wall time and the difference.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.machine import machine
from cosim.simulator.scenario import ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation, scenario_binary
from cosim.simulator.zmq_client import ZmqSimulation, pack_header
from cosim.wire import layout
from cosim.wire.messages import RoundPlan, read_report

ROOT = Path(__file__).resolve().parent.parent
TCP_PEER = """
import sys, zmq
import numpy as np
from cosim.wire import layout
from cosim.simulator.zmq_client import pack_header
k = int(sys.argv[2])
header = np.zeros(1, layout.REPORT_HEADER.dtype); header["num_devices"] = k
reply = [header.tobytes(), np.zeros(k, layout.REPORT_RECORD.dtype).tobytes()]
ctx = zmq.Context(); s = ctx.socket(zmq.ROUTER); s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    identity, head, *frames = s.recv_multipart(copy=False)
    if not frames:
        s.send_multipart([identity, b""]); break
    s.send_multipart([identity, pack_header(0, 0), *reply])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _us(samples_s: list[float]) -> tuple[float, float]:
    us = np.asarray(samples_s) * 1e6
    return float(np.percentile(us, 50)), float(np.percentile(us, 99))


@contextlib.contextmanager
def ns3_server(idle_timeout_s: float = 60.0):
    """`python -m cosim.ns3_server` on a free loopback port; yields its address."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    fd, name = tempfile.mkstemp(prefix="cosim-zmq-bench-", suffix=".log")
    log = Path(name)
    proc = subprocess.Popen([sys.executable, "-m", "cosim.ns3_server", "--bind", address,
                             "--idle-timeout", str(idle_timeout_s)], stdout=subprocess.DEVNULL,
                            stderr=fd, cwd=ROOT)
    os.close(fd)
    try:
        end = time.monotonic() + 30
        while "listening on" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the ns-3 server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.unlink()


class TcpEcho:
    """pyzmq DEALER -> TCP loopback -> a Python ROUTER that answers at once: the network part alone."""

    def __init__(self, k: int):
        import zmq

        address = f"tcp://127.0.0.1:{_free_port()}"
        self.peer = subprocess.Popen([sys.executable, "-c", TCP_PEER, address, str(k)],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.RCVTIMEO, 10_000)  # a dead peer fails the benchmark instead of hanging it
        self.sock.setsockopt(zmq.LINGER, 0)
        assert self.peer.stdout.readline().strip() == "ready"
        self.sock.connect(address)
        self.split = layout.REPORT_HEADER.dtype.itemsize
        self.sequence = 0

    def echo(self, plan: RoundPlan):
        # the client's share of the work of ZmqSimulation.echo: header, plan out, report parsed back
        self.sequence += 1
        self.sock.send_multipart([pack_header(4, self.sequence), *plan.wire])
        _, head, records = self.sock.recv_multipart()
        return read_report(head, records)

    def close(self) -> None:
        self.sock.send_multipart([b"stop"])
        self.sock.recv_multipart()
        self.peer.wait(timeout=10)
        self.sock.close()
        self.ctx.term()


def _interleaved(fns: dict, n: int, batches: int = 10, warmup: int = 200) -> dict[str, list[float]]:
    """Time n calls of each function, in alternating batches so that they share the machine's load."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {name: [] for name in fns}
    for b in range(batches):
        names = list(fns)[b % len(fns):] + list(fns)[:b % len(fns)]
        for name in names:
            fn, samples = fns[name], out[name]
            for _ in range(n // batches):
                t0 = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t0)
    return out


def bench_echo(k: int, n: int) -> None:
    plan = RoundPlan.equal_shares(0, np.ones(k, bool), 1000, 1000, deadline_s=1.0)
    plan_bytes = layout.PLAN_HEADER.dtype.itemsize + k * layout.PLAN_RECORD.dtype.itemsize
    report_bytes = layout.REPORT_HEADER.dtype.itemsize + k * layout.REPORT_RECORD.dtype.itemsize
    cfg = ScenarioConfig(devices=k, mobility="constant")
    with contextlib.ExitStack() as stack:
        shm = stack.enter_context(Ns3Simulation(cfg))
        address = stack.enter_context(ns3_server())
        relay = stack.enter_context(ZmqSimulation(cfg, address=address))
        tcp = TcpEcho(k)
        stack.callback(tcp.close)
        times = _interleaved({"shared memory": lambda: shm.echo(plan),
                              "ZMQ relay (TCP+shm)": lambda: relay.echo(plan),
                              "TCP alone (no ns-3)": lambda: tcp.echo(plan)}, n)
    rows = {name: _us(samples) for name, samples in times.items()}
    print(f"\n## 1. Echo round trip, K={k}: plan ({plan_bytes} B) out + report ({report_bytes} B) back, "
          f"{n} exchanges each, interleaved")
    print(f"{'transport':<24}{'p50_us':>10}{'p99_us':>10}")
    for name, (p50, p99) in rows.items():
        print(f"{name:<24}{p50:>10.1f}{p99:>10.1f}")
    (s50, s99), (z50, z99), (t50, t99) = rows.values()
    print(f"ratio ZMQ relay / shared memory: p50 {z50 / s50:.1f}x, p99 {z99 / s99:.1f}x")
    print(f"overhead of the ZMQ relay over shared memory: p50 {z50 - s50:.1f} us per exchange")
    print(f"extra local hop of the relay (ZMQ relay - TCP alone): p50 {z50 - t50:.1f} us "
          f"(ratio {z50 / t50:.2f}x)")


def bench_round(k: int, rounds: int, payload: int) -> None:
    cfg = ScenarioConfig(devices=k, radio="ideal-fdma", rng_run=7)
    rng = np.random.default_rng(0)
    plans = []
    for t in range(rounds):
        scheduled = rng.random(k) < 0.7
        scheduled[t % k] = True
        share = np.where(scheduled, rng.uniform(0.2, 1.0, k), 0.0)
        plans.append(RoundPlan.lumped(t, scheduled, share / share.sum(), np.full(k, payload),
                                      np.full(k, payload // 4), np.zeros(k), deadline_s=5.0))
    times: dict[str, list[float]] = {"shared memory": [], "ZMQ relay (TCP+shm)": []}
    data: dict[str, list[bytes]] = {name: [] for name in times}
    with contextlib.ExitStack() as stack:
        sims = {"shared memory": stack.enter_context(Ns3Simulation(cfg))}
        address = stack.enter_context(ns3_server())
        sims["ZMQ relay (TCP+shm)"] = stack.enter_context(ZmqSimulation(cfg, address=address))
        for t, plan in enumerate(plans):  # the two simulations take turns, round by round
            for name in (list(sims) if t % 2 == 0 else list(sims)[::-1]):
                t0 = time.perf_counter()
                report = sims[name].channel_report()
                outcome = sims[name].execute(plan)
                times[name].append(time.perf_counter() - t0)
                data[name] += [report.records.tobytes(), outcome.records.tobytes()]
    same = data["shared memory"] == data["ZMQ relay (TCP+shm)"]
    (s50, s99), (z50, z99) = _us(times["shared memory"]), _us(times["ZMQ relay (TCP+shm)"])
    print(f"\n## 2. Full round (report + execute), ideal-fdma, K={k}, {payload / 1e3:g} kB up per "
          f"scheduled device, {rounds} rounds, interleaved")
    print(f"{'transport':<24}{'p50_ms':>10}{'p99_ms':>10}")
    print(f"{'shared memory':<24}{s50 / 1e3:>10.3f}{s99 / 1e3:>10.3f}")
    print(f"{'ZMQ relay (TCP+shm)':<24}{z50 / 1e3:>10.3f}{z99 / 1e3:>10.3f}")
    print(f"ratio ZMQ relay / shared memory: p50 {z50 / s50:.2f}x; difference p50 {z50 - s50:.0f} us "
          f"per round; reports and outcomes byte-identical: {same}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.zmq_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=3000, help="echo round trips per transport")
    ap.add_argument("--k", type=int, default=100, help="devices in the echo messages")
    ap.add_argument("--round-k", type=int, default=5, help="devices in the full-round scenario")
    ap.add_argument("--rounds", type=int, default=60, help="full rounds per transport")
    ap.add_argument("--payload", type=int, default=20_000, help="uplink bytes per scheduled device")
    a = ap.parse_args(argv)
    scenario_binary()  # a missing build fails here, before anything starts
    import zmq

    print(f"# ZMQ transport benchmark on {machine()}, pyzmq {zmq.__version__}, "
          f"libzmq {zmq.zmq_version()}")
    bench_echo(a.k, a.exchanges)
    bench_round(a.round_k, a.rounds, a.payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
