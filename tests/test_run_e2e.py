"""`cosim run smoke` with every real part (ns-3 binary, MiniLM, the MILP solver), runs whose simulator
or Python side dies or is interrupted (finished rounds stay on disk, no segment or process is left),
and `--resume`, which must give the rounds an uninterrupted run gives."""

import json
import os
import pickletools
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from cosim.cli import app
from cosim.experiment.checkpoint import CHECKPOINT_VERSION
from cosim.experiment.config import load_config
from cosim.experiment.rundir import RunDir
from cosim.experiment.runloop import resume_experiment, run_experiment
from cosim.simulator.simulation import SimulationError
from cosim.wire import bridge
from tests.test_ns3_faults import pid_gone

pytestmark = pytest.mark.ns3
torch.set_num_threads(1)


def test_smoke_run_writes_a_complete_run_folder(ns3_binary, tmp_path):
    result = CliRunner().invoke(app, ["run", "smoke", f"results_dir={tmp_path}", "scenario.radio=lte",
                                      "flow_monitor=true"])
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.iterdir()
    assert folder.name.endswith("-smoke-lyapunov-s1")
    for name in ("config.yaml", "manifest.json", "rounds.parquet", "devices.parquet", "ns3.log", "run.log",
                 "flowmon.xml"):
        assert (folder / name).is_file(), name
    plots = sorted(p.name for p in (folder / "plots").iterdir())
    assert plots == ["accuracy.png", "delay_cdf.png", "energy.png", "queues.png", "scheduled.png"]
    output = result.output.replace("\n", "")
    assert "plots:" in output and str(folder / "plots" / "accuracy.png") in output

    cfg = load_config("smoke")
    assert "<FlowMonitor>" in (folder / "flowmon.xml").read_text()[:200]
    rounds, devices = pd.read_parquet(folder / "rounds.parquet"), pd.read_parquet(folder / "devices.parquet")
    assert list(rounds["round"]) == list(range(cfg.rounds))
    assert len(devices) == cfg.rounds * cfg.scenario.devices
    sched = devices[devices["scheduled"]]
    assert len(sched) > 0
    assert (sched["realised_energy_j"] > 0).all() and (sched["predicted_energy_j"] > 0).all()
    assert (sched["tx_energy_j"] > 0).all() and (sched["uplink_bytes"] > 0).all()
    assert (devices.loc[~devices["scheduled"], "realised_energy_j"] == 0).all()
    # the scheduler keeps deadline_margin of the deadline in reserve; ns-3 enforces all of it
    assert (sched["predicted_delay_s"] <= (1 - cfg.deadline_margin) * cfg.deadline_s + 1e-9).all()
    assert (sched["realised_delay_s"].dropna() <= cfg.deadline_s).all()
    assert devices.groupby("round")["rate_efficiency"].nunique().iloc[-1] > 1  # learnt per device
    assert rounds["accuracy"].notna().iloc[-1]

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["rounds_done"] == cfg.rounds
    assert manifest["solvers"] and manifest["solvers"][0]["solver"] in ("gurobi", "highs")
    assert manifest["versions"]["ns3"] and manifest["versions"]["torch"]


def test_both_protocols_run_and_carry_the_same_bytes_in_their_own_messages(ns3_binary, tmp_path):
    """`protocol: per-step` sends 2 + 3τ messages a device (frozen embeddings), `lumped` two; the
    bytes each way are the learner's either way, and a delivered device finished all its steps."""
    tau = 2
    tables = {}
    for protocol in ("lumped", "per-step"):
        overrides = [f"results_dir={tmp_path / protocol}", f"protocol={protocol}",
                     f"learning.local_steps={tau}"]
        run = run_experiment(load_config("smoke", overrides))
        tables[protocol] = pd.read_parquet(run.path / "devices.parquet")
    for protocol, messages, steps in (("lumped", 2, 0), ("per-step", 2 + 3 * tau, tau)):
        done = tables[protocol][tables[protocol].delivered]
        assert len(done) > 0
        assert (done.messages_delivered == messages).all() and (done.steps_completed == steps).all()
        assert (done.uplink_delivered_bytes == done.uplink_bytes).all()
        assert (done.downlink_delivered_bytes == done.downlink_bytes).all()
        assert (done.uplink_transfer_s > 0).all() and (done.device_compute_s > 0).all()
    per_device = [t[t.scheduled].groupby("device_id")[["uplink_bytes", "downlink_bytes"]].first()
                  for t in tables.values()]
    common = per_device[0].index.intersection(per_device[1].index)
    pd.testing.assert_frame_equal(per_device[0].loc[common], per_device[1].loc[common])


def test_a_cut_after_the_first_layer_runs_and_sends_the_activations_gradient(ns3_binary, tmp_path):
    """`learning.model.device_layers=1`: the device runs MiniLM's first layer, which trains, so every
    local step adds the activations' gradient (batch × tokens × 384 fp32 values) to the downlink, and
    the device computes more than with the cut after the embeddings."""
    tau = 2
    tables, cfg = {}, None
    for cut in (0, 1):
        cfg = load_config("smoke", [f"results_dir={tmp_path / str(cut)}", f"learning.local_steps={tau}",
                                    f"learning.model.device_layers={cut}"])
        tables[cut] = pd.read_parquet(run_experiment(cfg).path / "devices.parquet")
    done = tables[1][tables[1].delivered]
    assert len(done) > 0 and (done.messages_delivered == 2 + 4 * tau).all()
    assert (done.downlink_delivered_bytes == done.downlink_bytes).all()
    columns = ["uplink_bytes", "downlink_bytes", "device_compute_s"]
    first = [t[t.scheduled].groupby("device_id")[columns].first() for t in (tables[0], tables[1])]
    common = first[0].index.intersection(first[1].index)
    assert len(common) > 0
    gradient = tau * cfg.learning.batch_size * cfg.learning.model.max_length * 384 * 4
    layer_lora = 2 * 2 * 8 * 384 * 4  # the first layer's LoRA (r = 8, query and value) up and down, fp32
    cut0, cut1 = first[0].loc[common], first[1].loc[common]
    assert (cut1.downlink_bytes - cut0.downlink_bytes == gradient + layer_lora).all()
    assert (cut1.uplink_bytes - cut0.uplink_bytes == layer_lora).all()
    assert (cut1.device_compute_s > cut0.device_compute_s).all()


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_tiny_decoder_cut_after_its_first_layer_runs_end_to_end(ns3_binary, tmp_path, family):
    from test_learning_support import tiny_model_dir

    folder = tiny_model_dir(tmp_path / "model", family, layers=3)
    tau = 2
    cfg = load_config("smoke", [f"results_dir={tmp_path / 'results'}", f"learning.local_steps={tau}",
                                f"learning.model.path={folder}", "learning.model.device_layers=1"])
    run = run_experiment(cfg)
    assert json.loads((run.path / "manifest.json").read_text())["status"] == "completed"
    devices = pd.read_parquet(run.path / "devices.parquet")
    done = devices[devices.delivered]
    assert len(done) > 0 and (done.messages_delivered == 2 + 4 * tau).all()
    assert (done.device_compute_s > 0).all() and (done.server_compute_s > 0).all()


@pytest.mark.parametrize("cut", [0, 1])
def test_causal_lm_fine_tuning_of_a_tiny_decoder_runs_end_to_end(ns3_binary, tmp_path, cut):
    """`learning.task=causal-lm`: at cut 0 the device trains nothing (frozen embeddings and LM head), so
    a round is τ × (activations up, output down, its gradient up) and no parameters; at cut 1 the
    device's layer trains, which adds its LoRA down and up and the activations' gradient. The run
    reports perplexity, not accuracy."""
    from test_learning_support import tiny_model_dir

    folder = tiny_model_dir(tmp_path / "model", "llama", layers=3)
    data = tmp_path / "instructions.jsonl"
    rows = [{"prompt": f"question {i} : what is for dinner ? answer :", "response": f" bread and soup {i}"}
            for i in range(60)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tau = 2
    cfg = load_config("smoke", [f"results_dir={tmp_path / 'results'}", f"learning.local_steps={tau}",
                                "learning.task=causal-lm", f"learning.model.path={folder}",
                                f"learning.model.device_layers={cut}", f"learning.data.dataset={data}"])
    run = run_experiment(cfg)
    assert json.loads((run.path / "manifest.json").read_text())["status"] == "completed"
    rounds = pd.read_parquet(run.path / "rounds.parquet")
    evaluated = rounds.dropna(subset=["perplexity"])
    assert len(evaluated) > 0 and rounds["accuracy"].isna().all()
    assert (evaluated.val_perplexity > 1).all()
    assert (run.path / "plots" / "perplexity.png").is_file()
    devices = pd.read_parquet(run.path / "devices.parquet")
    done = devices[devices.delivered]
    assert len(done) > 0 and (done.messages_delivered == (2 + 4 * tau if cut else 3 * tau)).all()


def _ns3_children() -> list[int]:
    """Our cosim-scenario child processes, from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and comm.startswith("cosim-scenario") and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


RESUME_ROUNDS = 4
# a budget below what a round costs a device, so that the queues (and with them the schedule) move
RESUME = [f"rounds={RESUME_ROUNDS}", "energy_budget_j=0.03"]


def _run_folder(results: Path) -> Path:
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    return folder


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The reference: smoke for RESUME_ROUNDS rounds without a break (fixed server time, so
    every number is a function of the seeds)."""
    results = tmp_path_factory.mktemp("uninterrupted")
    return run_experiment(load_config("smoke", [f"results_dir={results}", *RESUME])).path


def assert_same_rounds(run: Path, reference: Path) -> None:
    """Every recorded number equal, except wall-clock times."""
    for table in ("rounds.parquet", "devices.parquet"):
        got, want = pd.read_parquet(run / table), pd.read_parquet(reference / table)
        timing = [c for c in want.columns if c.endswith("wall_s") or c == "solve_time_s"]
        pd.testing.assert_frame_equal(got.drop(columns=timing), want.drop(columns=timing), check_exact=True)


def test_reference_run_changes_from_round_to_round(uninterrupted):
    """So that equal tables after a resume mean something: model, channel and queues all move."""
    rounds = pd.read_parquet(uninterrupted / "rounds.parquet")
    devices = pd.read_parquet(uninterrupted / "devices.parquet")
    assert len(rounds) == RESUME_ROUNDS and rounds["test_loss"].nunique() == RESUME_ROUNDS
    assert devices.groupby("round")["snr_db"].mean().nunique() == RESUME_ROUNDS
    assert devices.groupby("round")["queue_j"].sum().nunique() > 1
    # the exact solver's certificate, every round: a bound below the plan's objective, within 1e-6
    assert (rounds["lower_bound"] <= rounds["objective"] + 1e-9).all()
    assert rounds["relative_gap"].between(-1e-12, 1e-6).all()  # below 0 only by rounding


def test_interrupted_run_resumes_to_the_rounds_of_an_uninterrupted_one(ns3_binary, tmp_path, uninterrupted):
    cfg = load_config("smoke", [f"results_dir={tmp_path}", *RESUME])

    def interrupt_after_second_round(row: dict) -> None:
        if row["round"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, on_round=interrupt_after_second_round)
    folder = _run_folder(tmp_path)
    assert len(pd.read_parquet(folder / "rounds.parquet")) == 2
    assert _pickled_modules(folder / "checkpoint.pt") <= {
        "torch", "torch._utils", "numpy", "numpy._core.multiarray", "collections", "_codecs", "builtins"}
    resumed = resume_experiment(folder)
    assert resumed.path == folder
    assert_same_rounds(folder, uninterrupted)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["rounds_done"] == RESUME_ROUNDS
    assert [r["from_round"] for r in manifest["resumed"]] == [2]
    with pytest.raises(ValueError, match="already has all 4 rounds"):
        resume_experiment(folder)


def test_killed_simulator_keeps_finished_rounds_and_leaves_nothing(ns3_binary, tmp_path, uninterrupted):
    cfg = load_config("smoke", [f"results_dir={tmp_path}", *RESUME])
    killed: list[int] = []
    segments: list[str] = []

    def kill_after_first_round(row: dict) -> None:
        if not killed:
            segments.extend(s.name for s in bridge.list_segments() if s.python_pid == os.getpid())
            killed.extend(_ns3_children())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(SimulationError, match="killed by signal SIGKILL"):
        run_experiment(cfg, on_round=kill_after_first_round)
    assert killed and all(pid_gone(pid, within_s=3.0) for pid in killed)
    assert segments and not any((bridge.SHM_DIR / name).exists() for name in segments)
    folder = _run_folder(tmp_path)
    assert len(pd.read_parquet(folder / "rounds.parquet")) == 1
    assert len(pd.read_parquet(folder / "devices.parquet")) == cfg.scenario.devices
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "SIGKILL" in manifest["error"]
    assert (folder / "plots" / "accuracy.png").is_file()

    resume_experiment(folder)  # a fresh simulator replays round 0, then the run goes on
    assert_same_rounds(folder, uninterrupted)


def test_sigkilled_cosim_run_resumes_from_the_command_line(ns3_binary, tmp_path, uninterrupted):
    """SIGKILL leaves Python no chance to clean up: ns-3 notices and leaves, the checkpoint is what
    was last finished, and `cosim run --resume` completes the run."""
    cosim = Path(sys.executable).parent / "cosim"
    argv = [str(cosim), "run", "smoke", *RESUME, f"results_dir={tmp_path}"]
    proc = subprocess.Popen(argv, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None \
            and next(tmp_path.glob("*/checkpoint.pt"), None) is None:
        time.sleep(0.05)
    ns3_pids = [s.ns3_pid for s in bridge.list_segments() if s.python_pid == proc.pid]
    proc.kill()
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert all(pid_gone(pid, within_s=5.0) for pid in ns3_pids)
    folder = _run_folder(tmp_path)
    done = len(pd.read_parquet(folder / "rounds.parquet"))
    assert 1 <= done < RESUME_ROUNDS

    result = CliRunner().invoke(app, ["run", "--resume", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"resuming after round {done}" in result.output.replace("\n", " ")
    assert_same_rounds(folder, uninterrupted)
    assert "resumed after" in (folder / "run.log").read_text()


def _pickled_modules(checkpoint: Path) -> set[str]:
    """The modules whose classes a checkpoint's pickle names: none of the project's, so moving its
    modules cannot make an old run folder unreadable."""
    with zipfile.ZipFile(checkpoint) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    assert "STACK_GLOBAL" not in {name for name, _ in ops}, "torch.save's pickle protocol changed"
    return {arg.split(" ")[0] for name, arg in ops if name == "GLOBAL"}


def _resume_error(args: list[str]) -> str:
    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    assert "is not a run folder" in _resume_error(["--resume", str(tmp_path)])
    assert "give no CONFIG or overrides" in _resume_error(["smoke", "--resume", str(tmp_path)])
    run = RunDir(load_config("smoke", [f"results_dir={tmp_path}"]))
    run.record({"round": 0, "solver": "highs", "license": "n/a"}, {"round": [0], "device_id": [0]})
    assert "no checkpoint.pt to continue from" in _resume_error(["--resume", str(run.path)])
    run.checkpoint_path.write_bytes(b"not a checkpoint")
    assert "is unreadable" in _resume_error(["--resume", str(run.path)])
    torch.save({"version": 99}, run.checkpoint_path)
    message = _resume_error(["--resume", str(run.path)])
    assert f"is checkpoint version 99, this cosim reads version {CHECKPOINT_VERSION}" in message


def test_replay_that_does_not_match_the_recorded_rounds_stops(ns3_binary, tmp_path):
    cfg = load_config("smoke", [f"results_dir={tmp_path}", *RESUME])
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, on_round=lambda row: (_ for _ in ()).throw(KeyboardInterrupt))
    folder = _run_folder(tmp_path)
    devices = pd.read_parquet(folder / "devices.parquet")
    devices.loc[0, "snr_db"] += 0.5  # as if another scenario had measured round 0
    devices.to_parquet(folder / "devices.parquet", index=False)
    with pytest.raises(ValueError, match="replaying round 0 .* other values than the recorded run"):
        resume_experiment(folder)
    assert json.loads((folder / "manifest.json").read_text())["status"] == "failed"


def test_sigterm_to_cosim_run_keeps_finished_rounds(ns3_binary, tmp_path):
    """A scheduler's SIGTERM (or Ctrl-C) mid-run: exit 130, rounds on disk, nothing left behind."""
    cosim = Path(sys.executable).parent / "cosim"
    proc = subprocess.Popen([str(cosim), "run", "smoke", "rounds=50", f"results_dir={tmp_path}"],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    rounds = None
    while time.monotonic() < deadline and proc.poll() is None:
        rounds = next(tmp_path.glob("*/rounds.parquet"), None)
        if rounds is not None:
            break
        time.sleep(0.2)
    assert rounds is not None, "no round finished"
    ns3_pids = [s.ns3_pid for s in bridge.list_segments() if s.python_pid == proc.pid]
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    manifest = json.loads((rounds.parent / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    done = len(pd.read_parquet(rounds))
    assert 1 <= done < 50 and manifest["rounds_done"] == done
    assert all(pid_gone(pid, within_s=5.0) for pid in ns3_pids)
    assert not [s for s in bridge.list_segments() if s.python_pid == proc.pid]
