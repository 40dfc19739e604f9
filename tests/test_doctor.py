"""`cosim doctor` on this machine, and the failures it must name with their fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app, doctor
from tests.test_learning_support import tiny_model_dir


def test_doctor_passes_here_and_checks_binary_solvers_and_model(tmp_path):
    result = CliRunner().invoke(app, ["doctor", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    by_name = {c.name: c for c in doctor.run_checks(tmp_path)}
    for name in ("ns-3 scenario", "gurobi", "highs", "model", "shared memory", "dataset bbc"):
        assert by_name[name].status == "ok", by_name[name]
    assert "checksum ok" in by_name["model"].detail


def test_missing_scenario_binary_fails_with_make_build(monkeypatch, tmp_path):
    monkeypatch.setenv("COSIM_NS3_SCENARIO", str(tmp_path / "no-such-binary"))
    check = doctor.check_scenario()
    assert (check.status, check.fix) == ("fail", "make build")
    assert "no-such-binary" in check.detail
    result = CliRunner().invoke(app, ["doctor", "--results-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "make build" in result.output


def test_scenario_that_does_not_run_fails(monkeypatch, tmp_path):
    broken = tmp_path / "cosim-scenario"
    broken.write_text("#!/bin/sh\necho 'libns3.44-core.so: cannot open' >&2\nexit 127\n")
    broken.chmod(0o755)
    monkeypatch.setenv("COSIM_NS3_SCENARIO", str(broken))
    check = doctor.check_scenario()
    assert check.status == "fail" and "exited with 127" in check.detail and check.fix == "make build"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("model"))


def test_wrong_model_checksum_fails_with_reinstall_fix(tiny_model):
    check = doctor.check_model(tiny_model, sha256="0" * 64)
    assert check.status == "fail"
    assert f"does not match the expected {'0' * 64}" in check.detail
    assert "requirements-nodeps.txt" in check.fix


def test_matching_model_checksum_is_ok(tiny_model):
    from learning.encoder import WEIGHTS_FILE, sha256_of

    assert doctor.check_model(tiny_model, sha256_of(tiny_model / WEIGHTS_FILE)).status == "ok"


def test_stale_segment_warns_and_points_at_shm_clean():
    from cosim.wire import bridge

    with bridge.ShmSegment(1) as seg:
        seg.header["python_pid"] = 2**22 + 12345  # above pid_max: certainly not running
        check = doctor.check_stale_segments()
    assert (check.status, check.fix) == ("warn", "cosim shm clean")
    assert doctor.exit_code([check]) == 0


def test_a_crashing_check_is_a_failure_not_a_traceback(monkeypatch, tmp_path):
    def boom():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(doctor, "check_torch", boom)
    failed = [c for c in doctor.run_checks(tmp_path) if c.status == "fail"]
    assert [(c.name, c.detail) for c in failed] == [("torch", "RuntimeError: disk on fire")]
    assert doctor.exit_code(failed) == 1
