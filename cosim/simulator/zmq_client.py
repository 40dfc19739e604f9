"""ZMQ transport: the ns-3 scenario on one host, the learning on another.

    # on the ns-3 host (loopback only unless told otherwise)
    python -m cosim.ns3_server --bind tcp://127.0.0.1:5555
    # on the learning host, e.g. through `ssh -N -L 5555:127.0.0.1:5555 ns3-host`
    with ZmqSimulation(ScenarioConfig(devices=10), address="tcp://127.0.0.1:5555") as sim:
        report = sim.channel_report()
        outcome = sim.execute(plan)

``ZmqSimulation`` has the API of ``Ns3Simulation`` (context manager, ``channel_report()``,
``execute(plan)``, ``echo(plan)``), so the round loop runs over either.

Why a relay. The server (``cosim.ns3_server``) starts the scenario on its own host with the
ordinary ``Ns3Simulation`` and copies each message between the TCP socket and the shared-memory
segment. The C++ scenario therefore stays free of dependencies: no libzmq headers or library are
needed to build it, which matters on clusters where one cannot install system packages; the
shared-memory bridge it reuses is the tested one, with its liveness checks, timeouts and cleanup;
and the extra local hop costs well under a millisecond. ``python -m bench.zmq_bench`` measures it:
on a busy 2-core machine, a K=100 echo round trip took (p50) about 30 us over shared memory, 115 us
over bare pyzmq TCP loopback and 200 us through the relay, so the hop adds about 80 us (about 35 us
of it is the server's work, the shared-memory round trip included) to each exchange; a full round
of a small scenario (report + execute) took about 0.5 ms longer than over shared memory, against
milliseconds to seconds of simulating it.

``trace_file`` and ``activity_file`` name files in the server's ``--data-dir`` (the client checks the
same names where it runs, so a shared file system or a copy works). ``flow_monitor_xml`` is a path
on the client's host: ns-3 writes the XML in the session's folder on the server, which sends it back
with its answer to SHUTDOWN.

Wire format. Every message is a ZMQ multipart message over a DEALER (client) / ROUTER (server)
pair. Frame 0 is a fixed 16-byte header, little-endian ``<IIII``: ``magic`` (``layout.MAGIC``),
``layout_version`` (``layout.LAYOUT_VERSION``; magic and version stay at offsets 0 and 4 forever),
``code`` and ``sequence`` (chosen by the client, echoed by the server). In a request ``code`` is a
command: ``CMD_REPORT``, ``CMD_EXECUTE``, ``CMD_SHUTDOWN``, ``CMD_ECHO`` from ``cosim.wire.layout``, or
one of the transport's own ``CMD_HELLO``, ``CMD_START``, ``CMD_PING`` (below). In a reply it is a
status from ``cosim.wire.layout``: ``STATUS_OK``, ``STATUS_READY`` or ``STATUS_ERROR``. The frames that
follow are the same bytes as in the shared-memory segment:

    request                                   reply
    HELLO                                     OK     + JSON {server, host, layout_version, idle_timeout_s}
    START    + JSON {scenario, timeout_s, ..} READY  + JSON {host, ns3_pid, segment, log_path}
    REPORT                                    OK     + ReportHeader  + ReportRecord[K]
    EXECUTE  + PlanHeader + PlanRecord[K]     OK     + OutcomeHeader + OutcomeRecord[K]
             + PlanStep[N]                           + OutcomeStep[N]
    ECHO     + PlanHeader + PlanRecord[K]     OK     + ReportHeader  + ReportRecord[K]
             + PlanStep[N]
    SHUTDOWN [+ JSON {graceful: false}]       OK     + JSON {returncode, flow_monitor} [+ FlowMonitor XML]
    PING     (keep-alive, no reply)
    any                                       ERROR  + JSON {kind, message, session_closed}
    (none: sequence 0, the server ended the   ERROR  + JSON {kind, message, session_closed}
     session on its own: stopped, idle)

START's ``max_steps`` sizes the server's segment for the plans' steps (all devices together).
JSON is the only encoding besides the structs (no pickle). Both sides refuse a peer whose magic or
layout version differs from their own, naming both versions. The server serves one client session
at a time; another client is told it is busy. While a session is open the client sends a PING every
quarter of the server's ``--idle-timeout``, so a long learning step does not end the session but a
client that died or went silent does.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
import time
from pathlib import Path
from typing import NamedTuple

import zmq
from zmq.utils.monitor import recv_monitor_message

from cosim.simulator.scenario import ConfigError, ScenarioConfig
from cosim.simulator.simulation import (
    STEPS_PER_DEVICE,
    ScenarioNotBuilt,
    SimulationError,
    check_room,
    interrupts_held,
    sigterm_as_interrupt,
)
from cosim.simulator.zmq_keys import KeyPair, public_key
from cosim.wire import layout
from cosim.wire.messages import ChannelReport, RoundOutcome, RoundPlan, read_outcome, read_report

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
SERVER_COMMAND = "python -m cosim.ns3_server --bind"

WIRE_HEADER = struct.Struct("<IIII")  # magic, layout_version, code, sequence
_COUNTS = struct.Struct("<II")
STRUCT_BYTES = {s.name: s.dtype.itemsize for s in layout.STRUCTS}  # Struct.dtype is built on each access
CMD = layout.COMMANDS
STATUS = layout.STATUSES
# commands of the transport alone (never written into a segment), outside layout.COMMANDS' range
TRANSPORT_COMMANDS = {"CMD_HELLO": 16, "CMD_START": 17, "CMD_PING": 18}
CMD_HELLO = TRANSPORT_COMMANDS["CMD_HELLO"]
CMD_START = TRANSPORT_COMMANDS["CMD_START"]
CMD_PING = TRANSPORT_COMMANDS["CMD_PING"]
if set(TRANSPORT_COMMANDS.values()) & set(CMD.values()):
    raise AssertionError("transport command codes collide with cosim.wire.layout.COMMANDS")
COMMAND_NAMES = {v: k for k, v in {**CMD, **TRANSPORT_COMMANDS}.items()}

HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
NOTICE_SEQUENCE = 0  # an ERROR the server sends unasked: it ended the session (stopped, idle)
HEARTBEAT_IVL_MS = 2_000  # ZMTP heartbeats: a vanished peer host drops the connection
HEARTBEAT_TIMEOUT_MS = 10_000
RECONNECT_GRACE_S = 3.0  # a request fails if the connection stays down this long
_SLICE_S = 0.1  # deadline and connection state are checked this often while waiting for a reply


class TransportError(SimulationError):
    """The ZMQ transport cannot go on: a lost connection, a malformed or mismatched message."""


class ServerUnreachable(TransportError):
    """No ns-3 server answered at the address."""


class ServerRefused(TransportError):
    """The server and this client could not agree on keys: the client is not let in."""


class WireHeader(NamedTuple):
    magic: int
    layout_version: int
    code: int
    sequence: int


def pack_header(code: int, sequence: int, layout_version: int = layout.LAYOUT_VERSION) -> bytes:
    return WIRE_HEADER.pack(layout.MAGIC, layout_version, code, sequence & 0xFFFFFFFF)


def unpack_header(frame) -> WireHeader:
    """Frame 0 of a message; raises TransportError if it cannot be a cosim header at all."""
    if len(frame) != WIRE_HEADER.size:
        raise TransportError(f"not a cosim message: header frame of {len(frame)} bytes, "
                             f"expected {WIRE_HEADER.size}")
    return WireHeader._make(WIRE_HEADER.unpack(frame))


def error_payload(kind: str, message: str, session_closed: bool = False) -> bytes:
    return json.dumps({"kind": kind, "message": message, "session_closed": session_closed}).encode()


def message_frames(frames, header_struct: layout.Struct, arrays: tuple[layout.Struct, ...],
                   what: str, max_devices: int, max_steps: int = 0) -> tuple:
    """Check that frames are one header and its arrays, sized as the header says; return them.

    Every message header starts round_index, num_devices; a plan's and an outcome's go on with
    num_steps, and their step array follows the per-device records."""
    if len(frames) != 1 + len(arrays):
        raise TransportError(f"{what}: expected {1 + len(arrays)} frames (header, "
                             f"{', '.join(a.name for a in arrays)}), got {len(frames)}")
    header = frames[0]
    header_size = STRUCT_BYTES[header_struct.name]
    if len(header) != header_size:
        raise TransportError(f"{what}: {header_struct.name} of {len(header)} bytes, expected {header_size}")
    counts = _COUNTS.unpack_from(header, 4)  # num_devices, then num_steps where the header has it
    for i, (frame, struct_, limit, unit) in enumerate(zip(frames[1:], arrays, (max_devices, max_steps),
                                                          ("devices", "steps"), strict=False)):
        n = counts[i]
        if n > limit:
            raise TransportError(f"{what}: {n} {unit}, the scenario has room for {limit}")
        size = STRUCT_BYTES[struct_.name]
        if len(frame) != n * size:
            raise TransportError(f"{what}: {len(frame)} bytes of {struct_.name}, expected {n} x {size}")
    return tuple(frames)


def is_loopback(address: str) -> bool:
    """Whether a ZMQ endpoint accepts connections from this host only."""
    import ipaddress

    if address.startswith(("ipc://", "inproc://")):
        return True
    if not address.startswith("tcp://"):
        return False
    host = address[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if ";" in host:  # tcp://source;destination
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a wildcard, an interface name or a host name


class ZmqSimulation:
    """One ns-3 scenario running under ``cosim.ns3_server`` on (possibly) another host.

    ``timeout_s`` bounds every command (as in ``Ns3Simulation``), ``startup_timeout_s`` the start
    of the scenario, ``connect_timeout_s`` how long the server may take to answer at all.
    """

    def __init__(self, scenario: ScenarioConfig, address: str = DEFAULT_ADDRESS, *,
                 timeout_s: float = 900.0, startup_timeout_s: float = 120.0,
                 connect_timeout_s: float = 10.0, max_steps: int | None = None,
                 client_key: Path | str | None = None, server_key: Path | str | None = None,
                 layout_version: int = layout.LAYOUT_VERSION):
        if (client_key is None) != (server_key is None):
            raise ConfigError("a client's secret key and the server's public key go together (CURVE)")
        self.scenario = scenario
        self._keys = (KeyPair.load(client_key), public_key(server_key)) if client_key is not None else None
        self.max_steps = STEPS_PER_DEVICE * scenario.devices if max_steps is None else int(max_steps)
        self.address = address
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._layout_version = layout_version
        self.server_info: dict = {}  # what the server said of itself and of the scenario it started
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._lock = threading.Lock()  # the socket is shared with the keep-alive thread
        self._stop_keepalive = threading.Event()
        self._keepalive: threading.Thread | None = None
        self._sequence = 0
        self._connected = False
        self._ever_connected = False
        self._down_since: float | None = None
        self._session_open = False
        self._signals = contextlib.ExitStack()

    # -- lifetime -----------------------------------------------------------------------------
    def __enter__(self) -> ZmqSimulation:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(graceful=exc_type is None)

    def start(self) -> None:
        self._stop_keepalive.clear()
        self._signals.enter_context(sigterm_as_interrupt())
        try:
            self._open_socket()
            _, frames = self._request(CMD_HELLO, [], "connecting", self.connect_timeout_s)
            self.server_info = hello = self._json(frames, "HELLO reply")
            # FlowMonitor XML is written on the server's host and comes back on shutdown
            scenario = {**self.scenario.to_dict(), "flow_monitor_xml": None}
            start = {"scenario": scenario, "timeout_s": self.timeout_s,
                     "startup_timeout_s": self.startup_timeout_s, "max_steps": self.max_steps,
                     "flow_monitor": self.scenario.flow_monitor_xml is not None}
            _, frames = self._request(CMD_START, [json.dumps(start).encode()], "starting the scenario",
                                      self.startup_timeout_s + 30.0, expect=STATUS["STATUS_READY"])
            self._session_open = True
            self.server_info = {**hello, **self._json(frames, "START reply")}
            idle = float(hello.get("idle_timeout_s") or 0)
            if idle > 0:
                self._keepalive = threading.Thread(target=self._ping_every, args=(max(idle / 4, 0.05),),
                                                   name="cosim-zmq-keepalive", daemon=True)
                self._keepalive.start()
        except BaseException:
            self.close(graceful=False)
            raise

    def close(self, graceful: bool = True) -> None:
        """End the session on the server (its ns-3 and segment go) and close the connection."""
        with interrupts_held():
            self._close(graceful)

    def _close(self, graceful: bool) -> None:
        self._stop_keepalive.set()
        if self._keepalive is not None:
            self._keepalive.join()
            self._keepalive = None
        if self._sock is not None and self._session_open:
            self._session_open = False
            payload = [] if graceful else [json.dumps({"graceful": False}).encode()]
            with contextlib.suppress(SimulationError, zmq.ZMQError):
                _, frames = self._request(CMD["CMD_SHUTDOWN"], payload, "shutting down",
                                          30.0 if graceful else 5.0)
                self._keep_flow_monitor(frames)
        if self._sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._sock.close(linger=0)
            self._ctx.term()
            self._sock = self._monitor = self._ctx = None
        self._signals.close()

    def _keep_flow_monitor(self, frames: list[bytes]) -> None:
        """Write the FlowMonitor XML the server sent back where the scenario wants it."""
        path = self.scenario.flow_monitor_xml
        if path is not None and len(frames) == 2:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(frames[1])

    def _open_socket(self) -> None:
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDTIMEO, 5_000)
        sock.setsockopt(zmq.RCVTIMEO, int(1000 * _SLICE_S))
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1_000)
        if self._keys is not None:
            own, server = self._keys
            sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = own.secret, own.public, server
        events = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | HANDSHAKE_FAILED
        self._monitor = sock.get_monitor_socket(events)
        self._sock = sock
        try:
            sock.connect(self.address)
        except zmq.ZMQError as e:
            raise ServerUnreachable(f"cannot connect to {self.address!r}: {e}. {self._how_to_start()}") \
                from None

    def _ping_every(self, interval_s: float) -> None:
        ping = pack_header(CMD_PING, 0, self._layout_version)
        while not self._stop_keepalive.wait(interval_s):
            with self._lock:
                if self._sock is None or self._stop_keepalive.is_set():
                    return
                with contextlib.suppress(zmq.ZMQError):
                    self._sock.send(ping, zmq.DONTWAIT)

    # -- the round protocol -------------------------------------------------------------------
    def channel_report(self) -> ChannelReport:
        """Ask the base station to measure every device now."""
        _, frames = self._request(CMD["CMD_REPORT"], [], "measuring the channel", self._command_timeout)
        return read_report(*message_frames(frames, layout.REPORT_HEADER, (layout.REPORT_RECORD,),
                                           "report from the server", self.scenario.devices))

    def execute(self, plan: RoundPlan) -> RoundOutcome:
        """Enact one round's plan at packet level on the server's ns-3 and return what happened."""
        if plan.num_devices != self.scenario.devices:
            raise ValueError(f"the plan has {plan.num_devices} devices, the scenario "
                             f"{self.scenario.devices}")
        check_room(plan.num_steps, self.max_steps)
        _, frames = self._request(CMD["CMD_EXECUTE"], list(plan.wire), f"round {plan.round_index}",
                                  self._command_timeout)
        return read_outcome(*message_frames(frames, layout.OUTCOME_HEADER,
                                            (layout.OUTCOME_RECORD, layout.OUTCOME_STEP),
                                            "outcome from the server", self.scenario.devices, self.max_steps))

    def echo(self, plan: RoundPlan) -> ChannelReport:
        """Send a plan and read a report back without simulating: the transport's own cost."""
        check_room(plan.num_steps, self.max_steps)
        _, frames = self._request(CMD["CMD_ECHO"], list(plan.wire), "echo", self._command_timeout)
        return read_report(*message_frames(frames, layout.REPORT_HEADER, (layout.REPORT_RECORD,),
                                           "echo from the server", self.scenario.devices))

    @property
    def _command_timeout(self) -> float:
        return self.timeout_s + 10.0  # the server's own bridge timeout answers first

    # -- requests -----------------------------------------------------------------------------
    def _request(self, code: int, frames: list, what: str, timeout_s: float,
                 expect: int = STATUS["STATUS_OK"]) -> tuple[WireHeader, list[bytes]]:
        with self._lock:
            sock = self._sock
            opening_or_closing = code in (CMD_HELLO, CMD_START, CMD["CMD_SHUTDOWN"])
            if sock is None or not (opening_or_closing or self._session_open):
                raise TransportError("the simulation is not running (use it inside `with`)")
            self._poll_events()
            self._sequence = (self._sequence + 1) & 0xFFFFFFFF or 1  # 0 is the server's notices
            try:
                sock.send_multipart([pack_header(code, self._sequence, self._layout_version), *frames])
            except zmq.Again:
                raise self._lost(what) from None
            sent = time.monotonic()
            deadline = sent + timeout_s
            while True:
                try:
                    reply = sock.recv_multipart()  # waits at most _SLICE_S (RCVTIMEO)
                except zmq.Again:
                    now = time.monotonic()
                    if now >= deadline:
                        raise self._timed_out(code, what, timeout_s) from None
                    self._poll_events()
                    if self._ever_connected and not self._connected \
                            and now - max(self._down_since, sent) > RECONNECT_GRACE_S:
                        raise self._lost(what) from None
                    continue
                header = self._check(reply[0], reply[1:], what)
                if header.sequence == NOTICE_SEQUENCE and header.code == STATUS["STATUS_ERROR"]:
                    self._checked_status(header, reply[1:], what, expect)  # the server ended the session
                if header.sequence != self._sequence:
                    continue  # the late answer to a request that was given up on
                return header, self._checked_status(header, reply[1:], what, expect)

    def _check(self, first, rest: list[bytes], what: str) -> WireHeader:
        header = unpack_header(first)
        if header.magic != layout.MAGIC:
            raise TransportError(f"the peer at {self.address} is not a cosim ns-3 server (magic "
                                 f"0x{header.magic:08X}, expected 0x{layout.MAGIC:08X})")
        if header.layout_version != self._layout_version:
            said = ""
            if header.code == STATUS["STATUS_ERROR"]:
                with contextlib.suppress(Exception):
                    said = f" It said: {json.loads(rest[0])['message']}"
            raise TransportError(
                f"message layout mismatch while {what}: this client uses layout version "
                f"{self._layout_version}, the ns-3 server at {self.address} version "
                f"{header.layout_version}; run the same cosim version on both hosts.{said}")
        return header

    def _checked_status(self, header: WireHeader, frames: list[bytes], what: str, expect: int) -> list:
        if header.code == expect:
            return frames
        if header.code != STATUS["STATUS_ERROR"]:
            raise TransportError(f"unexpected status {header.code} from {self.address} while {what}")
        info = self._json(frames, "error reply")
        if info.get("session_closed"):
            self._session_open = False
        message = f"ns-3 server at {self.address} ({self.server_info.get('host', '?')}): {info['message']}"
        kind = info.get("kind")
        if kind == "config":
            raise ConfigError(message)
        if kind == "not_built":
            raise ScenarioNotBuilt(message)
        raise SimulationError(message)

    @staticmethod
    def _json(frames: list[bytes], what: str) -> dict:
        try:
            value = json.loads(frames[0])
        except (IndexError, ValueError, UnicodeDecodeError):
            raise TransportError(f"malformed {what}: expected one JSON frame") from None
        if not isinstance(value, dict):
            raise TransportError(f"malformed {what}: expected a JSON object")
        return value

    def _poll_events(self) -> None:
        """Take in the socket's connection events without waiting; a refused handshake ends here."""
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event == zmq.EVENT_CONNECTED:
                self._connected = self._ever_connected = True
                self._down_since = None
            elif event == zmq.EVENT_DISCONNECTED:
                self._connected = False
                self._down_since = time.monotonic()
            elif event & HANDSHAKE_FAILED:
                raise self._refused(event)

    def _refused(self, event: int) -> ServerRefused:
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            why = ("it does not allow this client's key: give the server's user your public key "
                   "(the NAME.key beside the ns3_client_key file) to put in its --allow folder")
        elif self._keys is None:
            why = ("it requires CURVE keys: set ns3_client_key (your NAME.key_secret, from `cosim keys "
                   "new NAME`) and ns3_server_key (the server's public key file)")
        else:
            why = ("the keys do not match: ns3_server_key must be the public key of the server's --keys, "
                   "and the server must use keys at all")
        return ServerRefused(f"the ns-3 server at {self.address} refused the connection: {why}")

    def _how_to_start(self) -> str:
        return (f"Start the server on the ns-3 host with `{SERVER_COMMAND} {self.address}` "
                "(it listens on loopback unless given another address, e.g. tcp://0.0.0.0:PORT; "
                "from another host an SSH tunnel keeps it on loopback), then check the address and port.")

    def _timed_out(self, code: int, what: str, timeout_s: float) -> TransportError:
        if code == CMD_HELLO:
            if self._ever_connected:
                detail = ("something accepted the connection but did not answer: a server busy "
                          "simulating for another client, or not a cosim ns-3 server")
            else:
                detail = "nothing accepted the connection (refused, or the host is unreachable)"
            return ServerUnreachable(f"no ns-3 server answered at {self.address} within "
                                     f"{timeout_s:g} s: {detail}. {self._how_to_start()}")
        return TransportError(f"the ns-3 server at {self.address} gave no answer within {timeout_s:g} s "
                              f"while {what}; raise timeout_s for very large scenarios")

    def _lost(self, what: str) -> TransportError:
        self._session_open = False
        return TransportError(
            f"lost the connection to the ns-3 server at {self.address} while {what} (down for more "
            f"than {RECONNECT_GRACE_S:g} s): the server stopped or the network failed; its log on "
            f"the ns-3 host ({self.server_info.get('host', '?')}) says why")
