"""The five standard plots of a run, drawn from its two tables (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cosim.experiment.rundir import quality_metric  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_run(rounds: pd.DataFrame, devices: pd.DataFrame, folder: Path) -> list[Path]:
    """accuracy.png (perplexity.png for a causal-LM run), energy.png, queues.png, scheduled.png,
    delay_cdf.png in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    metric = quality_metric(rounds)
    evaluated = rounds.dropna(subset=[metric])
    ax.plot(evaluated["round"], evaluated[metric], marker="o")
    ax.set(xlabel="round", ylabel=f"test {metric}", title=f"{metric.capitalize()} vs round")
    ax.grid(alpha=0.3)
    paths.append(_save(fig, folder / f"{metric}.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    energy = devices.pivot(index="round", columns="device_id", values="realised_energy_j").cumsum()
    budget = devices.pivot(index="round", columns="device_id", values="energy_budget_j").cumsum()
    for k in energy.columns:
        ax.plot(energy.index, energy[k], lw=1, label=f"device {k}" if len(energy.columns) <= 10 else None)
    ax.plot(budget.index, budget.mean(axis=1), "k--", lw=2, label="budget (mean)")
    ax.set(xlabel="round", ylabel="cumulative energy [J]", title="Energy per device vs budget")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    paths.append(_save(fig, folder / "energy.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    queues = devices.pivot(index="round", columns="device_id", values="queue_j")
    ax.plot(queues.index, queues.to_numpy(), lw=1, alpha=0.7)
    ax.plot(queues.index, queues.mean(axis=1), "k", lw=2, label="mean")
    ax.set(xlabel="round", ylabel="virtual queue Q_k [J]", title="Energy queue backlog")
    ax.legend()
    ax.grid(alpha=0.3)
    paths.append(_save(fig, folder / "queues.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(rounds["round"], rounds["scheduled"], color="0.75", label="scheduled")
    ax.bar(rounds["round"], rounds["delivered"], color="tab:green", width=0.5, label="delivered by deadline")
    ax.set(xlabel="round", ylabel="devices", title="Devices per round")
    ax.legend()
    paths.append(_save(fig, folder / "scheduled.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    sched = devices[devices["scheduled"]]
    for column, label in (("predicted_delay_s", "predicted"), ("realised_delay_s", "realised (ns-3)")):
        values = np.sort(sched[column].dropna().to_numpy())
        if values.size:
            ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=label)
    ax.set(xlabel="round completion time [s]", ylabel="CDF", title="Delay: predicted vs realised")
    ax.legend()
    ax.grid(alpha=0.3)
    paths.append(_save(fig, folder / "delay_cdf.png"))
    return paths
