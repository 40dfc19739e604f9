"""Benchmarks, all measured side by side in one run: `make bench` (or `python -m bench`).

1. Bridge round trip: a K=100 plan out, a K=100 report back, over our shared memory (the real
   compiled scenario answering CMD_ECHO) vs pyzmq ipc:// REQ/REP with the same bytes.
2. CPU burnt by the waiting side while its peer is busy for about a second.
3. ns-3 CPU seconds per simulated round vs K, on both radios, fixed payload per device.
4. What fading with memory costs: ns-3 CPU seconds per simulated second with the Doppler fading
   process against the per-packet draw, K = 10 and 50, both radios, interleaved, 3 repeats.
5. What the split-learning protocol costs: ns-3 CPU seconds per round with every message of
   `protocol: per-step` against `lumped`'s one upload and one download (same bytes and
   computation), K = 10 and 50, both radios, interleaved, 3 repeats.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import torch

from bench.machine import machine
from cosim.experiment.protocol import StepTimes, per_step_steps
from cosim.simulator.scenario import ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation, scenario_binary
from cosim.wire import layout
from cosim.wire.messages import RoundPlan, read_report
from cosim.wire.steps import lumped_steps
from learning.payload import PayloadPredictor, total

ZMQ_PEER = """
import sys, zmq
import numpy as np
from bench.machine import machine
from cosim.wire import layout
k = int(sys.argv[2])
header = np.zeros(1, layout.REPORT_HEADER.dtype); header["num_devices"] = k
reply = header.tobytes() + np.zeros(k, layout.REPORT_RECORD.dtype).tobytes()
ctx = zmq.Context(); s = ctx.socket(zmq.REP); s.bind(sys.argv[1])
while True:
    msg = s.recv_multipart()
    if msg == [b"stop"]:
        s.send(b""); break
    s.send(reply)
"""


def _percentiles(samples_s: list[float]) -> tuple[float, float]:
    us = np.asarray(samples_s) * 1e6
    return float(np.percentile(us, 50)), float(np.percentile(us, 99))


def bench_round_trip(k: int, n: int) -> None:
    plan = RoundPlan.equal_shares(0, np.ones(k, bool), 1000, 1000, deadline_s=1.0)
    plan_bytes = sum(len(part) for part in plan.wire)
    report_bytes = layout.REPORT_HEADER.dtype.itemsize + k * layout.REPORT_RECORD.dtype.itemsize

    shm = []
    with Ns3Simulation(ScenarioConfig(devices=k, mobility="constant")) as sim:
        for _ in range(200):
            sim.echo(plan)
        for _ in range(n):
            t0 = time.perf_counter()
            sim.echo(plan)
            shm.append(time.perf_counter() - t0)

    import zmq

    path = f"ipc:///tmp/cosim-bench-{os.getpid()}.ipc"
    peer = subprocess.Popen([sys.executable, "-c", ZMQ_PEER, path, str(k)])
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)  # a dead peer fails the benchmark instead of hanging it
    sock.connect(path)
    split = layout.REPORT_HEADER.dtype.itemsize
    zq = []
    try:
        for i in range(200 + n):
            # the same work as over shared memory: plan bytes out, report parsed back
            t0 = time.perf_counter()
            sock.send_multipart(list(plan.wire))
            reply = sock.recv()
            read_report(reply[:split], reply[split:])
            if i >= 200:
                zq.append(time.perf_counter() - t0)
        sock.send(b"stop")
        sock.recv()
    finally:
        peer.wait(timeout=10)
        sock.close()
        ctx.term()
        if os.path.exists(path[len("ipc://"):]):
            os.unlink(path[len("ipc://"):])
    s50, s99 = _percentiles(shm)
    z50, z99 = _percentiles(zq)
    print(f"\n## 1. Round trip, K={k} plan ({plan_bytes} B) out + report ({report_bytes} B) back, "
          f"{n} exchanges")
    print(f"{'transport':<22}{'p50_us':>10}{'p99_us':>10}")
    print(f"{'shared memory (ours)':<22}{s50:>10.1f}{s99:>10.1f}")
    print(f"{'pyzmq ipc:// REQ/REP':<22}{z50:>10.1f}{z99:>10.1f}")
    print(f"ratio ours/pyzmq: p50 {s50 / z50:.2f}, p99 {s99 / z99:.2f}  (goal p50 <= 0.33)")


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_idle_cpu() -> None:
    print("\n## 2. CPU burnt by the waiting side")
    cfg = ScenarioConfig(devices=20, mobility="constant")
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        # Python waits while ns-3 simulates a round
        plan = RoundPlan.equal_shares(0, np.ones(20, bool), 4_000_000, 100_000, deadline_s=30.0)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        sim.execute(plan)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        print(f"Python waiting for ns-3 ({wall:.2f} s wall): {100 * cpu / wall:.2f}% of a core")
        # ns-3 waits while Python computes for 1 s
        before = _proc_cpu_s(sim.pid)
        end = time.perf_counter() + 1.0
        x = 0
        while time.perf_counter() < end:
            x += 1
        burnt = _proc_cpu_s(sim.pid) - before
        print(f"ns-3 waiting for Python (1.00 s busy): {100 * burnt:.2f}% of a core "
              f"(clock tick {1000 / os.sysconf('SC_CLK_TCK'):.0f} ms)  (goal < 5%)")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _standalone(radio: str, k: int, rounds: int, payload: int,
                extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """CPU seconds of a standalone run and the simulated seconds its rounds span."""
    binary = scenario_binary()
    args = [str(binary), f"--radio={radio}", f"--devices={k}", f"--rounds={rounds}",
            f"--payloadBytes={payload}", "--deadline=10", "--mobility=random-walk", *extra]
    before = _children_cpu()
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    cpu = _children_cpu() - before
    starts = pd.read_csv(io.StringIO(out)).groupby("round")["sim_time_s"].first()
    return cpu, float(starts.iloc[-1] - starts.iloc[0])


def bench_ns3_scaling(radios: list[str], ks: list[int], payload: int, rounds: int) -> None:
    print(f"\n## 3. ns-3 CPU cost per simulated round (all devices, equal shares, "
          f"{payload / 1e6:g} MB up and down each, deadline 10 s, {rounds} rounds per K)")
    print(f"{'radio':<12}{'K':>6}{'cpu_s_per_round':>17}{'sim_s_per_round':>17}"
          f"{'cpu_s_per_sim_s':>17}{'cpu_ms_per_device_round':>25}")
    for radio in radios:
        per_round, per_sim_s = [], []
        for k in ks:
            # set-up (attachment, warm-up) cancels in the difference of 1 and 1 + rounds rounds
            c1, _ = _standalone(radio, k, 1, payload)
            cn, sim_s = _standalone(radio, k, 1 + rounds, payload)
            cpu = max((cn - c1) / rounds, 1e-9)
            per_round.append(cpu)
            per_sim_s.append(cpu / max(sim_s / rounds, 1e-9))
            print(f"{radio:<12}{k:>6}{cpu:>17.3f}{sim_s / rounds:>17.3f}{per_sim_s[-1]:>17.3f}"
                  f"{1000 * cpu / k:>25.2f}")
        slope = np.polyfit(np.log(ks), np.log(per_round), 1)[0]
        slope_t = np.polyfit(np.log(ks), np.log(per_sim_s), 1)[0]
        print(f"{radio}: CPU per round grows as K^{slope:.2f}, per simulated second as "
              f"K^{slope_t:.2f} (goal: exponent <= 1)")


def _cpu_per_sim_s(radio: str, k: int, payload: int, rounds: int, extra: tuple[str, ...]) -> float:
    # set-up (attachment, warm-up) cancels in the difference of 1 and 1 + rounds rounds
    c1, _ = _standalone(radio, k, 1, payload, extra)
    cn, sim_s = _standalone(radio, k, 1 + rounds, payload, extra)
    return max(cn - c1, 1e-9) / max(sim_s, 1e-9)


def bench_fading(radios: list[str], ks: list[int], payload: int, rounds: int, repeats: int = 3) -> None:
    print(f"\n## 4. ns-3 CPU seconds per simulated second: fading with memory (doppler) vs per-packet "
          f"draw ({payload / 1e6:g} MB each way, {rounds} rounds, {repeats} interleaved repeats: median "
          "[min-max])")
    print(f"{'radio':<12}{'K':>4}{'doppler':>24}{'per-packet':>24}{'ratio':>22}")
    for radio in radios:
        for k in ks:
            runs = {"doppler": [], "per-packet": []}
            for _ in range(repeats):
                for process in runs:
                    runs[process].append(_cpu_per_sim_s(radio, k, payload, rounds,
                                                        (f"--fadingProcess={process}",)))
            ratio = np.array(runs["doppler"]) / np.array(runs["per-packet"])
            cells = [f"{np.median(v):.4f} [{min(v):.4f}-{max(v):.4f}]" for v in runs.values()]
            print(f"{radio:<12}{k:>4}{cells[0]:>24}{cells[1]:>24}"
                  f"{f'{np.median(ratio):.2f} [{ratio.min():.2f}-{ratio.max():.2f}]':>22}")


def _protocol_plans(k: int, tau: int) -> dict[str, RoundPlan]:
    """One round of every device under each protocol: MiniLM-shaped messages (hidden 384, frozen
    embeddings) of one sample of 16 tokens per step, so that 50 LTE devices finish a round in
    seconds; the same bytes and computation either way."""
    predictor = PayloadPredictor(384, torch.float32, 1_925, 150_000, front_trainable=False)
    messages = predictor.messages(tau, 1, 16)
    times = StepTimes(0.002, 0.004, 0.004, 0.005, 0.01)
    per_step = per_step_steps(messages, times)
    payload = total(messages)
    lumped = lumped_steps(payload.uplink_bytes, payload.downlink_bytes,
                          tau * (times.embed_forward_s + times.head_s + times.embed_backward_s),
                          tau * (times.server_forward_s + times.server_backward_s))
    go = np.ones(k, bool)
    return {name: RoundPlan(0, go, np.full(k, 1 / k), [steps] * k, deadline_s=60.0)
            for name, steps in (("lumped", lumped), ("per-step", per_step))}


def bench_protocol(radios: list[str], ks: list[int], rounds: dict[str, int], repeats: int = 3,
                   tau: int = 2) -> None:
    print(f"\n## 5. ns-3 CPU seconds per round: split learning message by message (per-step) vs one "
          f"upload and one download (lumped), tau={tau}, rounds per measurement {rounds} (CPU time is "
          f"counted in clock ticks), {repeats} interleaved repeats: median [min-max]")
    print(f"{'radio':<12}{'K':>4}{'lumped':>24}{'per-step':>24}{'ratio':>22}")
    for radio in radios:
        for k in ks:
            plans = _protocol_plans(k, tau)
            runs = {name: [] for name in plans}
            # devices at rest: every round meets the same channel, so the rounds compared are alike
            with Ns3Simulation(ScenarioConfig(devices=k, radio=radio, mobility="constant")) as sim:
                sim.channel_report()
                for _ in range(repeats):
                    for name, plan in plans.items():
                        before = _proc_cpu_s(sim.pid)
                        for _ in range(rounds[radio]):
                            sim.channel_report()
                            sim.execute(plan)
                        runs[name].append((_proc_cpu_s(sim.pid) - before) / rounds[radio])
            ratio = np.array(runs["per-step"]) / np.array(runs["lumped"])
            cells = [f"{np.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]" for v in runs.values()]
            print(f"{radio:<12}{k:>4}{cells[0]:>24}{cells[1]:>24}"
                  f"{f'{np.median(ratio):.2f} [{ratio.min():.2f}-{ratio.max():.2f}]':>22}")
    print("(goal: per-step costs at most 1.5 times lumped)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=10_000, help="round trips per transport")
    ap.add_argument("--k", type=int, default=100, help="devices in the round-trip messages")
    ap.add_argument("--scaling-k", default="10,50,100,200", help="K values for ns-3 scaling")
    ap.add_argument("--radios", default="ideal-fdma,lte", help="radios for ns-3 scaling")
    ap.add_argument("--payload", type=int, default=100_000, help="bytes per device each way")
    ap.add_argument("--scaling-rounds", type=int, default=4, help="rounds measured per K")
    ap.add_argument("--only", choices=["roundtrip", "idle", "scaling", "fading", "protocol"],
                    help="run one part")
    a = ap.parse_args(argv)
    print(f"# cosim benchmarks on {machine()}")
    if a.only in (None, "roundtrip"):
        bench_round_trip(a.k, a.exchanges)
    if a.only in (None, "idle"):
        bench_idle_cpu()
    if a.only in (None, "scaling"):
        bench_ns3_scaling(a.radios.split(","), [int(k) for k in a.scaling_k.split(",")], a.payload,
                          a.scaling_rounds)
    if a.only in (None, "fading"):
        bench_fading(a.radios.split(","), [10, 50], a.payload, a.scaling_rounds)
    if a.only in (None, "protocol"):
        bench_protocol(a.radios.split(","), [10, 50], rounds={"ideal-fdma": 40, "lte": 2})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
