"""The ZMQ transport: `python -m cosim.ns3_server` in its own process, ZmqSimulation over TCP loopback."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
import zmq
from typer.testing import CliRunner

from cosim.cli import app
from cosim.experiment.config import load_config
from cosim.experiment.protocol import StepTimes, per_step_steps
from cosim.ns3_server import scenario_from_dict
from cosim.simulator.scenario import ConfigError, ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation, SimulationError
from cosim.simulator.zmq_client import (
    ServerRefused,
    ServerUnreachable,
    TransportError,
    ZmqSimulation,
    is_loopback,
    pack_header,
    unpack_header,
)
from cosim.wire import bridge, layout
from cosim.wire.messages import RoundPlan
from learning.payload import PayloadPredictor
from tests.conftest import default_sigint, write_trace
from tests.test_ns3_faults import pid_gone

pytestmark = [pytest.mark.ns3, pytest.mark.timeout(60)]
ROOT = Path(__file__).resolve().parent.parent
IDLE_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `python -m cosim.ns3_server` process on a free loopback port, logging to a file."""

    def __init__(self, log_path: Path, idle_timeout_s: float = IDLE_S, data_dir: Path | None = None,
                 options: tuple[str, ...] = ()):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.log_path = log_path
        options = [*options, *(["--data-dir", str(data_dir)] if data_dir else [])]
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cosim.ns3_server", "--bind", self.address,
                 "--idle-timeout", str(idle_timeout_s), *options],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT,
                preexec_fn=default_sigint)
        assert self.wait_log("listening on", 30), self.log()

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, text: str, within_s: float) -> bool:
        end = time.monotonic() + within_s
        while time.monotonic() < end:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                return text in self.log()
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server(ns3_binary, tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("zmq") / "server.log")
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.log()


def gone(path: Path, within_s: float) -> bool:
    end = time.monotonic() + within_s
    while path.exists() and time.monotonic() < end:
        time.sleep(0.05)
    return not path.exists()


def plan(t: int, scheduled, shares, up, down=20_000) -> RoundPlan:
    k = len(scheduled)
    return RoundPlan.lumped(t, np.array(scheduled, bool), np.array(shares, float), np.broadcast_to(up, (k,)),
                            np.full(k, down), np.full(k, 0.05), deadline_s=10.0)


def per_step_plan(t: int, scheduled, shares) -> RoundPlan:
    """Split learning message by message: 2 local steps of 2 samples × 16 tokens of 64 floats."""
    predictor = PayloadPredictor(64, torch.float32, 2_000, 20_000, front_trainable=True)
    messages = predictor.messages(2, 2, 16)
    steps = per_step_steps(messages, StepTimes(0.001, 0.002, 0.002, 0.01, 0.02))
    return RoundPlan(t, np.array(scheduled, bool), np.array(shares, float), [steps] * len(scheduled), 10.0)


PLANS = {
    "ideal-fdma": (4, [plan(0, [1, 1, 1, 1], [0.25] * 4, 100_000),
                       plan(1, [1, 0, 1, 1], [0.5, 0, 0.2, 0.3], [60_000, 0, 150_000, 90_000]),
                       plan(2, [0, 1, 0, 1], [0, 0.7, 0, 0.3], 120_000),
                       per_step_plan(3, [1, 1, 0, 1], [0.3, 0.3, 0, 0.4])]),
    "lte": (3, [plan(0, [1, 1, 1], [1 / 3] * 3, 60_000),
                plan(1, [1, 0, 1], [0.6, 0, 0.4], [80_000, 0, 40_000]),
                per_step_plan(2, [1, 1, 0], [0.5, 0.5, 0])]),
}


def drive(sim, plans: list[RoundPlan]) -> tuple[list, list]:
    """Report and execute every plan, then a last report and an echo; all as (fields, bytes)."""
    reports, outcomes = [], []
    for p in plans:
        r = sim.channel_report()
        reports.append(((r.round_index, r.sim_time_s, r.bandwidth_hz, r.noise_psd_dbm_hz), r.records))
        o = sim.execute(p)
        outcomes.append(((o.round_index, o.round_start_s, o.round_duration_s), o.records))
        outcomes.append(((o.round_index, len(o.steps)), o.steps))
    r = sim.channel_report()
    reports.append(((r.round_index, r.sim_time_s, r.bandwidth_hz, r.noise_psd_dbm_hz), r.records))
    e = sim.echo(plans[-1])
    reports.append(((e.round_index, e.sim_time_s, e.bandwidth_hz, e.noise_psd_dbm_hz), e.records))
    return reports, outcomes


@pytest.mark.parametrize("radio", ["ideal-fdma", "lte"])
def test_zmq_reports_and_outcomes_are_byte_identical_to_shared_memory(server, radio):
    k, plans = PLANS[radio]
    cfg = ScenarioConfig(devices=k, radio=radio, rng_seed=3, rng_run=5)
    with Ns3Simulation(cfg) as sim:
        shm_reports, shm_outcomes = drive(sim, plans)
    with ZmqSimulation(cfg, address=server.address, timeout_s=60) as sim:
        assert sim.server_info["layout_version"] == layout.LAYOUT_VERSION
        zmq_reports, zmq_outcomes = drive(sim, plans)
    for (fa, ra), (fb, rb) in zip(shm_reports + shm_outcomes, zmq_reports + zmq_outcomes, strict=True):
        assert fa == fb
        assert ra.dtype == rb.dtype and ra.tobytes() == rb.tobytes()
    # real numbers, not two empty answers: every scheduled device delivered, the others sent nothing
    for p, (fields, rec) in zip(plans, zmq_outcomes[::2], strict=True):
        assert fields[0] == p.round_index and fields[2] > 0
        assert rec["scheduled"].tolist() == p.scheduled.astype(int).tolist()
        assert rec["uplink_delivered_bytes"].tolist() == np.where(p.scheduled, p.uplink_bytes, 0).tolist()
        assert rec["deadline_met"].tolist() == p.scheduled.astype(int).tolist()
        assert np.all(rec["tx_energy_j"][p.scheduled] > 0) and np.all(rec["airtime_s"][~p.scheduled] == 0)
    times = [f[1] for f, _ in zmq_reports[:-1]]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert np.all(np.isfinite(zmq_reports[0][1]["snr_db"])) and len(zmq_reports[0][1]) == k
    echo = zmq_reports[-1][1]
    assert echo["snr_db"].tolist() == plans[-1].bandwidth_share.tolist()  # ECHO copies the shares back


def test_unreachable_server_is_one_clear_error_quickly(ns3_binary):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(ServerUnreachable) as err, ZmqSimulation(ScenarioConfig(devices=2), address=address,
                                                                connect_timeout_s=1.0):
        pass
    elapsed = time.monotonic() - t0
    msg = str(err.value)
    assert isinstance(err.value, SimulationError)
    assert f"no ns-3 server answered at {address} within 1 s" in msg
    assert f"python -m cosim.ns3_server --bind {address}" in msg
    assert "nothing accepted the connection" in msg
    assert elapsed < 2.5, elapsed


def test_server_refuses_another_layout_version_naming_both(server):
    other = layout.LAYOUT_VERSION + 1
    sim = ZmqSimulation(ScenarioConfig(devices=1), address=server.address, layout_version=other)
    with pytest.raises(TransportError) as err, sim:
        pass
    msg = str(err.value)
    # the client's own refusal of the reply, and the server's refusal of the request, both named
    assert f"this client uses layout version {other}" in msg
    assert f"the ns-3 server at {server.address} version {layout.LAYOUT_VERSION}" in msg
    assert f"the client uses layout version {other}, this ns-3 server version {layout.LAYOUT_VERSION}" in msg
    assert f"refused 127.0.0.1: message layout mismatch: the client uses layout version {other}" \
        in server.log()


def test_client_refuses_a_server_of_another_layout_version():
    other = layout.LAYOUT_VERSION + 7
    address = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    fake = ctx.socket(zmq.ROUTER)
    fake.bind(address)
    seen = []

    def answer():
        if fake.poll(10_000):
            identity, head, *_ = fake.recv_multipart()
            seen.append(unpack_header(head))
            fake.send_multipart([identity, pack_header(0, seen[-1].sequence, layout_version=other),
                                 json.dumps({"idle_timeout_s": 1}).encode()])

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        with pytest.raises(TransportError) as err, ZmqSimulation(ScenarioConfig(devices=1), address=address,
                                                                 connect_timeout_s=5):
            pass
    finally:
        thread.join()
        fake.close(linger=0)
        ctx.term()
    assert seen[0].magic == layout.MAGIC and seen[0].layout_version == layout.LAYOUT_VERSION
    msg = str(err.value)
    assert f"this client uses layout version {layout.LAYOUT_VERSION}" in msg and f"version {other}" in msg


def test_second_client_is_told_the_server_is_busy(server):
    with ZmqSimulation(ScenarioConfig(devices=2), address=server.address) as first:
        with pytest.raises(SimulationError, match="busy with another client .* one session at a time"), \
                ZmqSimulation(ScenarioConfig(devices=2), address=server.address):
            pass
        assert len(first.channel_report().records) == 2  # the first session is unharmed


def test_killed_client_frees_ns3_and_segment_then_serves_the_next(server):
    script = textwrap.dedent("""
        import sys, time
        from cosim.simulator.scenario import ConfigError, ScenarioConfig
        from cosim.simulator.zmq_client import ZmqSimulation
        sim = ZmqSimulation(ScenarioConfig(devices=2), address=sys.argv[1])
        sim.start()
        sim.channel_report()
        print(sim.server_info["ns3_pid"], sim.server_info["segment"], flush=True)
        time.sleep(600)
    """)
    client = subprocess.Popen([sys.executable, "-c", script, server.address], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    pid, seg = client.stdout.readline().split()
    assert (bridge.SHM_DIR / seg).exists()
    time.sleep(1.5 * IDLE_S)  # the keep-alive holds an idle session open past the idle timeout
    assert (bridge.SHM_DIR / seg).exists() and not pid_gone(int(pid), 0)
    client.kill()
    client.wait()
    t0 = time.monotonic()
    assert pid_gone(int(pid), within_s=IDLE_S + 3), "ns-3 outlived its silent client"
    assert gone(bridge.SHM_DIR / seg, within_s=1), "the segment was not removed"
    assert IDLE_S / 2 < time.monotonic() - t0 < IDLE_S + 3  # the idle timeout, not at once
    assert "the client sent nothing for" in server.log()
    with ZmqSimulation(ScenarioConfig(devices=3), address=server.address) as sim:
        assert sim.server_info["ns3_pid"] != int(pid)
        assert len(sim.channel_report().records) == 3


def test_ns3_killed_on_the_server_reaches_the_client(server):
    with pytest.raises(SimulationError) as err, \
            ZmqSimulation(ScenarioConfig(devices=4), address=server.address, timeout_s=30) as sim:
        sim.channel_report()
        pid, seg = sim.server_info["ns3_pid"], sim.server_info["segment"]
        threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
        t0 = time.monotonic()
        try:
            sim.execute(RoundPlan.equal_shares(0, [True] * 4, 50_000_000, 1000, deadline_s=300.0))
        finally:
            elapsed = time.monotonic() - t0
    msg = str(err.value)
    assert f"ns-3 server at {server.address}" in msg
    assert "killed by signal SIGKILL" in msg and "Last lines of its log" in msg and "--shm=" in msg
    assert elapsed < 3.0
    assert gone(bridge.SHM_DIR / seg, within_s=5)
    assert "ns-3 failed" in server.log()


def test_sigterm_to_the_server_stops_ns3_and_answers_the_waiting_client(ns3_binary, tmp_path):
    srv = Server(tmp_path / "server.log")
    try:
        with pytest.raises(SimulationError) as err, \
                ZmqSimulation(ScenarioConfig(devices=4), address=srv.address, timeout_s=30) as sim:
            sim.channel_report()
            pid, seg = sim.server_info["ns3_pid"], sim.server_info["segment"]
            threading.Timer(0.3, srv.proc.send_signal, (signal.SIGTERM,)).start()
            sim.execute(RoundPlan.equal_shares(0, [True] * 4, 50_000_000, 1000, deadline_s=300.0))
        assert srv.proc.wait(timeout=15) == 0
    finally:
        srv.stop()
    assert "server was stopped (received SIGTERM) while CMD_EXECUTE" in str(err.value)
    assert pid_gone(pid, within_s=1) and not (bridge.SHM_DIR / seg).exists()
    assert "stopped (received SIGTERM)" in srv.log()


def test_ctrl_c_on_the_server_ends_an_idle_session_and_tells_its_client(ns3_binary, tmp_path):
    srv = Server(tmp_path / "server.log")
    try:
        sim = ZmqSimulation(ScenarioConfig(devices=2), address=srv.address, timeout_s=30)
        with pytest.raises(SimulationError) as err, sim:
            sim.channel_report()
            pid, seg = sim.server_info["ns3_pid"], sim.server_info["segment"]
            srv.proc.send_signal(signal.SIGINT)
            assert srv.proc.wait(timeout=15) == 0
            assert pid_gone(pid, within_s=1) and not (bridge.SHM_DIR / seg).exists()
            t0 = time.monotonic()
            try:
                sim.channel_report()
            finally:
                elapsed = time.monotonic() - t0
    finally:
        srv.stop()
    assert "the ns-3 server was stopped (Ctrl-C)" in str(err.value) and elapsed < 1.0
    assert "stopped (Ctrl-C)" in srv.log()


def test_killed_server_is_a_lost_connection_not_a_hang(ns3_binary, tmp_path):
    srv = Server(tmp_path / "server.log")
    try:
        sim = ZmqSimulation(ScenarioConfig(devices=2), address=srv.address, timeout_s=60)
        lost = f"lost the connection to the ns-3 server at {srv.address}"
        with pytest.raises(TransportError, match=lost), sim:
            sim.channel_report()
            pid, seg = sim.server_info["ns3_pid"], sim.server_info["segment"]
            srv.proc.kill()
            srv.proc.wait()
            t0 = time.monotonic()
            try:
                sim.channel_report()
            finally:
                elapsed = time.monotonic() - t0
    finally:
        srv.stop()
    assert elapsed < 6, elapsed
    # ns-3 notices that the process which made its segment is gone, removes it and exits
    assert pid_gone(pid, within_s=3) and gone(bridge.SHM_DIR / seg, within_s=1)


def test_loopback_detection_for_the_bind_warning():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://localhost:1")
    assert is_loopback("tcp://[::1]:5555") and is_loopback("ipc:///tmp/x")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://*:5555")
    assert not is_loopback("tcp://10.1.2.3:5555") and not is_loopback("tcp://eth0:5555")


def test_a_run_over_zmq_records_what_a_run_over_shared_memory_records(server, tmp_path):
    """`cosim run` with transport=zmq: every recorded number (wall times aside) as with shm."""
    from cosim.experiment.config import load_config
    from cosim.experiment.runloop import run_experiment
    from tests.test_run_e2e import RESUME, assert_same_rounds

    runs = [run_experiment(load_config("smoke", [f"results_dir={tmp_path / transport}", *RESUME,
                                                 f"transport={transport}", f"ns3_address={server.address}"]))
            for transport in ("shm", "zmq")]
    assert_same_rounds(runs[1].path, runs[0].path)
    simulator = runs[1].manifest["simulator"]
    assert simulator["transport"] == "zmq" and simulator["ns3_pid"] > 0


def test_a_client_names_only_files_in_the_servers_data_directory(ns3_binary, tmp_path, monkeypatch):
    """Relative names are read from --data-dir; a path outside it, or any file at all for a server
    without one, or an output file, is refused; a malformed trace's error names the line, never its
    text (it could be any file's)."""
    data, outside = tmp_path / "data", tmp_path / "private"
    data.mkdir()
    outside.mkdir()
    write_trace(data / "cars.ns2", {0: (100.0, 0.0)})
    (data / "bad.ns2").write_text("$node_(0) set X_ 1\nroot:x:0:0:root:/root:/bin/bash\n")
    secret = write_trace(outside / "secret.ns2", {0: (5.0, 0.0)})
    monkeypatch.chdir(data)  # the client checks relative names in its own working directory
    confined = Server(tmp_path / "confined.log", data_dir=data)
    open_server = Server(tmp_path / "open.log")
    try:
        def start(server, **kw):
            cfg = ScenarioConfig(devices=1, mobility="ns2", **kw)
            with ZmqSimulation(cfg, address=server.address, timeout_s=60) as sim:
                return sim.channel_report().records["x_m"][0]

        assert start(confined, trace_file=Path("cars.ns2")) == pytest.approx(100.0)
        with pytest.raises(ConfigError, match="outside the server's data directory"):
            start(confined, trace_file=secret)
        with pytest.raises(ConfigError, match="reads no files named by clients.*--data-dir"):
            start(open_server, trace_file=Path("cars.ns2"))
        with pytest.raises(ConfigError, match="names a file on the client's host"):
            scenario_from_dict({**ScenarioConfig(devices=1).to_dict(), "flow_monitor_xml": "/etc/cron.d/x"},
                               data)
        with pytest.raises(SimulationError, match=r"bad\.ns2:2: not an ns-2 mobility command") as err:
            start(confined, trace_file=Path("bad.ns2"))
        assert "root:" not in str(err.value)
    finally:
        confined.stop()
        open_server.stop()


def test_a_server_with_keys_lets_in_only_the_clients_it_allows(ns3_binary, tmp_path):
    """CURVE: the server's key pair and a folder of allowed clients' public keys (`cosim keys new`)."""
    result = CliRunner().invoke(app, ["keys", "new", "server", "--dir", str(tmp_path / "server")])
    assert result.exit_code == 0, result.output
    for name in ("alice", "mallory"):
        assert CliRunner().invoke(app, ["keys", "new", name, "--dir", str(tmp_path / name)]).exit_code == 0
    assert oct((tmp_path / "alice" / "alice.key_secret").stat().st_mode & 0o777) == "0o600"
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "alice.key").write_bytes((tmp_path / "alice" / "alice.key").read_bytes())
    secret = tmp_path / "server" / "server.key_secret"
    server = Server(tmp_path / "server.log", options=("--keys", str(secret), "--allow", str(allowed)))
    try:
        assert server.wait_log("clients authenticate with CURVE keys: 1 allowed (alice)", 5), server.log()
        cfg = ScenarioConfig(devices=2)
        key = tmp_path / "server" / "server.key"
        with ZmqSimulation(cfg, address=server.address, client_key=tmp_path / "alice" / "alice.key_secret",
                           server_key=key) as sim:
            assert sim.server_info["authentication"] == "curve"
            assert len(sim.channel_report().snr_db) == 2
        refused = {"mallory": dict(client_key=tmp_path / "mallory" / "mallory.key_secret", server_key=key),
                   "no key": {},
                   "wrong server key": dict(client_key=tmp_path / "alice" / "alice.key_secret",
                                            server_key=tmp_path / "mallory" / "mallory.key")}
        why = {"mallory": "does not allow this client's key", "no key": "requires CURVE keys",
               "wrong server key": "the keys do not match"}
        for who, keys in refused.items():
            with pytest.raises(ServerRefused, match=why[who]):
                ZmqSimulation(cfg, address=server.address, connect_timeout_s=5, **keys).start()
        assert server.log().count("devices, ideal-fdma radio") == 1  # one session started: alice's
    finally:
        server.stop()


def test_key_files_are_checked_before_anything_connects(tmp_path):
    with pytest.raises(ConfigError, match="no such secret key file"):
        ZmqSimulation(ScenarioConfig(devices=1), client_key=tmp_path / "nope.key_secret",
                      server_key=tmp_path / "server.key")
    with pytest.raises(ConfigError, match="go together"):
        ZmqSimulation(ScenarioConfig(devices=1), client_key=tmp_path / "a.key_secret")
    with pytest.raises(ConfigError, match="ns3_client_key"):
        load_config("smoke", ["transport=zmq", f"ns3_client_key={tmp_path}/a.key_secret"])


def test_flow_monitor_xml_comes_back_to_the_client(server, tmp_path):
    """ns-3 writes FlowMonitor XML in the session's folder on the server's host; the client gets it
    with the answer to its shutdown, where its scenario asked, and the server keeps nothing."""
    local = tmp_path / "here" / "flowmon.xml"
    cfg = ScenarioConfig(devices=2, radio="lte", flow_monitor_xml=local)
    with ZmqSimulation(cfg, address=server.address, timeout_s=60) as sim:
        sim.channel_report()
        sim.execute(RoundPlan.equal_shares(0, [True, True], 20_000, 5_000, deadline_s=5.0))
        folder = Path(sim.server_info["session_folder"])
        assert folder.is_dir() and not local.exists()
    root = ET.parse(local).getroot()
    assert root.tag == "FlowMonitor" and len(root.find("FlowStats")) > 0
    assert not folder.exists()
