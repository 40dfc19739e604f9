"""The README's tour, line by line, in a scratch folder: what a newcomer types first must work."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import default_sigint

pytestmark = [pytest.mark.ns3, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parent.parent


def tour_lines() -> list[str]:
    """The commands of the README's tour block, without their comments."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## A tour\n.*?```sh\n(.*?)```", text, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def interrupt_after_rounds(command: str, cwd: Path, rounds: int) -> Path:
    """Start a run, press Ctrl-C once `rounds` rounds are on disk; return its run folder."""
    before = set(cwd.glob("results/*/"))
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=default_sigint)
    try:
        end = time.monotonic() + 300
        while time.monotonic() < end:
            new = [p for p in cwd.glob("results/*/") if p not in before]
            log = new[0] / "run.log" if new else None
            if log is not None and log.is_file() and log.read_text().count(" round round=") >= rounds:
                break
            assert proc.poll() is None, "the run ended before it could be interrupted"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return new[0]


def test_the_readme_tour_runs_as_written(ns3_binary, tmp_path):
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "cosim").symlink_to(ROOT / "cosim")  # the sweep files the tour names
    lines = tour_lines()
    assert any("--resume" in line for line in lines) and any("sweep run" in line for line in lines)
    interrupted = None
    for line in lines:
        if "rounds=6" in line:
            interrupted = interrupt_after_rounds(line, tmp_path, rounds=2)
            continue
        if "<that run>" in line:
            line = line.replace("results/<that run>/", str(interrupted))
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    manifest = (interrupted / "manifest.json").read_text()
    assert '"status": "completed"' in manifest and '"rounds_done": 6' in manifest
    assert len([p for p in (tmp_path / "results" / "sweep-tour" / "runs").iterdir() if p.is_dir()]) == 4
    assert list(tmp_path.glob("results/report-*/report.png"))  # the comparison's figure
