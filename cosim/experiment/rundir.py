"""The run folder: `results/<timestamp>-<preset>-<policy>-s<seed>/`.

It holds the resolved `config.yaml`, `manifest.json` (versions, seeds, host, times, outcome, resumptions),
`rounds.parquet` and `devices.parquet` (rewritten after every round through a temporary file and a
rename, so an interrupted run keeps every finished round readable), `checkpoint.pt` (what `cosim run
--resume` continues from), `ns3.log`, `run.log`, FlowMonitor XML when asked, and `plots/`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

from cosim.experiment.checkpoint import CHECKPOINT_NAME
from cosim.experiment.config import ExperimentConfig
from cosim.simulator.simulation import REPO_ROOT

PACKAGES = ("ns3", "torch", "transformers", "peft", "gurobipy", "highspy", "numba", "numpy",
            "splitlora-cosim")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    """Installed versions (the ns-3 wheel's metadata names the ns-3 release); None when missing."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def quality_metric(rounds: pd.DataFrame) -> str:
    """The test metric a run's quality is read by: `accuracy` (classification, higher is better) or,
    for a causal-LM run, which has none, `perplexity` (lower is better). A run not yet evaluated
    has neither and reads as classification."""
    if "perplexity" in rounds and rounds["perplexity"].notna().any() and rounds["accuracy"].isna().all():
        return "perplexity"
    return "accuracy"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


class RunDir:
    """One run's folder; `record` appends a round and rewrites the tables atomically.

    `RunDir(cfg)` makes a new folder; `RunDir.reopen` continues one whose first rounds are done.
    """

    def __init__(self, cfg: ExperimentConfig, command: list[str] | None = None,
                 path: Path | None = None) -> None:
        """A new folder: `path` when given (it must not exist; a sweep names its runs), otherwise
        `<results_dir>/<time>-<preset>-<policy>-s<seed>`."""
        if path is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            base = Path(cfg.results_dir) / f"{stamp}-{cfg.preset}-{cfg.policy.name}-s{cfg.seed}"
            path = base
            for i in range(2, 1000):  # two runs started in the same second
                if not path.exists():
                    break
                path = base.with_name(f"{base.name}-{i}")
        self.path = Path(path)
        (self.path / "plots").mkdir(parents=True)
        self.csv = cfg.csv
        self.rounds: list[dict] = []
        self.plots: list[Path] = []
        self.devices: list[pd.DataFrame] = []
        (self.path / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        self.manifest = {
            "command": command if command is not None else sys.argv,
            "versions": package_versions(), "git_commit": git_commit(),
            "seeds": {"seed": cfg.seed, "ns3_rng_seed": cfg.scenario.rng_seed,
                      "ns3_rng_run": cfg.scenario.rng_run, "learning_seed": cfg.learning.seed,
                      "data_seed": cfg.learning.data.seed},
            "host": socket.gethostname(), "pid": os.getpid(), "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(), "start": _now(), "end": None, "status": "running",
            "rounds_planned": cfg.rounds, "rounds_done": 0, "solvers": [], "resumed": [],
        }
        self._write_manifest()

    @classmethod
    def reopen(cls, path: Path, cfg: ExperimentConfig, rounds_done: int,
               command: list[str] | None = None) -> RunDir:
        """Continue the run in `path` after its first `rounds_done` rounds.

        Rows of later rounds (a round that finished after the last checkpoint) are dropped, since
        that round runs again. The manifest lists each resumption with its time, round and command.
        """
        run = cls.__new__(cls)
        run.path, run.csv, run.plots = Path(path), cfg.csv, []
        run.manifest = json.loads((run.path / "manifest.json").read_text())
        run.rounds, run.devices = [], []
        if rounds_done:
            rounds = pd.read_parquet(run.path / "rounds.parquet")
            devices = pd.read_parquet(run.path / "devices.parquet")
            run.rounds = rounds[rounds["round"] < rounds_done].to_dict("records")
            kept = devices[devices["round"] < rounds_done]
            run.devices = [frame.reset_index(drop=True) for _, frame in kept.groupby("round", sort=True)]
            run._write_tables()
        run.manifest.setdefault("resumed", []).append({
            "time": _now(), "from_round": rounds_done, "host": socket.gethostname(), "pid": os.getpid(),
            "command": command if command is not None else sys.argv, "git_commit": git_commit()})
        run.manifest.update(status="running", end=None, error=None, rounds_done=rounds_done)
        run._write_manifest()
        run.log(f"resumed after {rounds_done} finished round(s)")
        return run

    @property
    def ns3_log(self) -> Path:
        return self.path / "ns3.log"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def flowmon_path(self) -> Path:
        return self.path / "flowmon.xml"

    @property
    def rounds_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rounds)

    @property
    def devices_frame(self) -> pd.DataFrame:
        return pd.concat(self.devices, ignore_index=True) if self.devices else pd.DataFrame()

    def record(self, round_row: dict, device_columns: dict) -> None:
        """Add one finished round and put both tables on disk before the next round starts."""
        self.rounds.append(round_row)
        self.devices.append(pd.DataFrame(device_columns))
        self._write_tables()
        solver = {"solver": round_row["solver"], "license": round_row["license"]}
        if solver not in self.manifest["solvers"]:
            self.manifest["solvers"].append(solver)
        self.manifest["rounds_done"] = len(self.rounds)
        self._write_manifest()
        self.log("round " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in round_row.items()))

    def update_manifest(self, **entries) -> None:
        self.manifest.update(entries)
        self._write_manifest()

    def _write_tables(self) -> None:
        for name, frame in (("rounds", self.rounds_frame), ("devices", self.devices_frame)):
            _atomic_write(self.path / f"{name}.parquet", lambda p, f=frame: f.to_parquet(p, index=False))
            if self.csv:
                _atomic_write(self.path / f"{name}.csv", lambda p, f=frame: f.to_csv(p, index=False))

    def log(self, message: str) -> None:
        """One timestamped line in run.log."""
        with open(self.path / "run.log", "a") as f:
            f.write(f"{_now()} {message}\n")

    def finish(self, status: str, error: str | None = None) -> None:
        # The rounds table on disk is what finished: a signal between writing it and the manifest
        # must not leave the manifest a round behind.
        self.manifest.update(end=_now(), status=status, error=error, rounds_done=self._rounds_on_disk())
        self._write_manifest()
        self.log(f"finished: {status}" + (f": {error}" if error else ""))

    def _rounds_on_disk(self) -> int:
        table = self.path / "rounds.parquet"
        return pq.read_metadata(table).num_rows if table.is_file() else 0

    def _write_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=2, default=str)
        _atomic_write(self.path / "manifest.json", lambda p: p.write_text(text))
