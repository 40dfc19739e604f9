"""The ``cosim`` command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.table import Table
from rich.text import Text

from cosim.cli.sumo import sumo_app
from cosim.cli.terminal import console, fail
from cosim.experiment.config import ExperimentConfig, load_config, preset_names
from cosim.simulator.scenario import ConfigError, ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation, ScenarioNotBuilt, SimulationError, sigterm_as_interrupt
from cosim.wire import bridge
from cosim.wire.messages import RoundPlan

if TYPE_CHECKING:
    import pandas as pd

    from cosim.experiment.rundir import RunDir

app = typer.Typer(help="Co-simulation of split federated LoRA over an ns-3 wireless network.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
shm_app = typer.Typer(help="Shared-memory segments of the ns-3 bridge (/dev/shm/cosim-*).",
                      no_args_is_help=True)
app.add_typer(shm_app, name="shm")
sweep_app = typer.Typer(help="Grids of runs (policies × seeds × any key), on a local pool or Slurm.",
                        no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")
app.add_typer(sumo_app, name="sumo")
keys_app = typer.Typer(help="CURVE key pairs for the ZMQ transport (ns-3 on another host, docs/bridge.md).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new(
    name: Annotated[str, typer.Argument(help="the pair's name: NAME.key (public) and NAME.key_secret")],
    folder: Annotated[Path, typer.Option("--dir", help="where to write the pair")] = Path("~/.cosim/keys"),
) -> None:
    """Make a key pair. The server's user starts `python -m cosim.ns3_server --keys NAME.key_secret
    --allow DIR` with the clients' public keys in DIR; a client sets ns3_client_key (its own
    NAME.key_secret) and ns3_server_key (the server's NAME.key). Secret keys stay on their host."""
    from cosim.simulator.zmq_keys import new_key_pair

    try:
        public, secret = new_key_pair(folder, name)
    except ConfigError as e:
        fail(str(e))
    console.print(f"public key (hand it to the other side): {public}\nsecret key (keep it here, mode 0600): "
                  f"{secret}", highlight=False, markup=False)


@shm_app.command("list")
def shm_list() -> None:
    """List cosim segments; a segment whose creating process is gone is stale."""
    segments = bridge.list_segments()
    if not segments:
        console.print("no cosim segments in /dev/shm")
        return
    width = max(len(s.name) for s in segments)
    print(f"{'name':<{width}}  {'size_bytes':>10}  {'python_pid':>10}  {'ns3_pid':>8}  state")
    for s in segments:
        state = "stale" if s.stale else "in use"
        print(f"{s.name:<{width}}  {s.size_bytes:>10}  {s.python_pid:>10}  {s.ns3_pid:>8}  {state}")


@shm_app.command("clean")
def shm_clean(
    all_: Annotated[bool, typer.Option("--all", help="also remove segments of running processes")] = False,
) -> None:
    """Remove stale segments (left by a process killed with SIGKILL, for instance)."""
    removed = bridge.clean_segments(include_live=all_)
    console.print(f"removed {len(removed)} segment(s)" + "".join(f"\n  {n}" for n in removed))


@app.command()
def simulate(
    devices: Annotated[int, typer.Option(help="number of devices K")] = 10,
    rounds: Annotated[int, typer.Option(help="rounds to simulate")] = 3,
    radio: Annotated[str, typer.Option(help="lte | ideal-fdma")] = "ideal-fdma",
    mobility: Annotated[str, typer.Option(help="constant | random-walk | random-waypoint | "
                                               "gauss-markov | ns2")] = "random-walk",
    trace_file: Annotated[str | None, typer.Option(help="ns-2 mobility trace (mobility=ns2)")] = None,
    payload_mb: Annotated[float, typer.Option(help="uplink and downlink payload per device (MB)")] = 1.0,
    deadline_s: Annotated[float, typer.Option(help="round deadline (s)")] = 10.0,
    rng_run: Annotated[int, typer.Option("--rng-run", help="ns-3 RngRun (replication)")] = 1,
) -> None:
    """Run the ns-3 scenario alone: every device every round with equal shares.

    Prints one line per round (scheduled, delivered, delays, energy). This exercises the
    simulator and the bridge without the learning side.
    """
    try:
        cfg = ScenarioConfig(devices=devices, radio=radio, mobility=mobility,
                             trace_file=trace_file, rng_run=rng_run)
    except ConfigError as e:
        fail(str(e))
    payload = int(payload_mb * 1e6)
    table = Table("round", "sim_time_s", "mean_snr_db", "delivered", "max_delay_s",
                  "energy_j", title=f"{radio}, {devices} devices, {payload_mb:g} MB each way")
    try:
        with Ns3Simulation(cfg) as sim:
            for t in range(rounds):
                report = sim.channel_report()
                plan = RoundPlan.equal_shares(t, np.ones(devices, bool), payload, payload,
                                              deadline_s=deadline_s)
                out = sim.execute(plan)
                rec = out.records
                table.add_row(str(t), f"{report.sim_time_s:.2f}", f"{np.mean(report.snr_db):.1f}",
                              f"{int(out.delivered.sum())}/{devices}",
                              f"{np.nanmax(rec['completion_time_s']):.2f}" if out.delivered.any() else "-",
                              f"{rec['tx_energy_j'].sum():.3f}")
    except (ScenarioNotBuilt, SimulationError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        console.print("interrupted; the simulator was stopped and its segment removed")
        raise typer.Exit(130) from None
    console.print(table)



RUN_HELP = f"""Run one experiment: ns-3, the scheduler and split federated LoRA, round by round.

CONFIG is a preset ({", ".join(preset_names())}) or the path of a YAML file; OVERRIDES are
dotted key=value pairs applied after it, parsed by each key's type (null for none).

\b
Examples:
  cosim run smoke
  cosim run default scenario.devices=20 policy.name=random-k policy.k=5 rounds=10
  cosim run my.yaml seed=3 scenario.radio=lte flow_monitor=true

\b
Sections: rounds, seed (ns-3, training and, unless data_seed is set, the data's split and partition),
data_seed, deadline_s, energy_budget_j, server_time_s, results_dir, flow_monitor, csv,
protocol (per-step: split learning's messages one by one; lumped: the paper's one upload and one
download per round), transport (shm, or zmq to reach ns-3 under `python -m cosim.ns3_server` at
ns3_address; ns3_client_key and ns3_server_key when the server checks keys, `cosim keys new`);
scenario.* (the ns-3 scenario), learning.* (task: classification, or causal-lm with a decoder and
text or prompt/response rows; model: path of an encoder or decoder folder and
device_layers, the layers the device runs; lora, data, local_steps, batch_size, lr, eval_every;
device: auto, cpu or cuda and precision: fp32 or bf16, which change no simulated number ...),
policy.* (name: a built-in policy or your class as module:Class, then the
policy's own knobs: lyapunov's v, mu_eta, solver, rate, energy_price (what a joule costs below the
budget) and min_participation (the share of rounds each device takes part in at least; both 0 as
in the paper); random-k's k, shares, rate; ... docs/scheduler.md lists them), compute.* (f_min_hz,
f_max_hz, kappa),
server.* (flops_per_s, overhead_s, accelerators: the simulated edge server; server_time_s fixes
its compute per device and round instead).
An unknown key names the closest valid ones. The run folder goes under results_dir.

\b
An interrupted run (Ctrl-C, kill, a crash of either side) keeps its finished rounds and a
checkpoint; `cosim run --resume RUN_DIR` continues it with its own config: ns-3 replays the
recorded rounds, then model, optimiser, policy, queues and seeds carry on where they were.
"""


@app.command(help=RUN_HELP)
def run(
    config: Annotated[str | None, typer.Argument(
        help="preset name or YAML file (the `default` preset when omitted)", show_default=False)] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides",
                                                          show_default=False)] = None,
    resume: Annotated[Path | None, typer.Option("--resume", metavar="RUN_DIR",
                                                help="continue this interrupted run instead",
                                                show_default=False)] = None,
) -> None:
    if resume is not None:
        if config is not None or overrides:
            fail("--resume continues RUN_DIR with its own config.yaml: give no CONFIG or overrides")
        command = ["cosim", "run", "--resume", str(resume)]
        with sigterm_as_interrupt():
            folder = _run_with_progress(None, command, resume)
    else:
        try:
            cfg = load_config(config or "default", overrides or [])
        except ConfigError as e:
            fail(str(e))
        command = ["cosim", "run", config or "default", *(overrides or [])]
        with sigterm_as_interrupt():  # also while the model loads, before ns-3 runs
            folder = _run_with_progress(cfg, command)
    _summary(folder)


def _run_with_progress(cfg: ExperimentConfig | None, command: list[str],
                       resume: Path | None = None) -> RunDir:
    """The run (or the resumed run) behind a progress bar; errors become one message, interrupts exit
    with status 130."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cosim.experiment.checkpoint import ResumeError
    from cosim.experiment.runloop import exit_interrupted, resumable, resume_experiment, run_experiment

    if cfg is None:
        try:
            cfg = resumable(resume)[0]
        except (ResumeError, ConfigError) as e:
            fail(str(e))

    columns = (TextColumn("round"), MofNCompleteColumn(), BarColumn(),
               TextColumn("{task.fields[metric]} {task.fields[acc]}  scheduled {task.fields[sched]}  "
                          "energy {task.fields[energy]}"),
               TimeElapsedColumn())
    folder: RunDir | None = None
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("rounds", total=cfg.rounds, acc="-", sched="-", energy="-",
                                 metric="acc" if cfg.learning.task == "classification" else "ppl")
        energy = 0.0

        def on_start(run_dir: RunDir) -> None:
            nonlocal folder, energy
            folder = run_dir
            progress.console.print(f"run folder: {run_dir.path}")
            if run_dir.rounds:
                energy = float(run_dir.rounds_frame["energy_j"].sum())
                progress.update(task, completed=len(run_dir.rounds))
                progress.console.print(f"resuming after round {len(run_dir.rounds)}: ns-3 replays the "
                                       "recorded rounds first")

        def on_round(row: dict) -> None:
            nonlocal energy
            energy += row["energy_j"]
            acc = row["accuracy"] if cfg.learning.task == "classification" else row["perplexity"]
            progress.update(task, advance=1, acc="-" if acc != acc else f"{acc:.3f}",
                            sched=f"{row['scheduled']}/{cfg.scenario.devices}", energy=f"{energy:.2f} J")

        try:
            if resume is not None:
                return resume_experiment(resume, on_start, on_round, command=command)
            return run_experiment(cfg, on_start, on_round, command=command)
        except (ConfigError, ScenarioNotBuilt, SimulationError, FileNotFoundError, ValueError,
                RuntimeError, ImportError) as e:
            fail(f"{e}" + (f"\nfinished rounds are kept in {folder.path}; continue with `cosim run "
                            f"--resume {folder.path}`" if folder and folder.rounds else ""))
        except KeyboardInterrupt:
            progress.stop()
            console.print("interrupted; the simulator was stopped and its segment removed"
                          + (f"; finished rounds are in {folder.path}, continue with `cosim run --resume "
                             f"{folder.path}`" if folder else ""))
            exit_interrupted()


def _summary(folder: RunDir) -> None:
    from cosim.experiment.rundir import quality_metric

    rounds, devices = folder.rounds_frame, folder.devices_frame
    sched = devices[devices["scheduled"]]
    metric = quality_metric(rounds)
    acc = rounds[metric].dropna()
    val = rounds[f"val_{metric}"].dropna() if f"val_{metric}" in rounds else acc.iloc[:0]
    ratio = (sched["realised_delay_s"] / sched["predicted_delay_s"]).median()
    table = Table("quantity", "value", title=f"{folder.path.name}")
    for name, value in (
        ("rounds", f"{len(rounds)}"),
        (f"final {metric}: test (report it)", f"{acc.iloc[-1]:.3f}" if len(acc) else "-"),
        (f"final {metric}: validation (choose by it)", f"{val.iloc[-1]:.3f}" if len(val) else "-"),
        ("devices scheduled per round", f"{rounds['scheduled'].mean():.2f}"),
        ("delivered / scheduled", f"{int(rounds['delivered'].sum())}/{int(rounds['scheduled'].sum())}"),
        ("energy per scheduled device [J]", f"{sched['realised_energy_j'].mean():.3f}"),
        ("energy per device and round vs budget [J]",
         f"{devices['realised_energy_j'].mean():.3f} / {devices['energy_budget_j'].mean():.3f}"),
        ("realised / predicted delay (median)", f"{ratio:.2f}"),
        ("solver", ", ".join(f"{s['solver']} ({s['license']})" for s in folder.manifest["solvers"])),
    ):
        table.add_row(name, value)
    console.print(table)
    console.print("plots:\n" + "\n".join(f"  {p}" for p in folder.plots), highlight=False)


@app.command()
def doctor(
    results_dir: Annotated[Path, typer.Option(help="where runs will write")] = ExperimentConfig.results_dir,
) -> None:
    """Check that this machine can run an experiment; exit status 1 when a check fails.

    Checks Python, the ns-3 wheel and the compiled scenario, shared memory and stale segments,
    Gurobi (and its licence) and HiGHS, the model's checksum, the datasets, torch and results_dir.
    """
    from cosim.cli.doctor import exit_code, run_checks

    checks = run_checks(results_dir)
    colours = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    table = Table("check", "status", "detail", "fix", title="cosim doctor")
    for c in checks:
        table.add_row(c.name, Text(c.status, style=colours[c.status]), c.detail, c.fix)
    console.print(table)
    raise typer.Exit(exit_code(checks))


@app.command()
def report(
    runs: Annotated[list[str], typer.Argument(help="run folders, folders of runs, or glob patterns")],
    out: Annotated[Path | None, typer.Option(help="output folder [default: results/report-<time>]",
                                             show_default=False)] = None,
    by: Annotated[str, typer.Option(help="comma-separated config keys whose values group the runs, "
                                         "e.g. scenario.mobility,policy.name")] = "policy.name",
    target: Annotated[float | None, typer.Option(
        help="test accuracy to reach: each run's simulated time and energy per device until its first "
             "evaluation at or above it (time_to_target_s, energy_to_target_j)", show_default=False)] = None,
    against: Annotated[str | None, typer.Option(
        help="a group (as the table names it): every other group's difference to it, seed by seed, "
             "with mean and 95 % CI over the shared seeds (paired.csv)", show_default=False)] = None,
) -> None:
    """Compare runs: a table (report.csv) with a row per run and mean ± 95 % CI per group (policy,
    or the values of --by keys) over seeds, accuracy also read at the least cumulative energy any run
    spent; and a figure (report.png): accuracy and cumulative energy per device vs round, and
    accuracy vs cumulative energy per device."""
    from cosim.campaign.report import (
        CannotPair,
        NotARunFolder,
        paired_rich_table,
        read_past_common_energy,
        rich_table,
        write_report,
    )

    try:
        keys = tuple(k.strip() for k in by.split(",") if k.strip())
        table, csv_path, png_path, paired = write_report(runs, out, keys, target, against)
    except (NotARunFolder, CannotPair) as e:
        fail(str(e))
    console.print(rich_table(table, f"{int((table['row'] == 'run').sum())} run(s)"))
    late = read_past_common_energy(table)
    if len(late):
        groups, common = ", ".join(sorted(set(late["group"]))), table["common_energy_j"].iloc[0]
        console.print(
            f"note: {len(late)} run(s) ({groups}) had spent more than the common energy ({common:.3f} J per "
            "device) by their first evaluation, so their accuracy at the common energy and over the range is "
            "that evaluation's, read after more energy than the others' (report.csv: "
            "first_evaluation_energy_j); evaluating more often (learning.eval_every) compares them at equal "
            "energy", highlight=False)
    if paired is not None:
        console.print(paired_rich_table(paired))
    console.print(f"table:  {csv_path}\nfigure: {png_path}", highlight=False)
    if paired is not None:
        console.print(f"paired: {csv_path.with_name('paired.csv')}", highlight=False)


SWEEP_HELP = """Run every point of a sweep file's grid; again, to finish what is missing.

\b
A sweep file (YAML):
  config: default                    # preset or YAML file every run starts from
  overrides: [rounds=20]             # key=value for every run, as for `cosim run`
  grid: {policy.name: [lyapunov, random-k], seed: [1, 2, 3]}
  launcher: {kind: local, workers: 2}
  # slurm: {kind: slurm, partition: gpu, time_min: 120, cpus_per_task: 2,
  #         mem_gb: 8, array_parallelism: 16, sbatch: {account: myproject}}
  name: policies                     # folder <results_dir>/sweep-<name>

OVERRIDES change the sweep file itself, e.g. launcher.kind=slurm, launcher.workers=2,
grid.seed=[1,2,3]. Every point's config is checked before anything runs. Completed runs are
skipped; interrupted, killed or failed ones continue from their checkpoint; missing ones start.
Locally each run is its own process (threads per run: cores // workers); on Slurm the points are
one job array through submitit (--no-wait submits and returns). Exit status 1 when a run did not
complete. `cosim sweep collect FOLDER` tabulates the runs; `cosim report FOLDER/runs` plots them.
"""


@sweep_app.command("run", help=SWEEP_HELP)
def sweep_run(
    file: Annotated[Path, typer.Argument(help="sweep file (YAML)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value changes to the sweep file",
                                                          show_default=False)] = None,
    wait: Annotated[bool, typer.Option(help="on Slurm, wait for the array and show its progress")] = True,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cosim.campaign import sweep as sweeps

    try:
        sweep = sweeps.load_sweep(file, overrides or [])
    except ConfigError as e:
        fail(str(e))
    todo = sweeps.prepare(sweep)
    points = sweep.points()
    console.print(f"sweep folder: {sweep.folder}\n{len(points)} runs: {len(points) - len(todo)} completed, "
                  f"{len(todo)} to run on {sweep.launcher.kind}", highlight=False)
    if todo:
        with Progress(TextColumn("runs"), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("runs", total=len(todo))

            def on_done(name: str, state: str) -> None:
                progress.update(task, advance=1)
                progress.console.print(f"  {name}: {state}", highlight=False)

            try:
                with sigterm_as_interrupt():
                    if sweep.launcher.kind == "local":
                        sweeps.run_local(sweep, todo, on_done)
                    else:
                        jobs = sweeps.submit_slurm(sweep, todo)
                        progress.console.print(f"submitted Slurm job array {jobs[0][1].job_id.split('_')[0]}"
                                               f" ({len(jobs)} tasks)")
                        if not wait:
                            progress.stop()
                            console.print(f"when it is done: cosim sweep collect {sweep.folder}")
                            return
                        sweeps.wait_slurm(sweep, jobs, on_done)
            except KeyboardInterrupt:
                progress.stop()
                console.print("interrupted; finished rounds and checkpoints are kept: run the same command "
                              "again to continue" + (" (the Slurm jobs keep running)"
                                                     if sweep.launcher.kind == "slurm" else ""))
                raise typer.Exit(130) from None
    table = sweeps.collect(sweep.folder)
    _sweep_table(table, sweep.folder)
    raise typer.Exit(0 if (table["status"] == "completed").all() else 1)


@sweep_app.command("collect")
def sweep_collect(folder: Annotated[Path, typer.Argument(help="the sweep's folder (sweep-<name>)")]) -> None:
    """One row per point (grid values, status, metrics) in FOLDER/sweep.csv, shown as a table."""
    from cosim.campaign import sweep as sweeps

    if not (folder / sweeps.SWEEP_FILE).is_file():
        fail(f"{folder} is not a sweep folder (no {sweeps.SWEEP_FILE}); `cosim sweep run FILE` makes one")
    _sweep_table(sweeps.collect(folder), folder)


def _sweep_table(table: pd.DataFrame, folder: Path) -> None:
    from cosim.campaign.report import COLUMNS

    grid = list(table.columns[1:list(table.columns).index("status")])
    shown = grid + [c for c in ("status", "rounds", "final_accuracy", "mean_scheduled",
                                "energy_per_device_round_j", "max_energy_over_budget") if c in table.columns]
    title = f"{folder.name}: {int((table['status'] == 'completed').sum())}/{len(table)} completed"
    out = Table(*(COLUMNS.get(c, c) for c in shown), title=title)
    for _, row in table.iterrows():
        out.add_row(*(_sweep_cell(row[c], c) for c in shown))
    console.print(out)
    console.print(f"table: {folder / 'sweep.csv'}\nplots: cosim report {folder / 'runs'}", highlight=False)


def _sweep_cell(value: object, column: str) -> str:
    if isinstance(value, float) and value != value:
        return "-"
    if column == "rounds":
        return str(int(value))  # type: ignore[call-overload]
    return f"{value:.3f}" if isinstance(value, float) else str(value)
