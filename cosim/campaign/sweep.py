"""`cosim sweep`: a grid of runs on a local pool of processes or as a Slurm job array (submitit).

A sweep file (YAML):

    config: default                  # preset or YAML file every run starts from
    overrides: [rounds=20]           # key=value for every run, as for `cosim run`
    grid:                            # one run per combination of these values
      policy.name: [lyapunov, random-k]
      seed: [1, 2, 3]
      mobility:                      # a label: named groups of settings that go together
        pedestrian: {scenario.mobility: random-walk}
        vehicular: {scenario.mobility: ns2, scenario.trace_file: traces/cars.ns2}
    launcher:
      kind: local                    # local | slurm
      workers: 2                     # local: runs at once; torch threads per run = cores // workers
      partition: null                # slurm: partition, time_min, cpus_per_task (= threads per run),
      time_min: 120                  #   mem_gb, array_parallelism (array tasks at once)
      cpus_per_task: 2
      mem_gb: 8
      array_parallelism: 16
      sbatch: {account: myproject}   # slurm: any other sbatch option (--account=myproject)
    name: policies                   # the folder <results_dir>/sweep-<name> (default: the file's stem)

The sweep's folder holds the resolved `sweep.yaml`, `runs/<point>/` (a run folder per grid point,
named after its values, e.g. `policy.name=random-k,seed=2`), `logs/` and, on Slurm, `slurm/`
(submitit's job files). Running a sweep again skips completed runs, continues interrupted, killed
or failed ones from their checkpoint (as `cosim run --resume`), starts missing ones, and refuses a
run folder made with another config. `cosim sweep collect` writes one table, `sweep.csv`: a row
per point with its grid values, status and the metrics of `cosim report`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import fcntl
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cosim.experiment.config import ExperimentConfig, apply_overrides, load_config, read_mapping
from cosim.simulator.scenario import ConfigError
from optimizer import knobs_of, policy_class

LAUNCHERS = ("local", "slurm")
SWEEP_FILE = "sweep.yaml"
POLL_S = 0.2


@dataclass(frozen=True)
class Launcher:
    """Where the runs go and how many at once; validated at construction."""

    kind: str = "local"
    workers: int = 1
    threads_per_run: int | None = None
    partition: str | None = None
    time_min: int = 120
    cpus_per_task: int = 2
    mem_gb: float = 8.0
    array_parallelism: int = 16
    sbatch: dict[str, str | int] = field(default_factory=dict)  # any other sbatch option: {account: proj}

    def __post_init__(self) -> None:
        checks = [(self.kind in LAUNCHERS, "kind", f"one of {', '.join(LAUNCHERS)}"),
                  (self.workers >= 1, "workers", ">= 1"),
                  (self.threads_per_run is None or self.threads_per_run >= 1, "threads_per_run",
                   ">= 1 (or null for cores // workers)"),
                  (self.time_min >= 1, "time_min", ">= 1"),
                  (self.cpus_per_task >= 1, "cpus_per_task", ">= 1"), (self.mem_gb > 0, "mem_gb", "> 0"),
                  (self.array_parallelism >= 1, "array_parallelism", ">= 1"),
                  (isinstance(self.sbatch, dict) and all(
                      isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
                      for k, v in self.sbatch.items()), "sbatch",
                   "a mapping of sbatch's long options to values, e.g. {account: myproject, qos: normal}")]
        for ok, key, allowed in checks:
            if not ok:
                raise ConfigError(f"launcher.{key}={getattr(self, key)!r} is invalid: {allowed}")

    @property
    def threads(self) -> int:
        """torch threads per run: the Slurm task's CPUs, or this machine's cores shared by the workers."""
        if self.kind == "slurm":
            return self.cpus_per_task
        return self.threads_per_run or max(1, (os.cpu_count() or 1) // self.workers)


@dataclass(frozen=True)
class Point:
    """One combination of grid values (a labelled group counts by its label); its name is its run
    folder's, its overrides what it changes in the config."""

    values: dict[str, Any]
    overrides: tuple[str, ...]

    @property
    def name(self) -> str:
        return ",".join(f"{key}={_text(value)}".replace("/", "_") for key, value in self.values.items())


@dataclass(frozen=True)
class Sweep:
    name: str
    config: str
    overrides: tuple[str, ...] = ()
    grid: dict[str, list] = field(default_factory=dict)
    launcher: Launcher = field(default_factory=Launcher)
    results_dir: Path = ExperimentConfig.results_dir

    @property
    def folder(self) -> Path:
        return Path(self.results_dir) / f"sweep-{self.name}"

    def points(self) -> list[Point]:
        """Every combination, the last grid key varying fastest."""
        choices = [[(key, label, _group_overrides(key, label, values)) for label in values]
                   for key, values in self.grid.items()]
        return [Point({key: label for key, label, _ in combo}, tuple(o for *_, group in combo for o in group))
                for combo in itertools.product(*choices)]

    def point(self, name: str) -> Point:
        for point in self.points():
            if point.name == name:
                return point
        raise ConfigError(f"the sweep {self.name!r} has no point {name!r}")

    def run_config(self, point: Point) -> ExperimentConfig:
        """The point's config; its results_dir is the sweep's runs/ folder. A policy knob among the
        sweep's `overrides` goes to the points whose policy takes it (`policy.k=6` for the k
        baselines, not the Lyapunov points beside them); the grid's knobs go to their points as given."""
        shared, knobs = _split_knobs(self.overrides)
        here = [*point.overrides, f"results_dir={self.folder / 'runs'}"]
        try:
            cfg = load_config(self.config, [*shared, *here])
            takes = {f.name for f in knobs_of(policy_class(cfg.policy.name))}
            taken = [o for o in knobs if _knob(o) in takes]
            return load_config(self.config, [*shared, *taken, *here]) if taken else cfg
        except ConfigError as err:
            raise ConfigError(f"sweep point {point.name}: {err}") from None

    def to_dict(self) -> dict:
        launcher = {f.name: getattr(self.launcher, f.name) for f in fields(Launcher)}
        return {"name": self.name, "config": self.config, "overrides": list(self.overrides),
                "grid": self.grid, "launcher": launcher, "results_dir": str(self.results_dir)}


def _group_overrides(key: str, label: Any, values: list | dict) -> list[str]:
    """`key=label` for a plain grid key; a labelled group's own key=value settings for its label."""
    if isinstance(values, dict):
        return [f"{k}={_text(v)}" for k, v in values[label].items()]
    return [f"{key}={_text(label)}"]


def _text(value: Any) -> str:
    """A grid value as `cosim run` reads it back (YAML flow style, one line)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n").removesuffix("\n...")


SWEEP_KEYS = ("name", "config", "overrides", "grid", "launcher", "results_dir")


def load_sweep(source: Path | str, overrides: list[str] = ()) -> Sweep:
    """A sweep file, then dotted key=value overrides of it (`launcher.kind=slurm`, `grid.seed=[1,2]`).

    Every point's run config is built here, so a bad value stops the sweep before any run starts.
    """
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"sweep file {str(source)!r} does not exist")
    data = read_mapping(path, ", ".join(SWEEP_KEYS))
    # grid keys are dotted config keys themselves: `grid.policy.name=[a, b]` sets the grid's entry
    # `policy.name`, not a nested mapping
    on_grid = [o for o in overrides if o.partition("=")[0].strip().startswith("grid.")]
    apply_overrides(data, [o for o in overrides if o not in on_grid], "launcher.workers=2")
    for item in on_grid:
        key, sep, text = item.partition("=")
        if not sep or not isinstance(data.setdefault("grid", {}), dict):
            raise ConfigError(f"override {item!r} is not of the form grid.<config key>=[values]")
        data["grid"][key.strip().removeprefix("grid.")] = yaml.safe_load(text) if text.strip() else None
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], SWEEP_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}{hint}; known: {', '.join(SWEEP_KEYS)}")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict) or not grid or not all(_grid_entry_ok(v) for v in grid.values()):
        raise ConfigError(f"{path}: grid must map config keys to non-empty lists, e.g. {{seed: [1, 2]}}, "
                          "or a label to named groups of settings, e.g. {mobility: {walk: "
                          "{scenario.mobility: random-walk}, car: {scenario.mobility: ns2, ...}}}")
    config = str(data.get("config", "default"))
    for place in (path.parent / config, Path(config)):  # a YAML beside the sweep file or here; else a preset
        if place.suffix in (".yaml", ".yml") and place.is_file():
            config = str(place.resolve())
            break
    launcher = data.get("launcher") or {}
    if not isinstance(launcher, dict):
        raise ConfigError(f"{path}: launcher must be a mapping (kind, workers, partition, ...)")
    bad = sorted(set(launcher) - {f.name for f in fields(Launcher)})
    if bad:
        raise ConfigError(f"{path}: unknown launcher key {bad[0]!r}; known: "
                          f"{', '.join(f.name for f in fields(Launcher))}")
    extra = [str(o) for o in data.get("overrides") or []]
    # absolute, so workers and Slurm tasks started elsewhere find the same folder
    results_dir = data.get("results_dir") or load_config(config, _split_knobs(extra)[0]).results_dir
    results_dir = Path(results_dir).absolute()
    sweep = Sweep(name=str(data.get("name") or path.stem.removeprefix("sweep-")), config=config,
                  overrides=tuple(extra), grid={str(k): v for k, v in grid.items()},
                  launcher=Launcher(**launcher), results_dir=results_dir)
    taken: set[str] = set()
    for point in sweep.points():
        taken |= {f"policy.{k}" for k in dataclasses.asdict(sweep.run_config(point).policy.knobs)}
    unused = [o for o in _split_knobs(sweep.overrides)[1] if f"policy.{_knob(o)}" not in taken]
    if unused:
        raise ConfigError(f"{path}: override {unused[0]!r} is a knob of none of the sweep's policies")
    return sweep


def _knob(override: str) -> str:
    return override.partition("=")[0].strip().removeprefix("policy.")


def _split_knobs(overrides: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(the overrides that are not policy knobs, those that are)."""
    knobs = [o for o in overrides if o.strip().startswith("policy.") and _knob(o) != "name"]
    return [o for o in overrides if o not in knobs], knobs


def _grid_entry_ok(values: Any) -> bool:
    if isinstance(values, list):
        return bool(values)
    return isinstance(values, dict) and bool(values) and all(
        isinstance(group, dict) and group for group in values.values())


# -- one run of the sweep (a local worker process or a Slurm array task) ---------------------------

def run_state(run: Path) -> str:
    """completed | missing | running | interrupted | failed (from the run's manifest)."""
    manifest_path = run / "manifest.json"
    if not manifest_path.is_file():
        return "missing"
    manifest = yaml.safe_load(manifest_path.read_text())  # JSON is YAML
    done = manifest.get("rounds_done") == manifest.get("rounds_planned")
    if manifest.get("status") == "completed" and done:
        return "completed"
    return str(manifest.get("status"))


@contextlib.contextmanager
def _claim(run: Path) -> Iterator[bool]:
    """An exclusive lock on the point (a file beside its folder): False if another process holds it."""
    run.parent.mkdir(parents=True, exist_ok=True)
    with open(run.parent / f".{run.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _experiment(cfg: ExperimentConfig) -> dict[str, Any]:
    """What a run computes, less where its folder lives: a sweep folder that was moved, or is reached
    by another path (a link, a cluster node's mount), still continues its runs."""
    return {k: v for k, v in cfg.to_dict().items() if k != "results_dir"}


def run_point(folder: Path, name: str, threads: int) -> str:
    """Run, continue or skip one point of the sweep in `folder`; returns the run's state after.

    Picklable by reference, so submitit can send it to a Slurm node.
    """
    import torch

    from cosim.experiment.runloop import resumable, resume_experiment, run_experiment

    sweep = load_sweep(Path(folder) / SWEEP_FILE)
    cfg = sweep.run_config(sweep.point(name))
    run = sweep.folder / "runs" / name
    torch.set_num_threads(threads)
    with _claim(run) as mine:
        if not mine:
            return "running elsewhere"
        if run_state(run) == "completed":
            return "completed"
        if run.is_dir():
            made_with, wanted = _experiment(load_config(run / "config.yaml")), _experiment(cfg)
            if made_with != wanted:
                changed = sorted(k for k in wanted if made_with.get(k) != wanted[k])
                raise ConfigError(f"{run} was made with another config ({', '.join(changed)} differ): "
                                  "give the sweep another name, or remove that folder")
            if resumable(run)[1] is not None:
                return resume_experiment(run, command=["cosim", "sweep", "point", name]).manifest["status"]
            shutil.rmtree(run)  # no round finished: start it again
        return run_experiment(cfg, command=["cosim", "sweep", "point", name], path=run).manifest["status"]


def _worker_main(argv: list[str]) -> int:
    """`python -m cosim.campaign.sweep FOLDER POINT THREADS`: one local worker (exit 0 when the run
    completed)."""
    from cosim.experiment.runloop import exit_interrupted
    from cosim.simulator.simulation import sigterm_as_interrupt

    folder, name, threads = argv
    try:
        with sigterm_as_interrupt():
            state = run_point(Path(folder), name, int(threads))
    except KeyboardInterrupt:
        exit_interrupted()
    print(f"{name}: {state}")
    return 0 if state in ("completed", "running elsewhere") else 1  # the other launch reports it


# -- launchers -----------------------------------------------------------------------------------

def _last_line(text: str) -> str:
    """The last non-empty line of a worker's output: its error, after any traceback."""
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "no output")


def _local_error(returncode: int, output: str) -> str | None:
    """Why a local worker did not finish its point: None when it did, or was interrupted (130, which
    its run folder records); the signal that killed it; else the last line of what it wrote."""
    if returncode in (0, 130):
        return None
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return _last_line(output)


def _slurm_error(job: Any) -> str | None:
    """Why a Slurm task did not finish its point: None when it returned; its error's last line when
    it raised (submitit frames the task's traceback with dashes); its Slurm state when it left no
    result (cancelled, out of time, its node lost)."""
    if not job.paths.result_pickle.exists():
        return f"no result, Slurm state {job.state}"
    error = job.exception()
    if error is None:
        return None
    parts = str(error).split("\n" + "-" * 22 + "\n")
    return _last_line(parts[1] if len(parts) == 3 else str(error))


def outcome(folder: Path, name: str, error: str | None, log: Path) -> str:
    """A finished point as its user should read it: its run's state, or, when the worker failed,
    the error and where the whole log is (a worker can fail before its run records anything, so
    the run folder may still show the state an earlier attempt left)."""
    state = run_state(folder / "runs" / name)
    if error is None or state == "completed":
        return state
    return f"failed: {error} (log: {log})"


def prepare(sweep: Sweep) -> list[Point]:
    """Write the sweep's folder and resolved file; the points still to do (not completed)."""
    for sub in ("runs", "logs"):
        (sweep.folder / sub).mkdir(parents=True, exist_ok=True)
    (sweep.folder / SWEEP_FILE).write_text(yaml.safe_dump(sweep.to_dict(), sort_keys=False))
    return [p for p in sweep.points() if run_state(sweep.folder / "runs" / p.name) != "completed"]


def run_local(sweep: Sweep, points: list[Point], on_done: Callable[[str, str], None]) -> None:
    """Each point in its own process, `launcher.workers` at once; Ctrl-C/SIGTERM stops them all
    (their finished rounds and checkpoints stay) and re-raises."""
    threads = sweep.launcher.threads
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    waiting, running = list(points), {}
    try:
        while waiting or running:
            while waiting and len(running) < sweep.launcher.workers:
                point = waiting.pop(0)
                with open(sweep.folder / "logs" / f"{point.name}.log", "ab") as log:
                    start = log.tell()  # earlier attempts' output stays above
                    running[point.name] = start, subprocess.Popen(
                        [sys.executable, "-m", "cosim.campaign.sweep", str(sweep.folder), point.name,
                         str(threads)],
                        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            for name, (start, proc) in list(running.items()):
                if proc.poll() is not None:
                    del running[name]
                    log = sweep.folder / "logs" / f"{name}.log"
                    with open(log, "rb") as output:
                        output.seek(start)
                        error = _local_error(proc.returncode, output.read().decode(errors="replace"))
                    on_done(name, outcome(sweep.folder, name, error, log))
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        for _, proc in running.values():
            proc.send_signal(signal.SIGTERM)
        for _, proc in running.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise


def submit_slurm(sweep: Sweep, points: list[Point]) -> list[tuple[str, Any]]:
    """One Slurm job array (submitit) over the points; returns (point name, submitit job) pairs."""
    import submitit

    launcher = sweep.launcher
    executor = submitit.AutoExecutor(folder=sweep.folder / "slurm" / "%j", cluster="slurm")
    threads = launcher.threads
    params: dict[str, Any] = dict(
        name=f"cosim-{sweep.name}", timeout_min=launcher.time_min, cpus_per_task=launcher.cpus_per_task,
        mem_gb=launcher.mem_gb, slurm_array_parallelism=launcher.array_parallelism,
        slurm_setup=[f"export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}"])
    if launcher.partition:
        params["slurm_partition"] = launcher.partition
    if launcher.sbatch:
        params["slurm_additional_parameters"] = {k.replace("-", "_"): v for k, v in launcher.sbatch.items()}
    executor.update_parameters(**params)
    names = [p.name for p in points]
    jobs = executor.map_array(run_point, [sweep.folder] * len(names), names, [threads] * len(names))
    return list(zip(names, jobs, strict=True))


def wait_slurm(sweep: Sweep, jobs: list[tuple[str, Any]], on_done: Callable[[str, str], None]) -> None:
    """Poll the array until every task ended; each point's state is read from its run folder, and a
    task that failed or never finished is named with why (`_slurm_error`)."""
    pending = list(jobs)
    while pending:
        for name, job in list(pending):
            if job.done():
                pending.remove((name, job))
                on_done(name, outcome(sweep.folder, name, _slurm_error(job), job.paths.stderr))
        time.sleep(1.0)


# -- results -------------------------------------------------------------------------------------

def collect(folder: Path) -> pd.DataFrame:
    """One row per point: grid values, status, rounds done and `cosim report`'s metrics; also
    written to `sweep.csv` in the folder."""
    from cosim.campaign.report import energy_range, load_run, summarise

    sweep = load_sweep(Path(folder) / SWEEP_FILE)
    runs = {p.name: load_run(sweep.folder / "runs" / p.name) for p in sweep.points()
            if (sweep.folder / "runs" / p.name / "rounds.parquet").is_file()}
    energy = energy_range(list(runs.values())) if runs else (float("nan"), float("nan"))
    rows = []
    for point in sweep.points():
        row: dict[str, Any] = {"point": point.name, **point.values,
                               "status": run_state(sweep.folder / "runs" / point.name)}
        if point.name in runs:
            metrics = summarise(runs[point.name], energy)
            row.update({k: v for k, v in metrics.items() if k not in ("status", "group", *point.values)})
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(sweep.folder / "sweep.csv", index=False)
    return table


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
