"""The Python end of the shared-memory bridge to the ns-3 scenario.

Python creates the segment (``/dev/shm/cosim-<user>-<job>-<pid>-<random>``, mode 0600) and the
two process-shared POSIX semaphores inside it, and removes it again on every way out: normal
exit, exceptions, SIGINT/SIGTERM (see ``Ns3Simulation``). The segment is opened with ``os.open``
and ``mmap`` rather than ``multiprocessing.shared_memory``, whose resource tracker would unlink
segments behind our back. Semaphores are called through ctypes, which releases the GIL, so a
blocked wait costs no CPU; waits are sliced so the peer's liveness is checked in between.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import getpass
import mmap
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cosim.wire import layout

SHM_DIR = Path("/dev/shm")
PREFIX = "cosim-"
_SLICE_S = 0.1  # peer liveness is checked this often while waiting


class BridgeError(RuntimeError):
    """The bridge cannot go on: the message names the cause and what to do."""


class PeerDied(BridgeError):
    """The ns-3 process exited while Python was waiting for it."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.sem_init.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint]
_libc.sem_post.argtypes = [ctypes.c_void_p]
_libc.sem_timedwait.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Timespec)]
_libc.sem_destroy.argtypes = [ctypes.c_void_p]


def segment_name() -> str:
    """A name no other run on this machine (or job array) can pick: user, job, pid, random."""
    user = "".join(c for c in getpass.getuser() if c.isalnum()) or "user"
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID") or "local"
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    if task:
        job = f"{job}_{task}"
    return f"{PREFIX}{user}-{job}-{os.getpid()}-{secrets.token_hex(4)}"


class ShmSegment:
    """One run's segment: header, report, plan and outcome regions as numpy views."""

    def __init__(self, max_devices: int, max_steps: int = 0, name: str | None = None,
                 layout_version: int = layout.LAYOUT_VERSION):
        if max_devices < 1 or max_steps < 0:
            raise ValueError("max_devices must be at least 1 and max_steps at least 0")
        self.name = name or segment_name()
        self.path = SHM_DIR / self.name
        self.layout = layout.SegmentLayout(max_devices, max_steps)
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, self.layout.total_bytes)
            self._mm = mmap.mmap(fd, self.layout.total_bytes)
        except BaseException:
            os.unlink(self.path)
            raise
        finally:
            os.close(fd)
        self._buf = np.frombuffer(self._mm, dtype=np.uint8)
        self._address = self._buf.ctypes.data
        # raw byte regions: messages are copied in and out as bytes (one memcpy each)
        self.raw = {name: self._buf[start:start + size] for name, (start, size)
                    in self.layout.regions.items()}
        self.header = self.raw["header"].view(layout.SEGMENT_HEADER.dtype)[0]

        h = self.header
        h["layout_version"] = layout_version
        h["header_bytes"] = layout.SEGMENT_HEADER.dtype.itemsize
        h["max_devices"] = max_devices
        h["max_steps"] = max_steps
        h["python_pid"] = os.getpid()
        h["status"] = layout.STATUSES["STATUS_OK"]
        sem_fields = layout.SEGMENT_HEADER.dtype.fields
        self._sem_to_ns3 = self._address + sem_fields["to_ns3"][1]
        self._sem_to_python = self._address + sem_fields["to_python"][1]
        for sem in (self._sem_to_ns3, self._sem_to_python):
            if _libc.sem_init(sem, 1, 0) != 0:
                self.close()
                raise OSError(ctypes.get_errno(), "sem_init failed")
        # magic last: `cosim shm clean` ignores a segment until it is complete
        h["magic"] = layout.MAGIC

    def put(self, region: str, data: bytes) -> None:
        """Copy a message's bytes into the start of a region."""
        self.raw[region][:len(data)] = np.frombuffer(data, np.uint8)

    # -- the protocol -------------------------------------------------------------------------
    def send(self, command: int) -> None:
        """Write the command into the header and wake the ns-3 side."""
        self.header["sequence"] += 1
        self.header["command"] = command
        if _libc.sem_post(self._sem_to_ns3) != 0:
            raise OSError(ctypes.get_errno(), "sem_post failed")

    def wait_reply(self, timeout_s: float, peer_alive: Callable[[], bool]) -> int:
        """Block until ns-3 answers; return its status. Raises PeerDied or BridgeError."""
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise BridgeError(
                    f"ns-3 gave no answer within {timeout_s:g} s (bridge timeout); "
                    "raise the timeout for very large scenarios")
            slice_end = time.clock_gettime(time.CLOCK_REALTIME) + min(_SLICE_S, deadline - now)
            ts = _Timespec(int(slice_end), int((slice_end % 1) * 1e9))
            if _libc.sem_timedwait(self._sem_to_python, ctypes.byref(ts)) == 0:
                return int(self.header["status"])
            err = ctypes.get_errno()
            if err not in (errno.ETIMEDOUT, errno.EINTR):
                raise OSError(err, "sem_timedwait failed")
            if not peer_alive():
                raise PeerDied("the ns-3 process exited while Python was waiting for it")

    @property
    def error_message(self) -> str:
        return bytes(self.header["error"]).split(b"\0", 1)[0].decode(errors="replace")

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Unmap and remove the segment; safe to call twice and after the peer removed it."""
        if getattr(self, "_mm", None) is None:
            return
        for name in ("header", "raw", "_buf"):
            self.__dict__.pop(name, None)
        with contextlib.suppress(BufferError):  # a caller still holds a view: freed at exit
            self._mm.close()
        self._mm = None
        with contextlib.suppress(FileNotFoundError):  # the peer removed it after our death
            os.unlink(self.path)

    def __enter__(self) -> ShmSegment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class SegmentInfo:
    """What ``cosim shm list`` shows of one segment in /dev/shm."""

    name: str
    size_bytes: int
    python_pid: int
    ns3_pid: int
    layout_version: int
    owner_alive: bool

    @property
    def stale(self) -> bool:
        return not self.owner_alive


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_segments() -> list[SegmentInfo]:
    """Every cosim segment on this machine, with whether the process that made it still runs."""
    out = []
    prelude = layout.SEGMENT_HEADER.dtype
    for path in sorted(SHM_DIR.glob(f"{PREFIX}*")):
        try:
            raw = path.read_bytes()[: prelude.itemsize]
        except OSError:
            continue
        if len(raw) < prelude.itemsize:
            out.append(SegmentInfo(path.name, len(raw), 0, 0, 0, False))
            continue
        h = np.frombuffer(raw, dtype=prelude)[0]
        if int(h["magic"]) != layout.MAGIC:
            continue
        py_pid, ns3_pid = int(h["python_pid"]), int(h["ns3_pid"])
        out.append(SegmentInfo(path.name, path.stat().st_size, py_pid, ns3_pid,
                               int(h["layout_version"]), _pid_alive(py_pid)))
    return out


def clean_segments(include_live: bool = False) -> list[str]:
    """Remove segments whose creating process is gone (all of them with include_live)."""
    removed = []
    for info in list_segments():
        if info.stale or include_live:
            try:
                (SHM_DIR / info.name).unlink()
                removed.append(info.name)
            except FileNotFoundError:
                pass
    return removed
