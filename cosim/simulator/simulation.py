"""``Ns3Simulation``: the ns-3 scenario as a Python object.

    with Ns3Simulation(ScenarioConfig(devices=10)) as sim:
        report = sim.channel_report()
        outcome = sim.execute(RoundPlan.equal_shares(0, [True] * 10, 3e6, 3e6, deadline_s=10))

The process and its segment live exactly as long as the ``with`` block: they are removed on
normal exit, on exceptions, on Ctrl-C and on SIGTERM. The scenario runs in its own session so
that Ctrl-C reaches Python only, which then shuts it down in order. If the scenario dies,
the error names its exit status and the tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from cosim.simulator.scenario import ScenarioConfig
from cosim.wire import layout
from cosim.wire.bridge import BridgeError, PeerDied, ShmSegment
from cosim.wire.messages import ChannelReport, RoundOutcome, RoundPlan, read_outcome, read_report

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = REPO_ROOT / "build" / "ns3" / "cosim-scenario"
CMD = layout.COMMANDS
STATUS = layout.STATUSES
STEPS_PER_DEVICE = 64  # room for plan steps per device unless told otherwise (per-step: τ = 6 or more)


class ScenarioNotBuilt(FileNotFoundError):
    """The compiled ns-3 scenario is missing."""


class SimulationError(BridgeError):
    """The ns-3 scenario failed; the message carries its exit status and the tail of its log."""


def scenario_binary(explicit: Path | str | None = None) -> Path:
    """The compiled scenario: explicit path, $COSIM_NS3_SCENARIO, or the Makefile's build."""
    path = Path(explicit or os.environ.get("COSIM_NS3_SCENARIO") or DEFAULT_BINARY)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ScenarioNotBuilt(
            f"the ns-3 scenario is not built: {path} does not exist. Run `make build` in "
            f"{REPO_ROOT} (or point COSIM_NS3_SCENARIO at a compiled cosim-scenario).")
    return path


def check_room(steps: int, max_steps: int) -> None:
    """A plan must fit the segment, which is sized when the simulation opens."""
    if steps > max_steps:
        raise ValueError(f"the plan has {steps} steps, the simulation was opened with room for {max_steps}; "
                         f"open it with max_steps >= {steps}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cluster's scheduler, `kill`) unwinds like Ctrl-C, so cleanup runs.

    Only the main thread can install signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM that arrive during the block take effect after it, so a second Ctrl-C (or
    a scheduler's SIGTERM following the first) cannot cut a clean-up half-way and leave a process
    or a segment behind. Only the main thread handles signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


class Ns3Simulation:
    """One running ns-3 scenario connected over shared memory."""

    def __init__(self, scenario: ScenarioConfig, *, binary: Path | str | None = None,
                 log_path: Path | str | None = None, timeout_s: float = 900.0,
                 startup_timeout_s: float = 120.0, max_steps: int | None = None,
                 layout_version: int = layout.LAYOUT_VERSION):
        self.scenario = scenario
        self.max_steps = STEPS_PER_DEVICE * scenario.devices if max_steps is None else int(max_steps)
        self.binary = scenario_binary(binary)
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._layout_version = layout_version
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path else None
        self._segment: ShmSegment | None = None
        self._proc: subprocess.Popen | None = None
        self._signals = contextlib.ExitStack()

    # -- lifetime -----------------------------------------------------------------------------
    def __enter__(self) -> Ns3Simulation:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(graceful=exc_type is None)

    def start(self) -> None:
        self._signals.enter_context(sigterm_as_interrupt())
        try:
            self._segment = ShmSegment(self.scenario.devices, self.max_steps,
                                       layout_version=self._layout_version)
            if self.log_path is None:
                fd, name = tempfile.mkstemp(prefix="cosim-ns3-", suffix=".log")
                os.close(fd)
                self.log_path = Path(name)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            argv = [str(self.binary), *self.scenario.to_args(), f"--shm={self._segment.name}",
                    f"--bridgeTimeout={self.timeout_s}"]
            with open(self.log_path, "a") as log:  # a resumed run's simulator writes after the first
                log.write("# " + " ".join(argv) + "\n")
                log.flush()
                self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True)
            self._expect(STATUS["STATUS_READY"], "starting", self.startup_timeout_s)
        except BaseException:
            self.close(graceful=False)
            raise

    def close(self, graceful: bool = True) -> None:
        """Stop the scenario (politely if it is healthy) and remove the segment, whatever signal comes."""
        with interrupts_held():
            self._close(graceful)

    def _close(self, graceful: bool) -> None:
        proc, seg = self._proc, self._segment
        if proc is not None and proc.poll() is None:
            if graceful and seg is not None:
                try:
                    seg.send(CMD["CMD_SHUTDOWN"])
                    proc.wait(timeout=10)
                except (subprocess.TimeoutExpired, OSError):
                    pass
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if seg is not None:
            seg.close()
        self._segment = None
        if self._own_log and self.log_path is not None and proc is not None \
                and proc.returncode == 0:
            self.log_path.unlink(missing_ok=True)
        self._signals.close()

    # -- the round protocol -------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def segment_name(self) -> str | None:
        return self._segment.name if self._segment else None

    def channel_report(self) -> ChannelReport:
        """Ask the base station to measure every device now."""
        seg = self._command(CMD["CMD_REPORT"], "measuring the channel")
        return read_report(seg.raw["report_header"], seg.raw["report_records"])

    def execute(self, plan: RoundPlan) -> RoundOutcome:
        """Enact one round's plan at packet level and return what happened."""
        seg = self._live_segment()
        if plan.num_devices != self.scenario.devices:
            raise ValueError(f"the plan has {plan.num_devices} devices, the scenario "
                             f"{self.scenario.devices}")
        self._put_plan(seg, plan)
        self._command(CMD["CMD_EXECUTE"], f"round {plan.round_index}")
        return read_outcome(seg.raw["outcome_header"], seg.raw["outcome_records"], seg.raw["outcome_steps"])

    def echo(self, plan: RoundPlan) -> ChannelReport:
        """Send a plan and read a report back without simulating: the bridge's own cost."""
        seg = self._live_segment()
        self._put_plan(seg, plan)
        self._command(CMD["CMD_ECHO"], "echo")
        return read_report(seg.raw["report_header"], seg.raw["report_records"])

    def _put_plan(self, seg: ShmSegment, plan: RoundPlan) -> None:
        check_room(plan.num_steps, self.max_steps)
        header, records, steps = plan.wire
        seg.put("plan_header", header)
        seg.put("plan_records", records)
        seg.put("plan_steps", steps)

    def _live_segment(self) -> ShmSegment:
        if self._segment is None or self._proc is None:
            raise BridgeError("the simulation is not running (use it inside `with`)")
        return self._segment

    def _command(self, command: int, what: str) -> ShmSegment:
        seg = self._live_segment()
        seg.send(command)
        self._expect(STATUS["STATUS_OK"], what, self.timeout_s)
        return seg

    def _expect(self, wanted: int, what: str, timeout_s: float) -> None:
        seg = self._live_segment()
        proc = self._proc
        try:
            status = seg.wait_reply(timeout_s, lambda: proc.poll() is None)
        except PeerDied:
            proc.wait()
            raise self._failure(f"while {what}") from None
        except BridgeError as e:
            raise self._failure(f"while {what}: {e}") from None
        if status == STATUS["STATUS_ERROR"]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            raise self._failure(f"while {what}", reported=seg.error_message)
        if status != wanted:
            raise self._failure(f"while {what}: unexpected status {status}")
        if wanted == STATUS["STATUS_READY"]:
            peer = int(seg.header["peer_layout_version"])
            if peer != self._layout_version:
                raise self._failure(
                    f"message layout mismatch: Python uses version {self._layout_version}, "
                    f"the scenario version {peer}; rebuild it with `make build`")

    def _failure(self, context: str, reported: str | None = None) -> SimulationError:
        code = self._proc.poll() if self._proc else None
        parts = [f"ns-3 scenario failed {context}: the process {_describe_exit(code)}."]
        if reported:
            parts.append(f"It reported: {reported}")
        parts.append(f"Last lines of its log ({self.log_path}):\n{_tail(self.log_path)}")
        return SimulationError("\n".join(parts))
