"""The one source of truth for the messages shared by Python and the ns-3 scenario.

Every struct that crosses the shared-memory segment is declared here once. Python builds its
numpy dtypes from these declarations, and ``python -m cosim.wire.layout`` writes the C++ header
``ns3_scenarios/cosim-messages.h`` from them (a test checks that the committed header is
current). Field names carry their units (``_s``, ``_db``, ``_m``, ``_j``, ``_bytes``).

Bump ``LAYOUT_VERSION`` whenever a struct changes: both sides refuse a segment whose version
differs from their own, naming both versions.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = 0x4D495343  # "CSIM" read as a little-endian u32
LAYOUT_VERSION = 4
SEM_BYTES = 32  # sizeof(sem_t) on 64-bit glibc (x86_64, aarch64); the C++ header asserts it
ERROR_BYTES = 512

_CTYPES = {"u32": "uint32_t", "i32": "int32_t", "u64": "uint64_t", "i64": "int64_t", "f64": "double"}
_NPTYPES = {"u32": "<u4", "i32": "<i4", "u64": "<u8", "i64": "<i8", "f64": "<f8"}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # one of _CTYPES, or "bytes" (fixed-size char array), or "sem"
    doc: str
    length: int = 0  # for "bytes"


@dataclass(frozen=True)
class Struct:
    name: str
    doc: str
    fields: tuple[Field, ...]

    @functools.cached_property  # built once: every message parse asks for it
    def dtype(self) -> np.dtype:
        parts = []
        for f in self.fields:
            if f.kind == "bytes":
                parts.append((f.name, f"S{f.length}"))
            elif f.kind == "sem":
                parts.append((f.name, f"V{SEM_BYTES}"))
            else:
                parts.append((f.name, _NPTYPES[f.kind]))
        dt = np.dtype(parts, align=True)
        if dt.itemsize % 8:
            raise AssertionError(f"{self.name} is not a multiple of 8 bytes")
        return dt


def F(name: str, kind: str, doc: str, length: int = 0) -> Field:
    return Field(name, kind, doc, length)


# PlanStep.kind: what one step of a device's round is. A device's steps run in order on each side
# of the link: the device walks its computations, the uplink messages it sends and the downlink
# messages it waits for; the server its computations, the downlink messages it sends and the
# uplink messages it waits for. Sending does not wait for the message to arrive.
STEP_KINDS = {
    "STEP_DEVICE_COMPUTE": 0,  # the device computes for `seconds`
    "STEP_SERVER_COMPUTE": 1,  # the server computes for `seconds` once an accelerator is free
    "STEP_UPLINK": 2,  # the device sends `bytes` to the server
    "STEP_DOWNLINK": 3,  # the server sends `bytes` to the device
}

# Commands Python writes into SegmentHeader.command; ns-3 answers each with SegmentHeader.status.
COMMANDS = {
    "CMD_NONE": 0,
    "CMD_REPORT": 1,  # measure every device's channel, fill ReportHeader + ReportRecord[]
    "CMD_EXECUTE": 2,  # enact PlanHeader + PlanRecord[], fill OutcomeHeader + OutcomeRecord[]
    "CMD_SHUTDOWN": 3,  # finish (FlowMonitor XML etc.) and exit 0
    "CMD_ECHO": 4,  # no simulation: read the plan, write the report region (bridge benchmark)
}
STATUSES = {
    "STATUS_OK": 0,
    "STATUS_ERROR": 1,  # ns-3 failed; SegmentHeader.error says why
    "STATUS_READY": 2,  # first answer after attaching, before any command
}

SEGMENT_HEADER = Struct(
    "SegmentHeader",
    "Fixed prelude of the segment. magic and layout_version stay at offsets 0 and 4 forever.",
    (
        F("magic", "u32", "MAGIC, so a foreign segment is recognised"),
        F("layout_version", "u32", "LAYOUT_VERSION of the Python side that created the segment"),
        F("peer_layout_version", "u32", "LAYOUT_VERSION of the ns-3 binary, written on attach"),
        F("header_bytes", "u32", "sizeof(SegmentHeader)"),
        F("max_devices", "u32", "capacity of every per-device record array"),
        F("num_devices", "u32", "devices in the scenario (K)"),
        F("max_steps", "u32", "capacity of the plan's and the outcome's step arrays (all devices together)"),
        F("python_pid", "i64", "creator, watched by ns-3 for liveness"),
        F("ns3_pid", "i64", "the scenario process, written on attach"),
        F("command", "u32", "one of CMD_*"),
        F("status", "u32", "one of STATUS_*"),
        F("sequence", "u64", "incremented by Python per command, echoed by ns-3 in reply_sequence"),
        F("reply_sequence", "u64", "sequence of the command ns-3 last answered"),
        F("error", "bytes", "NUL-terminated message when status is STATUS_ERROR", ERROR_BYTES),
        F("to_ns3", "sem", "process-shared semaphore posted by Python after writing a command"),
        F("to_python", "sem", "process-shared semaphore posted by ns-3 after answering"),
    ),
)

REPORT_HEADER = Struct(
    "ReportHeader",
    "Round-level part of a channel report.",
    (
        F("round_index", "u32", "round the report opens"),
        F("num_devices", "u32", "records that follow"),
        F("sim_time_s", "f64", "simulated time of the measurement"),
        F("bandwidth_hz", "f64", "total uplink bandwidth B"),
        F("noise_psd_dbm_hz", "f64", "thermal noise density incl. the base station noise figure"),
    ),
)

REPORT_RECORD = Struct(
    "ReportRecord",
    "What the base station measured of one device at the start of a round.",
    (
        F("device_id", "u32", "0..K-1"),
        F("serving_cell", "u32", "cell id of the serving base station"),
        F("present", "u32", "1 if the device is in the scenario now (a trace's may not be yet, or no more)"),
        F("los_state", "u32", "the link's 3GPP state: 1 line of sight, 0 not, 2 none (log-distance)"),
        F("snr_db", "f64", "wideband uplink SNR measured at the base station (whole band)"),
        F("sinr_db", "f64", "wideband uplink SINR measured at the base station"),
        F("rx_power_dbm", "f64", "received power of the device's sounding signal"),
        F("tx_power_dbm", "f64", "device transmit power"),
        F("x_m", "f64", "position"),
        F("y_m", "f64", "position"),
        F("z_m", "f64", "position"),
        F("speed_mps", "f64", "speed"),
        F("distance_m", "f64", "3-D distance to the serving base station"),
    ),
)

PLAN_HEADER = Struct(
    "PlanHeader",
    "Round-level part of a plan.",
    (
        F("round_index", "u32", "round being enacted"),
        F("num_devices", "u32", "records that follow"),
        F("num_steps", "u32", "PlanStep records that follow the device records"),
        F("deadline_s", "f64", "round deadline T_max, counted from the round start"),
        F("server_count", "u64", "accelerators serving the devices' requests in arrival order"),
    ),
)

PLAN_RECORD = Struct(
    "PlanRecord",
    "What one device does this round.",
    (
        F("device_id", "u32", "0..K-1"),
        F("scheduled", "u32", "1 if the device takes part this round"),
        F("bandwidth_share", "f64", "b_k in [0,1]; shares of scheduled devices sum to <= 1"),
        F("first_step", "u32", "index of the device's first PlanStep"),
        F("step_count", "u32", "how many PlanSteps the device's round has, in order from first_step"),
    ),
)

PLAN_STEP = Struct(
    "PlanStep",
    "One step of one device's round: a computation or a message (STEP_* kinds).",
    (
        F("device_id", "u32", "the device whose round the step belongs to"),
        F("kind", "u32", "one of STEP_*"),
        F("local_step", "u32", "local training step it belongs to, 1..tau (0: the round's opening, closing)"),
        F("index", "u32", "position in the device's sequence, from 0"),
        F("bytes", "u64", "message payload (messages only)"),
        F("seconds", "f64", "computation time (computations only)"),
    ),
)

OUTCOME_HEADER = Struct(
    "OutcomeHeader",
    "Round-level part of an outcome.",
    (
        F("round_index", "u32", "round that was enacted"),
        F("num_devices", "u32", "records that follow"),
        F("num_steps", "u32", "OutcomeStep records that follow, one per PlanStep, in the plan's order"),
        F("round_start_s", "f64", "simulated time the round started"),
        F("round_duration_s", "f64", "until the last scheduled device finished or the deadline"),
    ),
)

OUTCOME_RECORD = Struct(
    "OutcomeRecord",
    "What the simulated network did for one device this round (times from the round start).",
    (
        F("device_id", "u32", "0..K-1"),
        F("scheduled", "u32", "echo of the plan"),
        F("deadline_met", "u32", "1 if all the device's steps finished by the deadline (its update arrived)"),
        F("steps_completed", "u32", "local training steps whose every computation and message finished"),
        F("messages_delivered", "u32", "messages that fully arrived, both ways"),
        F("packets_sent", "u32", "uplink packets put on the air, retransmissions included"),
        F("packets_lost", "u32", "uplink packets the base station could not decode"),
        F("retransmissions", "u32", "uplink retransmissions (ARQ or HARQ)"),
        F("uplink_delivered_bytes", "u64", "payload bytes the server received"),
        F("downlink_delivered_bytes", "u64", "payload bytes the device received"),
        F("uplink_transfer_s", "f64", "time some uplink message was sent and not yet fully arrived"),
        F("downlink_transfer_s", "f64", "time some downlink message was in transfer"),
        F("device_compute_s", "f64", "time the device computed"),
        F("server_compute_s", "f64", "time an accelerator computed for the device"),
        F("server_wait_s", "f64", "time the device's requests queued for an accelerator (NaN: none made)"),
        F("completion_time_s", "f64", "from round start to the end of its last step (NaN if unfinished)"),
        F("airtime_s", "f64", "time the device's transmitter was on"),
        F("tx_energy_j", "f64", "radiated transmit energy of the device"),
        F("mean_sinr_db", "f64", "mean SINR of the device's uplink packets at the base station"),
        F("granted_share", "f64", "mean fraction of the uplink band the radio granted when it sent"),
    ),
)

OUTCOME_STEP = Struct(
    "OutcomeStep",
    "When one PlanStep ran (seconds from the round start; NaN: not reached before the round ended).",
    (
        F("device_id", "u32", "echo of the PlanStep"),
        F("index", "u32", "echo of the PlanStep"),
        F("ready_s", "f64", "message: handed to the radio; computation: could start (server: request made)"),
        F("start_s", "f64", "message: its direction was free of earlier messages; computation: began"),
        F("end_s", "f64", "message: fully arrived; computation: finished"),
        F("delivered_bytes", "u64", "message bytes that arrived (0 for computations)"),
    ),
)

STRUCTS = (
    SEGMENT_HEADER,
    REPORT_HEADER,
    REPORT_RECORD,
    PLAN_HEADER,
    PLAN_RECORD,
    PLAN_STEP,
    OUTCOME_HEADER,
    OUTCOME_RECORD,
    OUTCOME_STEP,
)


@dataclass(frozen=True)
class SegmentLayout:
    """Offsets of every region in a segment sized for ``max_devices`` devices and ``max_steps`` steps."""

    max_devices: int
    max_steps: int

    def _sizes(self) -> list[tuple[str, int]]:
        k, n = self.max_devices, self.max_steps
        return [
            ("header", SEGMENT_HEADER.dtype.itemsize),
            ("report_header", REPORT_HEADER.dtype.itemsize),
            ("report_records", k * REPORT_RECORD.dtype.itemsize),
            ("plan_header", PLAN_HEADER.dtype.itemsize),
            ("plan_records", k * PLAN_RECORD.dtype.itemsize),
            ("plan_steps", n * PLAN_STEP.dtype.itemsize),
            ("outcome_header", OUTCOME_HEADER.dtype.itemsize),
            ("outcome_records", k * OUTCOME_RECORD.dtype.itemsize),
            ("outcome_steps", n * OUTCOME_STEP.dtype.itemsize),
        ]

    @property
    def regions(self) -> dict[str, tuple[int, int]]:
        """name -> (offset, size) in bytes."""
        out, pos = {}, 0
        for name, size in self._sizes():
            out[name] = (pos, size)
            pos += size
        return out

    @property
    def offsets(self) -> dict[str, int]:
        return {name: start for name, (start, _) in self.regions.items()}

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self._sizes())


def _cpp_struct(s: Struct) -> str:
    lines = [f"/// {s.doc}", f"struct {s.name}", "{"]
    for f in s.fields:
        if f.kind == "bytes":
            lines.append(f"    char {f.name}[{f.length}]; ///< {f.doc}")
        elif f.kind == "sem":
            lines.append(f"    sem_t {f.name}; ///< {f.doc}")
        else:
            lines.append(f"    {_CTYPES[f.kind]} {f.name}; ///< {f.doc}")
    lines.append("};")
    dt = s.dtype
    lines.append(f"static_assert(sizeof({s.name}) == {dt.itemsize}, \"{s.name} size\");")
    for f in s.fields:
        off = dt.fields[f.name][1]
        lines.append(f"static_assert(offsetof({s.name}, {f.name}) == {off}, \"{s.name}.{f.name}\");")
    return "\n".join(lines)


def render_cpp_header() -> str:
    """The C++ view of this module, byte for byte what ``cosim-messages.h`` must contain."""
    out = [
        "// Generated by `python -m cosim.wire.layout` from cosim/wire/layout.py. Do not edit by hand.",
        "#ifndef COSIM_MESSAGES_H",
        "#define COSIM_MESSAGES_H",
        "",
        "#include <semaphore.h>",
        "",
        "#include <cstddef>",
        "#include <cstdint>",
        "",
        "namespace cosim",
        "{",
        "",
        f"constexpr uint32_t MAGIC = 0x{MAGIC:08X};",
        f"constexpr uint32_t LAYOUT_VERSION = {LAYOUT_VERSION};",
        f"static_assert(sizeof(sem_t) == {SEM_BYTES}, \"sem_t size differs from the layout's\");",
        "",
    ]
    for name, value in {**STEP_KINDS, **COMMANDS, **STATUSES}.items():
        out.append(f"constexpr uint32_t {name} = {value};")
    out.append("")
    for s in STRUCTS:
        out.append(_cpp_struct(s))
        out.append("")
    out += [
        "/// Byte offsets of the regions of a segment sized for max_devices devices and max_steps steps.",
        "struct SegmentOffsets",
        "{",
    ]
    names = list(SegmentLayout(1, 1).offsets)
    for name in names + ["total"]:
        out.append(f"    std::size_t {name};")
    out += ["};", "", "inline SegmentOffsets", "ComputeOffsets(std::size_t maxDevices, std::size_t maxSteps)",
            "{", "    SegmentOffsets o{};", "    std::size_t pos = 0;"]
    sizes = {
        "header": "sizeof(SegmentHeader)",
        "report_header": "sizeof(ReportHeader)",
        "report_records": "maxDevices * sizeof(ReportRecord)",
        "plan_header": "sizeof(PlanHeader)",
        "plan_records": "maxDevices * sizeof(PlanRecord)",
        "plan_steps": "maxSteps * sizeof(PlanStep)",
        "outcome_header": "sizeof(OutcomeHeader)",
        "outcome_records": "maxDevices * sizeof(OutcomeRecord)",
        "outcome_steps": "maxSteps * sizeof(OutcomeStep)",
    }
    for name in names:
        out.append(f"    o.{name} = pos;")
        out.append(f"    pos += {sizes[name]};")
    out += ["    o.total = pos;", "    return o;", "}", "", "} // namespace cosim", "",
            "#endif // COSIM_MESSAGES_H", ""]
    return "\n".join(out)


CPP_HEADER_PATH = Path(__file__).resolve().parents[2] / "ns3_scenarios" / "cosim-messages.h"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` verify) the generated C++ header."""
    argv = sys.argv[1:] if argv is None else argv
    text = render_cpp_header()
    if "--check" in argv:
        current = CPP_HEADER_PATH.read_text() if CPP_HEADER_PATH.exists() else ""
        if current != text:
            print(f"{CPP_HEADER_PATH} is stale: run `python -m cosim.wire.layout`", file=sys.stderr)
            return 1
        return 0
    CPP_HEADER_PATH.write_text(text)
    print(f"wrote {CPP_HEADER_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
