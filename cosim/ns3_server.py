"""``python -m cosim.ns3_server``: serve the ns-3 scenario of this host to a learning loop elsewhere.

    python -m cosim.ns3_server --bind tcp://127.0.0.1:5555     # loopback: the default
    python -m cosim.ns3_server --bind tcp://0.0.0.0:5555       # every interface (logs a warning)

A client (``cosim.simulator.zmq_client.ZmqSimulation``) connects and sends the scenario config as JSON;
the server starts the compiled scenario here with ``Ns3Simulation`` over shared memory and relays
each command's message bytes between the TCP socket and the segment (see ``cosim.simulator.zmq_client``
for the reasons and the frames). One client session at a time: another client is told the server
is busy. A session ends when its client shuts it down, when ns-3 fails (the client gets the exit
status and the tail of the ns-3 log), or when the client sends nothing (not even its keep-alive)
for ``--idle-timeout`` seconds: then ns-3 is stopped, its segment removed, and the server waits for
the next client. Ctrl-C or SIGTERM stops ns-3, removes the segment and exits. Log lines go to
stderr. A client may name input files (ns-2 traces) only in ``--data-dir``, and the server writes
no files for it. There is no authentication: keep the default loopback address and reach it
through an SSH tunnel (``ssh -N -L 5555:127.0.0.1:5555 ns3-host``), or restrict a network address
by firewall.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import zmq
from zmq.auth.thread import ThreadAuthenticator

from cosim.simulator.scenario import ConfigError, ScenarioConfig
from cosim.simulator.simulation import (
    STEPS_PER_DEVICE,
    Ns3Simulation,
    ScenarioNotBuilt,
    SimulationError,
    sigterm_as_interrupt,
)
from cosim.simulator.zmq_client import (
    CMD,
    CMD_HELLO,
    CMD_PING,
    CMD_START,
    COMMAND_NAMES,
    DEFAULT_ADDRESS,
    HEARTBEAT_IVL_MS,
    HEARTBEAT_TIMEOUT_MS,
    NOTICE_SEQUENCE,
    STATUS,
    STRUCT_BYTES,
    TransportError,
    error_payload,
    is_loopback,
    message_frames,
    pack_header,
    unpack_header,
)
from cosim.simulator.zmq_keys import KeyPair, allowed_keys
from cosim.wire import layout
from cosim.wire.bridge import BridgeError, ShmSegment
from cosim.wire.messages import read_plan

log = logging.getLogger("cosim.ns3_server")
_POLL_S = 0.2  # longest wait on the socket, so idle sessions are noticed on time
_PLAN_RECORD = layout.PLAN_RECORD.dtype
MAX_STEPS_PER_DEVICE = 100_000  # a client cannot make this server map more than ~8 MB per device


class PlanRejected(ValueError):
    """A plan from the client that must not reach ns-3; the session goes on."""


class RelaySimulation(Ns3Simulation):
    """``Ns3Simulation`` that hands over the segment's message bytes instead of parsed objects."""

    def report_frames(self) -> list[bytes]:
        seg = self._command(CMD["CMD_REPORT"], "measuring the channel")
        return self._answer(seg, "report_header", "report_records", layout.REPORT_RECORD)

    def execute_frames(self, plan: list, round_index: int) -> list[bytes]:
        seg = self._put(plan)
        self._command(CMD["CMD_EXECUTE"], f"round {round_index}")
        out = self._answer(seg, "outcome_header", "outcome_records", layout.OUTCOME_RECORD)
        n = int(seg.raw["outcome_header"][8:12].view("<u4")[0])  # num_steps, after num_devices
        return [*out, seg.raw["outcome_steps"][:n * STRUCT_BYTES[layout.OUTCOME_STEP.name]].tobytes()]

    def echo_frames(self, plan: list) -> list[bytes]:
        seg = self._put(plan)
        self._command(CMD["CMD_ECHO"], "echo")
        return self._answer(seg, "report_header", "report_records", layout.REPORT_RECORD)

    def _put(self, plan: list) -> ShmSegment:
        seg = self._live_segment()
        for region, frame in zip(("plan_header", "plan_records", "plan_steps"), plan, strict=True):
            seg.put(region, frame)
        return seg

    @staticmethod
    def _answer(seg: ShmSegment, header_region: str, records_region: str,
                record: layout.Struct) -> list[bytes]:
        header = seg.raw[header_region]
        k = int(header[4:8].view("<u4")[0])  # num_devices, after round_index
        return [header.tobytes(), seg.raw[records_region][:k * STRUCT_BYTES[record.name]].tobytes()]

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None


def scenario_from_dict(data, data_dir: Path | None = None) -> ScenarioConfig:
    """The client's scenario (``ScenarioConfig.to_dict()`` as JSON), validated like a local one.

    The files it names are read here, on the ns-3 host, so they must lie in the server's data
    directory (relative paths are relative to it); without one, none is accepted. The server
    writes no file a client names: FlowMonitor XML goes to the session's own folder and back to the
    client as data when it shuts the session down."""
    if not isinstance(data, dict):
        raise ConfigError("the START message carries no scenario object")
    names = {f.name for f in fields(ScenarioConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown scenario keys {unknown}: does the client run another cosim version?")
    kw = dict(data)
    if kw.get("ns3_attributes"):  # attributes can name files on this host: its user sets them here
        raise ConfigError("scenario.ns3_attributes cannot be sent to an ns-3 server; run ns-3 locally "
                          "(transport=shm) to set ns-3 attributes")
    kw["ns3_attributes"] = ()
    if kw.get("flow_monitor_xml") is not None:
        raise ConfigError("scenario.flow_monitor_xml names a file on the client's host: ask for "
                          "FlowMonitor with START.flow_monitor, and the XML comes back on shutdown")
    for key in ("trace_file", "activity_file"):
        if kw.get(key) is not None:
            kw[key] = confined(key, kw[key], data_dir)
    try:
        return ScenarioConfig(**kw)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid scenario: {e}") from None


def confined(key: str, name, data_dir: Path | None) -> Path:
    """The file a client names, resolved inside `data_dir` (links followed), or a ConfigError."""
    if data_dir is None:
        raise ConfigError(f"scenario.{key}: this ns-3 server reads no files named by clients; its user "
                          "can start it with --data-dir DIR, and clients then name files relative to DIR")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"scenario.{key} must be a file name relative to the server's data directory")
    root = data_dir.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise ConfigError(f"scenario.{key}={name!r} is outside the server's data directory")
    return path


def _positive(request: dict, key: str, default: float) -> float:
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 < value <= 7 * 86400:
        raise ConfigError(f"START.{key}={value!r} is invalid: a number of seconds in (0, 604800]")
    return float(value)


def _room(request: dict, devices: int) -> int:
    """START's max_steps: room for the plans' steps, within what a segment may hold here."""
    value = request.get("max_steps", STEPS_PER_DEVICE * devices)
    most = MAX_STEPS_PER_DEVICE * devices
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise ConfigError(f"START.max_steps={value!r} is invalid: a whole number in [0, {most}] "
                          f"({MAX_STEPS_PER_DEVICE} per device)")
    return value


def check_plan(frames, devices: int, max_steps: int, execute: bool) -> tuple[list, int]:
    """The plan's frames (header, records, steps) and its round, checked before they reach ns-3."""
    try:
        frames = list(message_frames(frames, layout.PLAN_HEADER, (layout.PLAN_RECORD, layout.PLAN_STEP),
                                     "plan", devices, max_steps))
    except TransportError as e:
        raise PlanRejected(str(e)) from None
    if not execute:  # an echo only copies the plan back: its sizes are all that matter
        return frames, 0
    records = frames[1]
    k = len(records) // STRUCT_BYTES["PlanRecord"]  # message_frames checked it against the header
    if k != devices:
        raise PlanRejected(f"the plan has {k} devices, the scenario {devices}")
    try:
        plan = read_plan(*frames)
    except ValueError as e:
        raise PlanRejected(f"invalid plan: {e}") from None
    if not np.array_equal(np.frombuffer(records, _PLAN_RECORD)["device_id"], np.arange(k)):
        raise PlanRejected("invalid plan: device_id must run 0..K-1 in order")
    if bytes(plan.wire[1]) != bytes(records) or bytes(plan.wire[2]) != bytes(frames[2]):
        raise PlanRejected("invalid plan: its steps must follow each other device by device, in order")
    return frames, plan.round_index


def _peer(frame: zmq.Frame) -> str:
    """The client's IP address as TCP saw it, for the log."""
    try:
        return frame.get("Peer-Address")
    except (zmq.ZMQError, ValueError):  # not over TCP
        return "a local client"


@dataclass
class Session:
    identity: bytes
    peer: str
    sim: RelaySimulation
    folder: Path | None = None  # the session's own files (FlowMonitor XML), removed when it ends
    started: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)
    rounds: int = 0


class Ns3Server:
    """The relay: one ROUTER socket, at most one session (client + its ns-3) at a time."""

    def __init__(self, bind: str = DEFAULT_ADDRESS, idle_timeout_s: float = 60.0, *,
                 binary: Path | str | None = None, log_dir: Path | str | None = None,
                 data_dir: Path | str | None = None, keys: KeyPair | None = None,
                 allow: Path | str | None = None):
        if not idle_timeout_s > 0:
            raise ValueError("idle_timeout_s must be > 0")
        self.bind_address = bind
        self.idle_timeout_s = idle_timeout_s
        self.binary = binary
        self.log_dir = Path(log_dir) if log_dir else None
        self.data_dir = Path(data_dir) if data_dir else None  # the only files clients may name
        self.endpoint: str | None = None
        self.sessions_done = 0
        self._session: Session | None = None
        self._max_sessions: int | None = None
        self._inflight: tuple[bytes, int, str] | None = None  # (client, sequence, what) being served
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 1_000)
        self._sock.setsockopt(zmq.SNDTIMEO, 1_000)  # a reply never blocks the server for long
        self._sock.setsockopt(zmq.RCVTIMEO, int(1000 * _POLL_S))
        self._sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        self._sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        self._host = socket.gethostname()
        self._auth: ThreadAuthenticator | None = None
        self.allowed: list[Path] = []
        if (keys is None) != (allow is None):
            raise ConfigError("the server's key pair and the folder of allowed clients' keys go together")
        if keys is not None:
            self.allowed = allowed_keys(allow)
            self._auth = ThreadAuthenticator(self._ctx)  # answers ZMQ's handshakes: allowed keys only
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(Path(allow).expanduser()))
            self._sock.curve_secretkey = keys.secret
            self._sock.curve_publickey = keys.public
            self._sock.curve_server = True

    # -- lifetime -----------------------------------------------------------------------------
    def bind(self) -> str:
        self._sock.bind(self.bind_address)
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("listening on %s (layout version %d, idle timeout %g s, one client session at a time)",
                 self.endpoint, layout.LAYOUT_VERSION, self.idle_timeout_s)
        if self._auth is not None:
            log.info("clients authenticate with CURVE keys: %d allowed (%s)", len(self.allowed),
                     ", ".join(p.stem for p in self.allowed))
        elif not is_loopback(self.bind_address):
            log.warning("%s accepts connections from the network: anyone who can reach it can start "
                        "ns-3 processes on %s as %s (there is no authentication). Start it with --keys "
                        "and --allow, or keep the loopback default and an SSH tunnel.",
                        self.endpoint, self._host, getpass.getuser())
        return self.endpoint

    def serve(self, max_sessions: int | None = None) -> None:
        """Answer clients until interrupted, or until ``max_sessions`` sessions have ended."""
        self._max_sessions = max_sessions
        while max_sessions is None or self.sessions_done < max_sessions or self._session is not None:
            session = self._session
            if session is not None:
                silent_s = time.monotonic() - session.last_seen
                if silent_s >= self.idle_timeout_s:
                    self._notify(f"the session ended after {silent_s:.1f} s without a message from this "
                                 f"client (--idle-timeout {self.idle_timeout_s:g} s)")
                    self._end_session(f"the client sent nothing for {silent_s:.1f} s "
                                      f"(--idle-timeout {self.idle_timeout_s:g} s)", graceful=False)
                    continue
            try:
                identity, *frames = self._sock.recv_multipart(copy=False)  # waits at most _POLL_S
            except zmq.Again:
                continue
            self._handle(identity.bytes, frames)

    def close(self, reason: str = "closing") -> None:
        """Answer a request in progress with an error, stop ns-3, remove its segment, close."""
        answered = None
        if self._inflight is not None:
            answered, sequence, what = self._inflight
            self._error(answered, sequence, "stopped", f"the ns-3 server was stopped ({reason}) while {what}",
                        session_closed=True)
            self._inflight = None
        if self._session is not None:
            if self._session.identity != answered:
                self._notify(f"the ns-3 server was stopped ({reason})")
            self._end_session(f"the server is stopping ({reason})", graceful=False, next_client=False)
        self._sock.close()
        if self._auth is not None:
            self._auth.stop()
        self._ctx.term()

    # -- messages -----------------------------------------------------------------------------
    def _reply(self, identity: bytes, status: int, sequence: int, frames: list) -> None:
        try:
            self._sock.send_multipart([identity, pack_header(status, sequence), *frames])
        except zmq.ZMQError as e:  # the client is gone or not reading: it will time out
            log.warning("could not answer client %s: %s", identity.hex(), e)

    def _error(self, identity: bytes, sequence: int, kind: str, message: str,
               session_closed: bool = False) -> None:
        self._reply(identity, STATUS["STATUS_ERROR"], sequence,
                    [error_payload(kind, message, session_closed)])

    def _notify(self, message: str) -> None:
        """Tell the session's client, unasked, that its session is over (read with its next request)."""
        self._error(self._session.identity, NOTICE_SEQUENCE, "ended", message, session_closed=True)

    def _handle(self, identity: bytes, frames: list) -> None:
        if not frames:
            return
        try:
            header = unpack_header(frames[0].buffer)
        except TransportError as e:
            log.warning("ignored a message from %s: %s", _peer(frames[0]), e)
            self._error(identity, 0, "protocol", str(e))
            return
        seq = header.sequence
        if header.magic != layout.MAGIC:
            self._error(identity, seq, "protocol", f"not a cosim message (magic 0x{header.magic:08X})")
            return
        if header.layout_version != layout.LAYOUT_VERSION:
            message = (f"message layout mismatch: the client uses layout version {header.layout_version}, "
                       f"this ns-3 server version {layout.LAYOUT_VERSION}; run the same cosim version "
                       "on both hosts")
            log.warning("refused %s: %s", _peer(frames[0]), message)
            self._error(identity, seq, "layout", message)
            return
        session = self._session
        mine = session is not None and session.identity == identity
        if mine:
            session.last_seen = time.monotonic()
        code, payload = header.code, frames[1:]
        if code == CMD_PING:
            return
        if session is not None and not mine:
            busy_s = time.monotonic() - session.started
            self._error(identity, seq, "busy",
                        f"busy with another client ({session.peer}) for {busy_s:.0f} s; this server "
                        "runs one session at a time: wait, or start another server on another port")
            return
        if code == CMD_HELLO:
            info = {"server": "cosim.ns3_server", "host": self._host, "pid": os.getpid(),
                    "layout_version": layout.LAYOUT_VERSION, "idle_timeout_s": self.idle_timeout_s,
                    "authentication": "curve" if self._auth is not None else "none"}
            self._reply(identity, STATUS["STATUS_OK"], seq, [json.dumps(info).encode()])
        elif code == CMD_START:
            if mine:
                self._error(identity, seq, "protocol", "a session is already open on this connection")
            else:
                self._start(identity, seq, payload, _peer(frames[0]))
        elif not mine:
            self._error(identity, seq, "no_session",
                        f"no session is open for this client: it ended (after ns-3 failed, or after "
                        f"--idle-timeout {self.idle_timeout_s:g} s without a message) or never started")
        elif code == CMD["CMD_SHUTDOWN"]:
            graceful = True
            with contextlib.suppress(Exception):
                graceful = bool(json.loads(payload[0].bytes).get("graceful", True))
            folder = session.folder
            try:
                returncode = self._end_session("the client shut it down", graceful=graceful, keep_files=True)
                xml = folder / "flowmon.xml" if folder is not None else None
                files = [xml.read_bytes()] if xml is not None and xml.is_file() else []
            finally:
                _remove(folder)
            reply = {"returncode": returncode, "flow_monitor": bool(files)}
            self._reply(identity, STATUS["STATUS_OK"], seq, [json.dumps(reply).encode(), *files])
        elif code in (CMD["CMD_REPORT"], CMD["CMD_EXECUTE"], CMD["CMD_ECHO"]):
            self._relay(session, seq, code, payload)
        else:
            self._error(identity, seq, "protocol", f"unknown command {code}")

    def _start(self, identity: bytes, seq: int, payload: list, peer: str) -> None:
        try:
            if len(payload) != 1:
                raise ConfigError("the START message must carry one JSON frame")
            try:
                request = json.loads(payload[0].bytes)
            except ValueError as e:
                raise ConfigError(f"the START message is not JSON: {e}") from None
            if not isinstance(request, dict):
                raise ConfigError("the START message must be a JSON object")
            scenario = scenario_from_dict(request.get("scenario"), self.data_dir)
            timeout_s = _positive(request, "timeout_s", 900.0)
            startup_s = _positive(request, "startup_timeout_s", 120.0)
            max_steps = _room(request, scenario.devices)
            flow_monitor = request.get("flow_monitor", False)
            if not isinstance(flow_monitor, bool):
                raise ConfigError(f"START.flow_monitor={flow_monitor!r} must be true or false")
        except (ConfigError, ValueError) as e:
            log.warning("refused a scenario from %s: %s", peer, e)
            self._error(identity, seq, "config", str(e))
            return
        log_path = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"ns3-{time.strftime('%Y%m%d-%H%M%S')}-{self.sessions_done}.log"
        # the session's own folder: ns-3 writes its FlowMonitor XML there, and the client gets it back
        folder = Path(tempfile.mkdtemp(prefix="cosim-session-")) if flow_monitor else None
        if folder is not None:
            scenario = replace(scenario, flow_monitor_xml=folder / "flowmon.xml")
        try:
            sim = RelaySimulation(scenario, binary=self.binary, log_path=log_path, timeout_s=timeout_s,
                                  startup_timeout_s=startup_s, max_steps=max_steps)
        except ScenarioNotBuilt as e:
            log.error("%s", e)
            self._error(identity, seq, "not_built", str(e))
            _remove(folder)
            return
        self._inflight = (identity, seq, "starting the scenario")  # kept if a signal interrupts
        try:
            sim.start()
        except (SimulationError, BridgeError, OSError) as e:
            self._inflight = None
            log.error("ns-3 did not start for %s: %s", peer, e)
            self._error(identity, seq, "simulation", str(e), session_closed=True)
            _remove(folder)
            return
        self._inflight = None
        self._session = Session(identity, peer, sim, folder)
        log.info("session for %s: %d devices, %s radio, rng %d/%d; ns-3 pid %d, segment %s", peer,
                 scenario.devices, scenario.radio, scenario.rng_seed, scenario.rng_run, sim.pid,
                 sim.segment_name)
        info = {"host": self._host, "ns3_pid": sim.pid, "segment": sim.segment_name,
                "log_path": str(sim.log_path), "binary": str(sim.binary),
                "session_folder": str(folder) if folder is not None else None}
        self._reply(identity, STATUS["STATUS_READY"], seq, [json.dumps(info).encode()])
        self._session.last_seen = time.monotonic()

    def _relay(self, session: Session, seq: int, code: int, payload: list) -> None:
        sim, what = session.sim, COMMAND_NAMES[code]
        self._inflight = (session.identity, seq, what)  # kept if a signal interrupts
        log.debug("%s #%d from %s", what, seq, session.peer)
        try:
            if code == CMD["CMD_REPORT"]:
                out = sim.report_frames()
            else:
                buffers = [f.buffer for f in payload]
                plan, round_index = check_plan(buffers, sim.scenario.devices, sim.max_steps,
                                               execute=code == CMD["CMD_EXECUTE"])
                if code == CMD["CMD_EXECUTE"]:
                    out = sim.execute_frames(plan, round_index)
                    session.rounds += 1
                else:
                    out = sim.echo_frames(plan)
        except PlanRejected as e:
            self._inflight = None
            self._error(session.identity, seq, "plan", str(e))
        except (SimulationError, BridgeError) as e:
            self._inflight = None
            log.error("ns-3 failed for %s: %s", session.peer, e)
            self._error(session.identity, seq, "simulation", str(e), session_closed=True)
            self._end_session("ns-3 failed", graceful=False)
        except Exception as e:  # a bug here must not take the server down, nor leave ns-3 running
            self._inflight = None
            log.exception("internal error while relaying %s", what)
            self._error(session.identity, seq, "internal", f"internal server error: {e!r}",
                        session_closed=True)
            self._end_session("internal error", graceful=False)
        else:
            self._inflight = None
            self._reply(session.identity, STATUS["STATUS_OK"], seq, out)
        session.last_seen = time.monotonic()

    def _end_session(self, reason: str, graceful: bool, next_client: bool = True,
                     keep_files: bool = False) -> int | None:
        """Stop the session's ns-3 and remove its segment (and its folder, unless `keep_files`)."""
        session, self._session = self._session, None
        if session is None:
            return None
        more = self._max_sessions is None or self.sessions_done + 1 < self._max_sessions
        next_client = next_client and more
        pid, segment = session.sim.pid, session.sim.segment_name
        try:
            session.sim.close(graceful=graceful)
        finally:
            if not keep_files:
                _remove(session.folder)
            self.sessions_done += 1
            log.info("session for %s ended after %.1f s and %d rounds: %s; ns-3 pid %s stopped "
                     "(exit status %s), segment %s removed%s", session.peer,
                     time.monotonic() - session.started, session.rounds, reason, pid,
                     session.sim.returncode, segment, "; waiting for the next client" if next_client else "")
        return session.sim.returncode


def _remove(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m cosim.ns3_server", description=__doc__.replace("``", "`"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bind", default=DEFAULT_ADDRESS, metavar="ADDRESS",
                    help="ZMQ endpoint to listen on (default %(default)s: this host only); "
                         "tcp://0.0.0.0:PORT listens on every interface, tcp://HOST:* on a free port")
    ap.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS",
                    help="end a session whose client sent nothing, not even its keep-alive, for this "
                         "long: stop its ns-3, remove its segment, wait for the next client "
                         "(default %(default)g)")
    ap.add_argument("--binary", type=Path, default=None,
                    help="compiled cosim-scenario (default $COSIM_NS3_SCENARIO or build/ns3/cosim-scenario)")
    ap.add_argument("--log-dir", type=Path, default=None,
                    help="keep every session's ns-3 log here (default: a temporary file, removed when "
                         "ns-3 exits cleanly)")
    ap.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                    help="the directory whose files (ns-2 traces, SUMO activity files) clients may name, "
                         "relative to it; without it a client can name none")
    ap.add_argument("--keys", type=Path, default=None, metavar="SECRET_KEY",
                    help="the server's secret key file (NAME.key_secret from `cosim keys new NAME`): clients "
                         "must then authenticate with a key in --allow; hand them the public NAME.key")
    ap.add_argument("--allow", type=Path, default=None, metavar="DIR",
                    help="folder of the public keys (*.key) of the clients let in (with --keys)")
    ap.add_argument("--once", action="store_true", help="exit after the first session ends")
    ap.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    a = ap.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if a.verbose else logging.INFO,
                        format="%(asctime)s cosim.ns3_server[%(process)d] %(levelname)s %(message)s")
    if not a.idle_timeout > 0:
        ap.error("--idle-timeout must be > 0")
    port = a.bind.rsplit(":", 1)[-1] if a.bind.startswith("tcp://") else "*"
    if port != "*" and not (port.isdigit() and 0 <= int(port) <= 65535):
        ap.error(f"--bind {a.bind}: the port must be a number from 0 to 65535 or *, as in {DEFAULT_ADDRESS}")
    if a.data_dir is not None and not a.data_dir.is_dir():
        ap.error(f"--data-dir {a.data_dir}: not a directory")
    if (a.keys is None) != (a.allow is None):
        ap.error("--keys and --allow go together: the server's secret key and its clients' public keys")
    try:
        keys = KeyPair.load(a.keys) if a.keys is not None else None
        server = Ns3Server(a.bind, a.idle_timeout, binary=a.binary, log_dir=a.log_dir, data_dir=a.data_dir,
                           keys=keys, allow=a.allow)
    except ConfigError as e:
        ap.error(str(e))
    try:
        server.bind()
    except zmq.ZMQError as e:
        log.error("cannot listen on %s: %s", a.bind, e)
        server.close()
        return 2
    reason = "--once: the session ended"
    try:
        with sigterm_as_interrupt():
            try:
                server.serve(max_sessions=1 if a.once else None)
            except KeyboardInterrupt as e:
                reason = str(e) or "Ctrl-C"
            finally:
                # a second signal must not cut the cleanup short: it is delivered afterwards
                blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
                try:
                    server.close(reason)
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    except KeyboardInterrupt:
        pass
    log.info("stopped (%s)", reason)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
