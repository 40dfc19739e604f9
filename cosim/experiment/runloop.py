"""The experiment's round loop (docs/design.md, "One round"), joining ns-3, the scheduler and the learner.

Each round: channel report → plan → ns-3 transfers overlapped with local training → outcome →
aggregate what arrived by the deadline → queues from the realised energy → one row per round and
per (round, device), written to disk before the next round starts.

Models the scheduler plans with (documented here because the results depend on them):
- device compute: f_k ~ U[f_min, f_max] once per run (seeded); cycles = cycles per sample × the
  samples a device processes in a round (τ·min(s, n_k)); time = cycles / f_k, energy = κ·cycles·f_k².
  Cycles per sample default to cycles_per_flop × the FLOPs of one sample through the device part
  (`cosim.experiment.protocol.DeviceFlops`).
- downlink rate: the report gives the uplink SNR over the whole band; the path gain is reciprocal,
  so the downlink SNR is that plus (P_bs − P_ue) − (NF_ue − NF_bs) dB, the same for any sub-band
  (both radios keep the base station's power per Hz). Each device has B/K of the downlink (the
  ideal-FDMA radio enacts exactly that): r_dl = (B/K)·min(log2(1 + SNR_dl / margin), cap), with
  the link adaptation's margin and cap (`scenario.link_margin_db`, `max_spectral_efficiency`; on
  LTE the cap is the peak of its single-layer 64-QAM table, LTE_PEAK_SPECTRAL_EFFICIENCY).
- uplink: the rate model sees the reported SNR less `scenario.link_margin_db`, the gap the
  ideal-FDMA radio's link adaptation keeps (so it plans the radio's rate exactly when the SNR holds
  and no cap binds); sizes are bytes on the wire, 8 bits each.
- server: device k's round costs the server τ calls of FLOPs(server part, its batch) /
  `server.flops_per_s` + `server.overhead_s` (FLOPs counted on the real modules once, see
  learning/flops.py), or `server_time_s` per device when configured; `server.accelerators`
  serve the requests in arrival order (ns-3 enacts the queue). Under `protocol: lumped` a device
  makes one request per round; under `per-step` two per local step (forward, backward: the step's
  work split by their FLOPs). The plan allows each device the longest wait it can meet: each of
  its requests behind the largest request of each of the M − 1 others, spread over the
  accelerators, M the most devices whose minimum shares fit in the band (never more can be
  scheduled together). Nothing here depends on how fast this host runs the model.
- protocol: the round's steps (cosim/experiment/protocol.py) are walked by ns-3; the delay the scheduler
  plans with is their sum (compute, uplink, server and its queue, downlink), which is what a
  device's chain of steps takes when nothing overlaps.
- uplink rate: the rate model's, times each device's rate efficiency learnt from ns-3's outcomes
  (cosim/experiment/calibration.py; `calibrate_rate: false` plans with the model as it is).
- deadline: the scheduler plans for `deadline_s × (1 − deadline_margin)`, ns-3 enforces
  `deadline_s`: the margin absorbs what the round's fading and retransmissions add to a plan that
  the energy minimum places right at its deadline.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from cosim.experiment.calibration import RateCalibration
from cosim.experiment.checkpoint import CHECKPOINT_NAME, Checkpoint, ResumeError
from cosim.experiment.config import ExperimentConfig, load_config
from cosim.experiment.plots import plot_run
from cosim.experiment.protocol import DeviceFlops, StepTimes, per_step_steps
from cosim.experiment.rundir import RunDir
from cosim.simulator.scenario import ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation, scenario_binary
from cosim.simulator.zmq_client import ZmqSimulation
from cosim.wire.messages import ChannelReport, RoundOutcome, RoundPlan, read_plan
from cosim.wire.steps import Step, lumped_steps
from learning.accelerator import describe
from learning.payload import Message, total
from learning.trainer import SplitFedTrainer, Update
from optimizer import Plan, Policy, RoundInputs, Scheduler, build_policy, load_kernels
from optimizer.problem import RoundProblem

if TYPE_CHECKING:
    import pandas as pd

# bit/s/Hz: LTE's largest transport block on 100 resource blocks (I_TBS 26, 75,376 bits per 1 ms TTI,
# 3GPP TS 36.213 Table 7.1.7.2.1-1) over 20 MHz
LTE_PEAK_SPECTRAL_EFFICIENCY = 75_376 / 1e-3 / 20e6


@dataclass(frozen=True)
class DeviceCompute:
    """Per-device CPU frequency, and the time and energy of one round's local computation."""

    freq_hz: np.ndarray
    time_s: np.ndarray
    energy_j: np.ndarray
    flops: DeviceFlops  # of one sample's local step, by part (where the per-step protocol places them)

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, trainer: SplitFedTrainer) -> DeviceCompute:
        c, learn = cfg.compute, cfg.learning
        k = cfg.scenario.devices
        freq = np.random.default_rng([cfg.seed, 0xC0]).uniform(c.f_min_hz, c.f_max_hz, k)
        flops = DeviceFlops.of(learn.model.max_length, trainer.hidden_size, len(trainer.label_names),
                               trainer.device_layer_flops_per_sample, trainer.lm_vocab)
        per_sample = c.cycles_per_sample or c.cycles_per_flop * flops.total
        samples = learn.local_steps * np.minimum(learn.batch_size, trainer.sample_counts)
        cycles = per_sample * samples
        return cls(freq, cycles / freq, c.kappa * cycles * freq**2, flops)


@dataclass(frozen=True)
class ServerCompute:
    """Per-device server compute of one round (s), the accelerators that serve it, and how the
    protocol cuts it into requests."""

    time_s: np.ndarray
    accelerators: int
    forward_fraction: float  # of a local step's server work, its forward pass (by FLOPs)
    steps: int  # local steps per round (τ)
    per_step: bool  # the per-step protocol: a request per forward and per backward pass

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, trainer: SplitFedTrainer) -> ServerCompute:
        learn, server = cfg.learning, cfg.server
        flops = trainer.server_flops_per_sample
        fraction = flops.forward / flops.total if flops.total > 0 else 0.5
        shape = dict(accelerators=server.accelerators, forward_fraction=fraction, steps=learn.local_steps,
                     per_step=cfg.protocol == "per-step")
        if cfg.server_time_s is not None:
            return cls(np.full(cfg.scenario.devices, cfg.server_time_s), **shape)
        batch = np.minimum(learn.batch_size, trainer.sample_counts)
        step_s = flops.total * batch / server.flops_per_s + server.overhead_s
        return cls(learn.local_steps * step_s, **shape)

    def wait_allowance_s(self, inputs: RoundInputs) -> np.ndarray:
        """Per device, the longest its requests can queue with as many others ahead as can be
        scheduled with it: M − 1, M the most devices that fit in the band together
        (RoundProblem.max_count). Under `per-step` another device has at most one local step's
        work waiting (its backward pass and the next forward pass, when its embeddings are frozen
        and it does not wait for the backward), so each request waits at most for that much of
        each of the others."""
        most = RoundProblem(inputs, np.zeros(inputs.devices), 0.0).max_count
        if not self.per_step:
            return longest_wait_s(self.time_s, max(most - 1, 0), self.accelerators)
        step_s = self.time_s / self.steps
        return 2 * self.steps * longest_wait_s(step_s, max(most - 1, 0), self.accelerators)


def longest_wait_s(work_s: np.ndarray, ahead: int, servers: int) -> np.ndarray:
    """Per request, the `ahead` largest of the other requests over the servers: a request served in
    arrival order by `servers` waits while all of them are busy with requests that came first, so
    at most their work over `servers`."""
    largest = np.sort(work_s)[::-1]
    # the largest others: a request is among the `ahead` largest (then the next one replaces it) or not
    top, top_and_next = largest[:ahead].sum(), largest[:ahead + 1].sum()
    own_in_top = work_s >= (largest[ahead - 1] if ahead else np.inf)
    return np.where(own_in_top, top_and_next - work_s, top) / servers


def device_steps(cfg: ExperimentConfig, messages: list[tuple[Message, ...]], compute: DeviceCompute,
                 server: ServerCompute) -> list[tuple[Step, ...]]:
    """Every device's round under the configured protocol (cosim/experiment/protocol.py): the learning side's
    messages and the compute models' times. They do not change from round to round."""
    tau = cfg.learning.local_steps
    out = []
    for k, device in enumerate(messages):
        if cfg.protocol == "lumped":
            payload = total(device)
            out.append(lumped_steps(payload.uplink_bytes, payload.downlink_bytes, compute.time_s[k],
                                    server.time_s[k]))
        else:
            times = StepTimes.split(compute.time_s[k] / tau, server.time_s[k] / tau, compute.flops,
                                    server.forward_fraction)
            out.append(per_step_steps(device, times))
    return out


def round_plan(plan: Plan, inputs: RoundInputs, steps: list[tuple[Step, ...]], deadline_s: float,
               server_count: int) -> RoundPlan:
    """The message the simulator enacts: the plan's devices and shares, their rounds' steps, ns-3's
    deadline (the scheduler planned for less: the deadline margin) and the server's accelerators,
    which queue the requests."""
    return RoundPlan(inputs.round_index, plan.scheduled, plan.bandwidth_share, steps, deadline_s,
                     server_count)


def downlink_rate_bps(report: ChannelReport, scenario: ScenarioConfig) -> np.ndarray:
    """Estimated downlink rate per device at an equal share of the band (see the module doc)."""
    gain_db = (scenario.bs_tx_power_dbm - scenario.ue_tx_power_dbm) \
        - (scenario.ue_noise_figure_db - scenario.bs_noise_figure_db)
    cap = LTE_PEAK_SPECTRAL_EFFICIENCY if scenario.radio == "lte" else scenario.max_spectral_efficiency
    se = np.log2(1.0 + 10.0 ** ((report.snr_db + gain_db - scenario.link_margin_db) / 10.0))
    return np.clip(se, 1e-3, cap) * report.bandwidth_hz / scenario.devices


@contextmanager
def timed(times: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall time of the block to times[key] (a round's phases, for rounds.parquet)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        times[key] = times.get(key, 0.0) + time.perf_counter() - start


def overlap(execute: Callable[[], RoundOutcome], train: Callable[[], dict[int, Update]],
            times: dict[str, float]) -> tuple[RoundOutcome, dict[int, Update]]:
    """ns-3 in this thread, local training in a worker: both depend only on the plan.

    The simulation stays in the main thread so that Ctrl-C and SIGTERM reach its wait and its
    cleanup; the worker is a daemon, so an interrupted run does not wait for it.
    """
    result: dict[str, object] = {}

    def work() -> None:
        try:
            with timed(times, "train_wall_s"):
                result["updates"] = train()
        except BaseException as err:  # re-raised in the main thread
            result["error"] = err

    worker = threading.Thread(target=work, name="local-train", daemon=True)
    worker.start()
    try:
        with timed(times, "ns3_wall_s"):
            outcome = execute()
    except Exception:
        worker.join()
        raise
    worker.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return outcome, result["updates"]  # type: ignore[return-value]


def exit_interrupted() -> NoReturn:
    """Leave with status 130 after an interrupt, without finalising the interpreter.

    The local-training thread may be inside a torch op that cannot be interrupted; finalising
    under it aborts in C++. Every file of the run is closed by then.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def preflight(cfg: ExperimentConfig) -> Policy:
    """What can fail before any work: the ns-3 build (here, unless ns-3 runs behind the ZMQ relay),
    then the policy (its solver's import); then the optimizer's compiled kernels, loaded (or
    compiled, the first time on a machine) so that no round's solve time includes them."""
    if cfg.transport == "shm":
        scenario_binary()
    policy = build_policy(cfg.policy.name, cfg.policy.knobs,
                          cfg.policy.context(cfg.rounds, cfg.seed, cfg.scenario.devices))
    load_kernels()
    return policy


def open_simulation(cfg: ExperimentConfig, scenario: ScenarioConfig, log_path: Path,
                    max_steps: int) -> Ns3Simulation | ZmqSimulation:
    """ns-3 here over shared memory, or behind `python -m cosim.ns3_server` (same API, same bytes)."""
    if cfg.transport == "zmq":
        return ZmqSimulation(scenario, address=cfg.ns3_address, max_steps=max_steps,
                             client_key=cfg.ns3_client_key, server_key=cfg.ns3_server_key)
    return Ns3Simulation(scenario, log_path=log_path, max_steps=max_steps)


def run_experiment(cfg: ExperimentConfig, on_start: Callable[[RunDir], None] | None = None,
                   on_round: Callable[[dict], None] | None = None,
                   command: list[str] | None = None, path: Path | None = None) -> RunDir:
    """Preflight, make the run folder (`path`, or one named after the run), run every round, then
    record the status and draw the plots.

    Errors and interrupts propagate after the manifest says what happened; the rounds finished
    by then stay on disk and are plotted.
    """
    policy = preflight(cfg)
    return _run_in(RunDir(cfg, command, path), cfg, policy, None, on_start, on_round)


def resumable(path: Path) -> tuple[ExperimentConfig, Checkpoint | None]:
    """The config of the run in `path` and its checkpoint (None when no round finished)."""
    path = Path(path)
    if not (path / "config.yaml").is_file() or not (path / "manifest.json").is_file():
        raise ResumeError(f"{path} is not a run folder (no config.yaml or manifest.json); "
                          "give a folder that `cosim run` made")
    cfg = load_config(path / "config.yaml")
    if (path / CHECKPOINT_NAME).is_file():
        return cfg, Checkpoint.load(path / CHECKPOINT_NAME)
    if (path / "rounds.parquet").is_file():
        raise ResumeError(f"{path} has finished rounds but no {CHECKPOINT_NAME} to continue from; "
                          "start a new run")
    return cfg, None


def resume_experiment(path: Path, on_start: Callable[[RunDir], None] | None = None,
                      on_round: Callable[[dict], None] | None = None,
                      command: list[str] | None = None) -> RunDir:
    """Continue the run in `path` from its last finished round, with its own config.

    The simulator replays the recorded plans first; the model, the server optimiser, the policy,
    the queues and every generator continue from the checkpoint, so the rounds that follow are
    those an uninterrupted run would have had.
    """
    cfg, checkpoint = resumable(path)
    done = checkpoint.rounds_done if checkpoint else 0
    if done >= cfg.rounds:
        raise ResumeError(f"{path} already has all {cfg.rounds} rounds; nothing to resume")
    policy = preflight(cfg)
    return _run_in(RunDir.reopen(path, cfg, done, command), cfg, policy, checkpoint, on_start, on_round)


def _run_in(folder: RunDir, cfg: ExperimentConfig, policy: Policy, checkpoint: Checkpoint | None,
            on_start: Callable[[RunDir], None] | None, on_round: Callable[[dict], None] | None) -> RunDir:
    if on_start is not None:
        on_start(folder)
    try:
        run_rounds(cfg, policy, folder, on_round, checkpoint)
    except KeyboardInterrupt:
        folder.finish("interrupted")
        raise
    except Exception as err:
        folder.finish("failed", f"{type(err).__name__}: {str(err).splitlines()[0]}")
        raise
    else:
        folder.finish("completed")
    finally:
        if folder.rounds:
            folder.plots = plot_run(folder.rounds_frame, folder.devices_frame, folder.path / "plots")
    return folder


def history_row(devices: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """One finished round of the policy's history, read back from its devices table."""
    frame = devices.sort_values("device_id")
    return tuple(frame[c].to_numpy() for c in ("scheduled", "delivered", "realised_delay_s",
                                               "realised_energy_j", "snr_db"))


def replay(sim: Ns3Simulation | ZmqSimulation, plans: list[tuple[bytes, bytes, bytes]], run: RunDir) -> None:
    """Drive a fresh simulator through the recorded rounds, checking it measures and delivers as recorded.

    A mismatch means the simulator is not the one that ran them (another ns-3 build or scenario).
    """
    for t, wire in enumerate(plans):
        recorded = run.devices[t]
        report = sim.channel_report()
        outcome = sim.execute(read_plan(*wire))
        if not (np.array_equal(report.snr_db, recorded["snr_db"].to_numpy())
                and np.array_equal(outcome.records["completion_time_s"],
                                   recorded["realised_delay_s"].to_numpy(), equal_nan=True)):
            raise ResumeError(f"replaying round {t} of {run.path}: ns-3 measured or delivered other values "
                              "than the recorded run (another ns-3 build or scenario?); start a new run")


def run_rounds(cfg: ExperimentConfig, policy: Policy, run: RunDir,
               on_round: Callable[[dict], None] | None = None, checkpoint: Checkpoint | None = None) -> None:
    """Run every round of `cfg` after the checkpoint's, recording into `run`; after each round both
    tables and a new checkpoint are on disk, whatever happens next."""
    trainer = SplitFedTrainer(cfg.learning)
    compute = DeviceCompute.from_config(cfg, trainer)
    k = cfg.scenario.devices
    messages = [trainer.messages(d) for d in range(k)]  # predicted from shapes: the plans' and ns-3's
    payload = [total(m) for m in messages]
    uplink = np.array([p.uplink_bytes for p in payload], float)
    downlink = np.array([p.downlink_bytes for p in payload], float)
    tx_power_w = 10.0 ** ((cfg.scenario.ue_tx_power_dbm - 30.0) / 10.0)
    scheduler = Scheduler(policy, k)  # the run's energy queues and history, whatever the policy
    scenario = replace(cfg.scenario, flow_monitor_xml=run.flowmon_path if cfg.flow_monitor else None)
    server = ServerCompute.from_config(cfg, trainer)
    steps = device_steps(cfg, messages, compute, server)
    calibration = RateCalibration(k)
    plans: list[tuple[bytes, bytes, bytes]] = []
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint.trainer)
        policy.load_state_dict(checkpoint.policy)
        scheduler.queues.restore(checkpoint.queues)
        for t in range(checkpoint.rounds_done):  # the history, from the tables of the finished rounds
            scheduler.history.record(*history_row(run.devices[t]))
        calibration.load_state_dict(checkpoint.calibration)
        plans = list(checkpoint.plans)
    with open_simulation(cfg, scenario, run.ns3_log, sum(map(len, steps))) as sim:
        run.update_manifest(simulator={"transport": cfg.transport, **getattr(sim, "server_info", {})},
                            learning_device=describe(trainer.where, cfg.learning.precision))
        replay(sim, plans, run)
        for t in range(len(plans), cfg.rounds):
            start = time.perf_counter()
            times: dict[str, float] = {}
            with timed(times, "report_wall_s"):
                report = sim.channel_report()
            inputs = RoundInputs(
                snr_db=report.snr_db, uplink_bytes=uplink, downlink_bytes=downlink,
                compute_time_s=compute.time_s, downlink_rate_bps=downlink_rate_bps(report, cfg.scenario),
                tx_power_w=tx_power_w, compute_energy_j=compute.energy_j,
                energy_budget_j=cfg.energy_budget_j, server_time_s=server.time_s,
                deadline_s=cfg.deadline_s * (1.0 - cfg.deadline_margin), bandwidth_hz=report.bandwidth_hz,
                round_index=t, snr_gap_db=cfg.scenario.link_margin_db, present=report.present,
                rate_efficiency=calibration.efficiency if cfg.calibrate_rate else 1.0)
            inputs = replace(inputs, server_wait_s=server.wait_allowance_s(inputs))
            with timed(times, "plan_wall_s"):
                inputs, plan = scheduler.plan(inputs)
            scheduled = np.flatnonzero(plan.scheduled).tolist()
            enacted = round_plan(plan, inputs, steps, cfg.deadline_s, server.accelerators)
            outcome, updates = overlap(lambda: sim.execute(enacted),  # noqa: B023
                                       lambda: trainer.local_train(scheduled), times)  # noqa: B023
            delivered = outcome.delivered & plan.scheduled
            with timed(times, "aggregate_wall_s"):
                trainer.aggregate(updates, set(np.flatnonzero(delivered).tolist()))
            realised = np.where(plan.scheduled, outcome.records["tx_energy_j"] + compute.energy_j, 0.0)
            scheduler.observe(inputs, plan, realised, delivered, outcome.records["completion_time_s"])
            calibration.update(inputs, plan, outcome.records)
            with timed(times, "eval_wall_s"):
                metrics = trainer.evaluate() if (t + 1) % cfg.learning.eval_every == 0 \
                    or t == cfg.rounds - 1 else {}
            row = round_row(t, report, outcome, plan, updates, metrics, realised, inputs)
            row.update(times)
            row["wall_s"] = time.perf_counter() - start
            run.record(row, device_rows(t, report, outcome, plan, inputs, compute, realised, delivered,
                                        scheduler.queues.values))
            # after the tables: a checkpoint never gets ahead of the rounds on disk
            plans.append(enacted.wire)
            Checkpoint(t + 1, plans, trainer.state_dict(), policy.state_dict(), scheduler.queues.values,
                       calibration.state_dict()).save(run.checkpoint_path)
            if on_round is not None:
                on_round(row)


def round_row(t: int, report: ChannelReport, outcome: RoundOutcome, plan: Plan,
              updates: dict[int, Update], metrics: dict[str, float], realised: np.ndarray,
              inputs: RoundInputs) -> dict:
    """One row of rounds.parquet."""
    nan = float("nan")
    return {
        "round": t, "sim_time_s": report.sim_time_s, "round_duration_s": outcome.round_duration_s,
        "scheduled": plan.n_scheduled, "delivered": int((outcome.delivered & plan.scheduled).sum()),
        "accuracy": metrics.get("accuracy", nan), "macro_f1": metrics.get("macro_f1", nan),
        "test_loss": metrics.get("loss", nan), "val_accuracy": metrics.get("val_accuracy", nan),
        "val_macro_f1": metrics.get("val_macro_f1", nan), "val_loss": metrics.get("val_loss", nan),
        "perplexity": metrics.get("perplexity", nan), "val_perplexity": metrics.get("val_perplexity", nan),
        "train_loss": float(np.mean([u.loss for u in updates.values()])) if updates else nan,
        "energy_j": float(realised.sum()), "predicted_energy_j": float(plan.predicted_energy_j.sum()),
        "objective": plan.objective, "lower_bound": nan if plan.lower_bound is None else plan.lower_bound,
        "relative_gap": plan.relative_gap, "phi": plan.phi, "solver": plan.solver, "license": plan.license,
        "solve_time_s": plan.solve_time_s,
    }


def device_rows(t: int, report: ChannelReport, outcome: RoundOutcome, plan: Plan, inputs: RoundInputs,
                compute: DeviceCompute, realised: np.ndarray, delivered: np.ndarray,
                queue_j: np.ndarray) -> dict[str, np.ndarray]:
    """Columns of devices.parquet for one round (one entry per device)."""
    rec, rep = outcome.records, report.records
    return {
        "round": np.full(len(rec), t), "device_id": rec["device_id"].astype(int),
        "scheduled": plan.scheduled, "delivered": delivered, "bandwidth_share": plan.bandwidth_share,
        "present": rep["present"].astype(bool), "los_state": rep["los_state"].astype(np.int8),
        "snr_db": rep["snr_db"], "distance_m": rep["distance_m"], "speed_mps": rep["speed_mps"],
        "cpu_freq_hz": compute.freq_hz,
        "predicted_delay_s": plan.predicted_delay_s, "realised_delay_s": rec["completion_time_s"],
        "steps_completed": rec["steps_completed"].astype(np.int64),
        "messages_delivered": rec["messages_delivered"].astype(np.int64),
        "uplink_transfer_s": rec["uplink_transfer_s"], "downlink_transfer_s": rec["downlink_transfer_s"],
        "device_compute_s": rec["device_compute_s"], "server_compute_s": rec["server_compute_s"],
        "server_time_s": inputs.server_time_s, "planned_server_wait_s": inputs.server_wait_s,
        "server_wait_s": rec["server_wait_s"], "granted_share": rec["granted_share"],
        "predicted_energy_j": plan.predicted_energy_j, "realised_energy_j": realised,
        "tx_energy_j": np.where(plan.scheduled, rec["tx_energy_j"], 0.0),
        "compute_energy_j": np.where(plan.scheduled, compute.energy_j, 0.0),
        "energy_budget_j": np.broadcast_to(inputs.energy_budget_j, len(rec)),
        "rate_efficiency": inputs.rate_efficiency,
        "queue_j": queue_j,
        "uplink_bytes": np.where(plan.scheduled, inputs.uplink_bytes, 0).astype(np.int64),
        "downlink_bytes": np.where(plan.scheduled, inputs.downlink_bytes, 0).astype(np.int64),
        "uplink_delivered_bytes": rec["uplink_delivered_bytes"].astype(np.int64),
        "downlink_delivered_bytes": rec["downlink_delivered_bytes"].astype(np.int64),
        "airtime_s": rec["airtime_s"], "retransmissions": rec["retransmissions"].astype(np.int64),
        "packets_lost": rec["packets_lost"].astype(np.int64),
    }
