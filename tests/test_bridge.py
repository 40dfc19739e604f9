"""The shared-memory segment on its own: naming, permissions, waits, stale-segment cleanup."""

import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from cosim.wire import bridge, layout


def test_segment_is_private_unique_and_removed():
    with bridge.ShmSegment(4) as a, bridge.ShmSegment(4) as b:
        assert a.name != b.name
        assert a.name.startswith("cosim-") and f"-{os.getpid()}-" in a.name
        assert stat.S_IMODE(os.stat(a.path).st_mode) == 0o600
        assert os.path.getsize(a.path) == layout.SegmentLayout(4, 0).total_bytes
        assert int(a.header["magic"]) == layout.MAGIC
        assert int(a.header["python_pid"]) == os.getpid()
    assert not a.path.exists() and not b.path.exists()
    a.close()  # twice is fine


def test_segment_name_carries_the_slurm_job(monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    assert "-4242_7-" in bridge.segment_name()


def test_wait_returns_when_the_peer_posts():
    with bridge.ShmSegment(1) as seg:
        def peer():
            time.sleep(0.2)
            seg.header["status"] = layout.STATUSES["STATUS_READY"]
            bridge._libc.sem_post(seg._sem_to_python)

        threading.Thread(target=peer).start()
        t0 = time.monotonic()
        assert seg.wait_reply(5.0, lambda: True) == layout.STATUSES["STATUS_READY"]
        assert 0.15 < time.monotonic() - t0 < 2.0


def test_wait_times_out_and_notices_a_dead_peer():
    with bridge.ShmSegment(1) as seg:
        t0 = time.monotonic()
        with pytest.raises(bridge.BridgeError, match="no answer within 0.3 s"):
            seg.wait_reply(0.3, lambda: True)
        assert time.monotonic() - t0 < 1.0
        t0 = time.monotonic()
        with pytest.raises(bridge.PeerDied):
            seg.wait_reply(30.0, lambda: False)
        assert time.monotonic() - t0 < 0.5


def test_blocked_wait_burns_no_cpu():
    with bridge.ShmSegment(1) as seg:
        cpu0 = time.process_time()
        with pytest.raises(bridge.BridgeError):
            seg.wait_reply(1.0, lambda: True)
        assert time.process_time() - cpu0 < 0.2


def test_stale_segments_are_listed_and_cleaned():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    live = bridge.ShmSegment(2)
    stale = bridge.ShmSegment(2)
    stale.header["python_pid"] = dead_pid
    stale._mm.flush()
    try:
        info = {s.name: s for s in bridge.list_segments()}
        assert info[stale.name].stale and not info[live.name].stale
        removed = bridge.clean_segments()
        assert stale.name in removed and live.name not in removed
        assert live.path.exists() and not stale.path.exists()
    finally:
        live.close()
        stale.close()
