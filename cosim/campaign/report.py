"""`cosim report`: compare run folders across policies and seeds.

One table (a row per run, then a row per policy with the mean and the 95 % confidence half-width
over its seeds, Student t with n − 1 degrees of freedom, since a handful of seeds is the usual case)
and one figure (accuracy and cumulative energy per device vs round, and accuracy vs cumulative
energy per device, a mean line and a confidence band per group). Runs are grouped by `policy.name`
from their `config.yaml`, or by any config keys (`--by scenario.mobility,policy.name`).

Policies that spend different energy are compared at the same energy: every run's accuracy is
interpolated at the common energy, the least cumulative energy per device any run spent (so no run
is extrapolated past its last round), and averaged over the energy range every run's curve covers,
from the most energy any run had spent at its first evaluation up to the common energy (the area
under accuracy vs energy over that range, divided by its width): one number for "more accuracy for
the same energy" along the way, not only at the end, where the curves have flattened.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from matplotlib.ticker import MaxNLocator
from rich.table import Table
from scipy import stats

from cosim.experiment.config import ExperimentConfig
from cosim.experiment.plots import plt
from cosim.experiment.rundir import quality_metric
from optimizer import knobs_of, policy_class

RUN_FILES = ("config.yaml", "manifest.json", "rounds.parquet", "devices.parquet")
GROUP_BY = ("policy.name",)  # runs with equal values of these config keys are averaged together
PHASES = ("uplink_transfer_s", "downlink_transfer_s", "device_compute_s", "server_compute_s", "server_wait_s")
# What a paired comparison differences, seed by seed.
PAIRED = ("final_accuracy", "final_val_accuracy", "final_perplexity", "accuracy_over_energy",
          "energy_per_device_round_j", "late_or_lost_share", "time_to_target_s", "energy_to_target_j")
METRICS = ("rounds", "final_accuracy", "final_val_accuracy", "final_perplexity", "final_val_perplexity",
           "accuracy_at_common_energy",
           "accuracy_over_energy", "mean_scheduled", "delivered_ratio", "late_or_lost_share",
           "energy_per_device_round_j", "energy_per_delivered_update_j", "energy_budget_j",
           "max_energy_over_budget", "scheduled_snr_db", *PHASES, "time_to_target_s", "energy_to_target_j")


class NotARunFolder(ValueError):
    """A folder given to the report lacks a file every run folder has; the message names it."""


class CannotPair(ValueError):
    """`--against` cannot pair these runs: it names no group of them (the message lists those there
    are), or a group holds more than one run per seed."""


@dataclass(frozen=True)
class Run:
    """One run folder, read back: its configuration, manifest and both tables."""

    path: Path
    config: dict
    manifest: dict
    rounds: pd.DataFrame
    devices: pd.DataFrame

    @property
    def policy(self) -> str:
        return self.config["policy"]["name"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def label(self, by: tuple[str, ...]) -> str:
        """The group this run is averaged in, as legends and tables show it: the first key's value,
        then `name=value` for each further key ("lyapunov, energy_price=0.01"), leaving out a
        further `policy.*` knob the run's policy does not take ("random-k, k=6", not "random-k, k=6,
        energy_price=0.0"). A key the run's config.yaml lacks (written before the key existed) has
        its default value."""
        knobs = self._knob_defaults()
        values = []
        for key in by:
            section, _, knob = key.partition(".")
            is_knob = section == "policy" and knob != "name" and knobs is not None
            if values and is_knob and knob not in knobs:
                continue
            node: object = self.config
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    node = knobs.get(knob, dataclasses.MISSING) if is_knob else config_default(key)
                    if node is dataclasses.MISSING:
                        raise NotARunFolder(f"{self.path}: its config.yaml has no key {key!r} to group by")
                    break
                node = node[part]
            values.append(f"{_short_name(key)}={node}" if values else str(node))
        return ", ".join(values)

    def _knob_defaults(self) -> dict[str, object] | None:
        """The run's policy's knobs with their defaults (None when its class does not import here)."""
        try:
            fields = knobs_of(policy_class(self.policy))
        except ValueError:
            return None
        return {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in fields}


def _short_name(key: str) -> str:
    """The last part of a dotted key, or the part before a closing `name` (policy.name → policy)."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def config_default(key: str) -> object:
    """The value of the dotted config key when a config leaves it out (dataclasses.MISSING when
    there is no such key or it has no default)."""
    fields = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    value: object = dataclasses.MISSING
    for part in key.split("."):
        if part not in fields:
            return dataclasses.MISSING
        f = fields[part]
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        fields = {g.name: g for g in dataclasses.fields(value)} if dataclasses.is_dataclass(value) else {}
    return value


def _missing(folder: Path) -> list[str]:
    return [name for name in RUN_FILES if not (folder / name).is_file()]


def _expand(folder: Path) -> list[Path]:
    """The run folder itself, or the run folders directly inside it."""
    if not folder.is_dir():
        raise NotARunFolder(f"{folder} does not exist or is not a folder")
    missing = _missing(folder)
    if not missing:
        return [folder]
    children = sorted(p for p in folder.iterdir() if p.is_dir() and not _missing(p))
    if not children:
        raise NotARunFolder(f"{folder} is not a run folder: {', '.join(missing)} missing "
                            "(a run folder is what `cosim run` writes)")
    return children


def resolve_runs(patterns: list[str]) -> list[Path]:
    """Run folders from folders (a folder of runs stands for all of them) and glob patterns.

    A pattern keeps only the run folders it matches, so `results/*` skips earlier reports; a named
    folder that is not a run is an error.
    """
    found: list[Path] = []
    for pattern in patterns:
        if not glob.has_magic(pattern):
            found += _expand(Path(pattern).expanduser())
            continue
        matches = [Path(m) for m in sorted(glob.glob(str(Path(pattern).expanduser())))]
        runs = [m for m in matches if m.is_dir() and not _missing(m)]
        if not runs:
            raise NotARunFolder(f"{pattern} matches no run folder (one holding {', '.join(RUN_FILES)})")
        found += runs
    return list(dict.fromkeys(p.resolve() for p in found))


def load_run(folder: Path) -> Run:
    folder = Path(folder)
    missing = _missing(folder)
    if missing:
        raise NotARunFolder(f"{folder} is not a run folder: {', '.join(missing)} missing")
    return Run(folder, yaml.safe_load((folder / "config.yaml").read_text()),
               json.loads((folder / "manifest.json").read_text()),
               pd.read_parquet(folder / "rounds.parquet"), pd.read_parquet(folder / "devices.parquet"))


def cumulative_energy(run: Run) -> pd.Series:
    """Energy per device spent up to and including each round [J]: the mean over devices, summed."""
    return run.devices.groupby("round")["realised_energy_j"].mean().cumsum()


def common_energy(runs: list[Run]) -> float:
    """The least cumulative energy per device among the runs: every run's curve reaches it."""
    return min(float(cumulative_energy(r).iloc[-1]) for r in runs)


def evaluated(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative energy per device [J] and accuracy at each evaluated round."""
    accuracy = run.rounds.set_index("round")["accuracy"].dropna()
    return cumulative_energy(run).reindex(accuracy.index).to_numpy(), accuracy.to_numpy()


def energy_range(runs: list[Run]) -> tuple[float, float]:
    """The cumulative energies per device every run's accuracy curve covers: from the most any run
    had spent at its first evaluation to the common energy (a point when that is later)."""
    end = common_energy(runs)
    starts = [spent[0] for spent, _ in map(evaluated, runs) if spent.size]
    return min(max(starts, default=end), end), end


def accuracy_at_energy(run: Run, energy_j: float) -> float:
    """Accuracy interpolated linearly between evaluations at cumulative energy per device `energy_j`
    (the first or last evaluation outside their range), so runs that spend differently are compared
    at the same energy."""
    spent, accuracy = evaluated(run)
    return float(np.interp(energy_j, spent, accuracy)) if spent.size else np.nan


def accuracy_over_energy(run: Run, lo: float, hi: float) -> float:
    """The mean of the accuracy curve (linear between evaluations) over cumulative energy per device
    [lo, hi] [J]: the area under it divided by hi − lo (the accuracy at lo when the range is a point)."""
    spent, accuracy = evaluated(run)
    if not spent.size:
        return np.nan
    if hi <= lo:
        return float(np.interp(lo, spent, accuracy))
    grid = np.unique(np.concatenate([[lo, hi], spent[(spent > lo) & (spent < hi)]]))
    return float(np.trapezoid(np.interp(grid, spent, accuracy), grid) / (hi - lo))


def to_target(run: Run, target: float | None) -> tuple[float, float]:
    """Simulated time [s] and cumulative energy per device [J] at the end of the first evaluated
    round whose test accuracy reaches `target` (NaN when none does, or without a target)."""
    rounds = run.rounds.set_index("round")
    reached = rounds.index[rounds["accuracy"] >= target] if target is not None else []
    if not len(reached):
        return np.nan, np.nan
    t = reached[0]
    end = rounds.loc[t, "sim_time_s"] + rounds.loc[t, "round_duration_s"] \
        if "round_duration_s" in rounds else rounds.loc[t, "sim_time_s"]
    return float(end), float(cumulative_energy(run).loc[t])


def _scheduled_mean(devices: pd.DataFrame, column: str) -> float:
    """The mean of a devices.parquet column over scheduled device-rounds (NaN when the run's table
    has no such column: written before it existed)."""
    if column not in devices or "scheduled" not in devices or not devices["scheduled"].any():
        return np.nan
    return float(devices.loc[devices["scheduled"].astype(bool), column].mean())


def _last(rounds: pd.DataFrame, column: str) -> float:
    """The column's value at the last round that has one (NaN when none has: a causal-LM run has no
    accuracy, a classification run no perplexity)."""
    values = rounds[column].dropna() if column in rounds else pd.Series(dtype=float)
    return float(values.iloc[-1]) if len(values) else np.nan


def summarise(run: Run, energy: tuple[float, float], by: tuple[str, ...] = GROUP_BY,
              target: float | None = None) -> dict:
    """The run's row: its group (values of the config keys `by`), outcome (also at the common
    cumulative energy per device, the end of `energy`, and averaged over the range `energy`),
    participation, delivery and energy against the per-round budget Ē_k, what a device spends per
    update the server received, the channel of the scheduled devices, where a scheduled device's
    round went (mean seconds per phase), and the simulated time and energy to reach `target`."""
    rounds, devices = run.rounds, run.devices
    per_device = devices.groupby("device_id")[["realised_energy_j", "energy_budget_j"]].mean()
    over_budget = per_device["realised_energy_j"] / per_device["energy_budget_j"]
    scheduled, delivered = int(rounds["scheduled"].sum()), int(rounds["delivered"].sum())
    time_to_target, energy_to_target = to_target(run, target)
    tested = rounds.loc[rounds[quality_metric(rounds)].notna(), "round"]  # a causal-LM run's: perplexity
    return {
        "run": run.path.name, "group": run.label(by), "policy": run.policy, "seed": run.seed,
        "status": run.manifest.get("status"),
        "rounds": len(rounds),
        **{f"final_{metric}": _last(rounds, metric) for metric in ("accuracy", "val_accuracy", "perplexity",
                                                                    "val_perplexity")},
        "accuracy_at_common_energy": accuracy_at_energy(run, energy[1]), "common_energy_j": energy[1],
        "accuracy_over_energy": accuracy_over_energy(run, *energy), "energy_from_j": energy[0],
        "first_evaluation_energy_j": float(cumulative_energy(run)[tested.min()]) if len(tested) else np.nan,
        "mean_scheduled": float(rounds["scheduled"].mean()),
        "delivered_ratio": delivered / max(scheduled, 1),
        "late_or_lost_share": (scheduled - delivered) / scheduled if scheduled else np.nan,
        "energy_per_device_round_j": float(devices["realised_energy_j"].mean()),
        "energy_per_delivered_update_j": float(devices["realised_energy_j"].sum()) / delivered
        if delivered else np.nan,
        "energy_budget_j": float(devices["energy_budget_j"].mean()),
        "max_energy_over_budget": float(over_budget.max()),
        "scheduled_snr_db": _scheduled_mean(devices, "snr_db"),
        **{phase: _scheduled_mean(devices, phase) for phase in PHASES},
        "target_accuracy": np.nan if target is None else target,
        "time_to_target_s": time_to_target, "energy_to_target_j": energy_to_target,
        "solver": ", ".join(f"{s['solver']} ({s['license']})" for s in run.manifest.get("solvers", [])),
    }


def mean_ci(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95 % confidence half-width t(0.975, n−1)·s/√n along `axis`, ignoring NaN; NaN when n < 2."""
    values = np.asarray(values, float)
    n = np.sum(~np.isnan(values), axis=axis)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # n < 2: the NaN below says it
        mean = np.nanmean(values, axis=axis)
        sd = np.nanstd(values, axis=axis, ddof=1)
        half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
    return mean, np.where(n >= 2, half, np.nan)


def report_table(runs: list[Run], by: tuple[str, ...] = GROUP_BY,
                 target: float | None = None) -> pd.DataFrame:
    """Rows per run (sorted by group and seed), then per group of runs with the same values of the
    config keys `by`: metric means and `<metric>_ci95` columns (over the runs that have a value: a
    run that never reached the target has none, and the group's `reached_target` counts those that did)."""
    energy = energy_range(runs)
    per_run = pd.DataFrame([summarise(r, energy, by, target) for r in runs]).sort_values(["group", "seed"],
                                                                                  kind="stable")
    per_run.insert(0, "row", "run")
    aggregated = []
    for label, group in per_run.groupby("group", sort=True):
        row: dict = {"row": "mean", "run": f"{len(group)} run(s)", "group": label,
                     "policy": ",".join(sorted(set(group["policy"]))),
                     "seed": ",".join(str(s) for s in group["seed"]), "common_energy_j": energy[1],
                     "energy_from_j": energy[0],
                     "solver": "; ".join(sorted(set(group["solver"]))),
                     "target_accuracy": np.nan if target is None else target,
                     "reached_target": int(group["time_to_target_s"].notna().sum())}
        for metric in METRICS:
            mean, half = mean_ci(group[metric].to_numpy())
            row[metric], row[f"{metric}_ci95"] = float(mean), float(half)
        aggregated.append(row)
    return pd.concat([per_run, pd.DataFrame(aggregated)], ignore_index=True)


def read_past_common_energy(table: pd.DataFrame) -> pd.DataFrame:
    """The runs that had spent more than the common energy by their first evaluation: their accuracy
    at the common energy (and over the range) is that first evaluation's, read after more energy
    than the other runs', which flatters them."""
    runs = table[table["row"] == "run"]
    return runs[runs["first_evaluation_energy_j"] > runs["common_energy_j"]]


def paired_table(table: pd.DataFrame, against: str) -> pd.DataFrame:
    """Every other group's difference to the group `against`, seed by seed, then its mean and 95 %
    half-width over the seeds both groups ran: one row per group and metric (`PAIRED`), with how
    many seeds came out higher and lower. A seed draws the network and the data, so runs of one seed
    share them; the difference of paired runs leaves out the spread that the draw puts into each
    group's own mean, and a difference smaller than the groups' half-widths can still be clear."""
    runs = table[table["row"] == "run"]
    groups = list(dict.fromkeys(runs["group"]))
    if against not in groups:
        raise CannotPair(f"--against {against!r} is not a group of these runs; they are: "
                           + "; ".join(repr(g) for g in groups))
    reference = runs[runs["group"] == against].set_index("seed")
    rows = []
    for label in groups:
        if label == against:
            continue
        other = runs[runs["group"] == label].set_index("seed")
        if other.index.has_duplicates or reference.index.has_duplicates:
            raise CannotPair(f"groups {label!r} and {against!r} must hold one run per seed to be paired; "
                               "group by more keys (--by)")
        seeds = other.index.intersection(reference.index)
        for metric in (m for m in PAIRED if runs[m].notna().any()):  # not the other task's metrics
            difference = (other.loc[seeds, metric] - reference.loc[seeds, metric]).to_numpy(float)
            mean, half = mean_ci(difference)
            rows.append({"group": label, "against": against, "metric": metric, "difference": float(mean),
                         "difference_ci95": float(half), "seeds": int(np.sum(~np.isnan(difference))),
                         "higher": int(np.sum(difference > 0)), "lower": int(np.sum(difference < 0))})
    return pd.DataFrame(rows, columns=["group", "against", "metric", "difference", "difference_ci95",
                                       "seeds", "higher", "lower"])


def _curves(runs: list[Run], by: tuple[str, ...] = GROUP_BY,
            metric: str = "accuracy") -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per policy: the test `metric` (accuracy, or a causal-LM run's perplexity) and cumulative energy
    per device, indexed by round, one column per run."""
    curves: dict[str, tuple[list[pd.Series], list[pd.Series]]] = {}
    for run in runs:
        quality, energy = curves.setdefault(run.label(by), ([], []))
        quality.append(run.rounds.set_index("round")[metric].dropna())
        energy.append(cumulative_energy(run))
    return {p: (pd.concat(q, axis=1), pd.concat(e, axis=1)) for p, (q, e) in sorted(curves.items())}


def accuracy_by_energy(accuracy: pd.DataFrame, energy: pd.DataFrame) -> pd.DataFrame:
    """A policy's accuracy (one column per run) indexed by its mean cumulative energy per device at
    each evaluated round, so the mean line and band over seeds sit at the energy the seeds spent."""
    spent = energy.reindex(accuracy.index).mean(axis=1)
    return accuracy.set_axis(pd.Index(spent.to_numpy(), name="energy_j"), axis=0)


def _band(ax, frame: pd.DataFrame, label: str, color, lo: float, hi: float = np.inf) -> None:
    """Mean line and 95 % band; the band is cut to the quantity's range (few seeds make it wide)."""
    mean, half = mean_ci(frame.to_numpy(), axis=1)
    ax.plot(frame.index, mean, marker="o", ms=3, color=color, label=f"{label} (n={frame.shape[1]})")
    ax.fill_between(frame.index, np.clip(mean - half, lo, hi), np.clip(mean + half, lo, hi), color=color,
                    alpha=0.2, lw=0)


def mark_budget(ax, budget_j: float, reach_j: float) -> None:
    """The budget at the last round on the accuracy-for-energy panel: a line when it lies within
    1.5 × the energy the curves reach; further out the axis ends at the curves (a policy far below
    its budget would otherwise squeeze every curve into a corner) and a note names the budget."""
    if budget_j <= 1.5 * reach_j:
        ax.axvline(budget_j, color="k", ls="--", lw=1.5, label="budget at the last round")
        return
    ax.set_xlim(0.0, 1.05 * reach_j)
    ax.annotate(f"budget at the last round: {budget_j:.3g} J →", xy=(0.98, 0.04), xycoords="axes fraction",
                ha="right", va="bottom", fontsize=9)


# the panels' quality metric: its name on the axes and the range its bands are cut to
QUALITY_AXES = {"accuracy": ("Accuracy", (0.0, 1.0)), "perplexity": ("Perplexity", (1.0, np.inf))}


def report_figure(runs: list[Run], path: Path, by: tuple[str, ...] = GROUP_BY) -> Path:
    """Three panels: accuracy vs round, cumulative energy per device vs round (with the budget), and
    accuracy vs cumulative energy per device (with the budget at the last round, see mark_budget,
    and the common energy of the table), the panel that compares policies at the same energy.
    Causal-LM runs, which have no accuracy, are drawn by their test perplexity instead."""
    metric = quality_metric(pd.concat([run.rounds for run in runs]))
    name, (lo_q, hi_q) = QUALITY_AXES[metric]
    fig, (acc_ax, energy_ax, trade_ax) = plt.subplots(1, 3, figsize=(16, 4.6))
    curves = _curves(runs, by, metric)
    for i, (policy, (quality, energy)) in enumerate(curves.items()):
        color = f"C{i}"
        _band(acc_ax, quality, policy, color, lo_q, hi_q)
        _band(energy_ax, energy, policy, color, 0.0)
        _band(trade_ax, accuracy_by_energy(quality, energy), policy, color, lo_q, hi_q)
    budget = pd.concat([r.devices.groupby("round")["energy_budget_j"].mean() for r in runs], axis=1)
    budget = budget.mean(axis=1).cumsum()
    energy_ax.plot(budget.index, budget, "k--", lw=1.5, label="budget (cumulative)")
    reach = max(float(energy.mean(axis=1).max()) for _, energy in curves.values())
    mark_budget(trade_ax, float(budget.iloc[-1]), reach)
    lo, hi = energy_range(runs)
    trade_ax.axvspan(lo, hi, color="0.5", alpha=0.1, lw=0, label="energy range (table)")
    trade_ax.axvline(hi, color="0.5", ls=":", lw=1.5, label="common energy (table)")
    acc_ax.set(xlabel="round", ylabel=f"test {metric}", title=f"{name} (mean, 95 % CI over seeds)")
    energy_ax.set(xlabel="round", ylabel="cumulative energy per device [J]",
                  title="Energy per device (mean, 95 % CI over seeds)")
    trade_ax.set(xlabel="cumulative energy per device [J]", ylabel=f"test {metric}",
                 title=f"{name} for the energy spent (mean, 95 % CI)")
    for ax in (acc_ax, energy_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    entries: dict[str, object] = {}  # one legend under the panels: groups first, then the reference lines
    for ax in (acc_ax, energy_ax, trade_ax):
        ax.grid(alpha=0.3)
        entries.update((label, handle) for handle, label in zip(*ax.get_legend_handles_labels(), strict=True))
    columns = min(len(entries), 4)
    fig.legend(entries.values(), entries.keys(), loc="lower center", ncol=columns, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.04 * -(-len(entries) // columns) + 0.02, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


COLUMNS = {"group": "group", "seed": "seed", "rounds": "rounds", "final_accuracy": "final acc",
           "accuracy_at_common_energy": "acc @ common E", "accuracy_over_energy": "acc over E range",
           "mean_scheduled": "sched/round", "delivered_ratio": "delivered",
           "energy_per_device_round_j": "E/dev-round [J]", "energy_budget_j": "budget [J]",
           "max_energy_over_budget": "max E/budget", "solver": "solver"}


def _cell(row: pd.Series, column: str) -> str:
    value = row[column]
    if column in METRICS:
        text = f"{value:.3g}" if column == "rounds" else f"{value:.3f}"
        half = row[f"{column}_ci95"]
        return text if pd.isna(half) else f"{text} ± {half:.3f}"
    if column == "seed" and row["row"] == "mean":
        return f"mean of {value}"
    return str(value)


def rich_table(table: pd.DataFrame, title: str) -> Table:
    """The report for the terminal: metrics with 3 decimals, `mean ± half-width` on policy rows; the
    title gives the common energy the `acc @ common E` column is read at and the range of
    `acc over E range`."""
    lo, hi = table["energy_from_j"].iloc[0], table["common_energy_j"].iloc[0]
    out = Table(*COLUMNS.values(), title=f"{title}; common energy {hi:.3f} J per device, "
                                         f"energy range {lo:.3f}–{hi:.3f} J")
    last_run = int((table["row"] == "run").sum()) - 1
    for i, row in table.iterrows():
        out.add_row(*(_cell(row, c) for c in COLUMNS), style="bold" if row["row"] == "mean" else None,
                    end_section=i == last_run)
    return out


def default_out_dir() -> Path:
    return ExperimentConfig.results_dir / f"report-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def paired_rich_table(paired: pd.DataFrame) -> Table:
    """Paired differences for the terminal: `mean ± half-width (higher/lower seeds)` per group and metric."""
    metrics = list(dict.fromkeys(paired["metric"]))
    out = Table("group", *metrics, title=f"difference to {paired['against'].iloc[0]}, paired by seed")
    for label, rows in paired.groupby("group", sort=False):
        cells = rows.set_index("metric")
        out.add_row(label, *(f"{cells.loc[m, 'difference']:+.3f} ± {cells.loc[m, 'difference_ci95']:.3f} "
                             f"({cells.loc[m, 'higher']}/{cells.loc[m, 'lower']})" for m in metrics))
    return out


def write_report(patterns: list[str], out: Path | None = None, by: tuple[str, ...] = GROUP_BY,
                 target: float | None = None, against: str | None = None
                 ) -> tuple[pd.DataFrame, Path, Path, pd.DataFrame | None]:
    """Read the runs, write report.csv and report.png into `out` (runs grouped by the config keys
    `by`, time and energy to `target` test accuracy) and, `against` a group, paired.csv; returns the
    table, both paths and the paired differences (None without `against`)."""
    runs = [load_run(p) for p in resolve_runs(patterns)]
    table = report_table(runs, by, target)
    paired = paired_table(table, against) if against is not None else None
    out = Path(out) if out is not None else default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "report.csv"
    table.to_csv(csv_path, index=False)
    if paired is not None:
        paired.to_csv(out / "paired.csv", index=False)
    return table, csv_path, report_figure(runs, out / "report.png", by), paired
