"""How far the paper's round-time formula is from packet-level rounds (docs/experiments/protocol-gap.md).

Reads the run folders of cosim/sweeps/protocol-gap.yaml and writes one table and one figure, per
radio and number of local steps τ: the round time the formula predicts (planned with the
calibration off, without queueing for the server), the round time ns-3 realised under `lumped`
and under `per-step`, and their ratios; each a mean over a run's rounds, then the mean, minimum
and maximum over seeds.

    python -m cosim.campaign.protocol_gap results/sweep-protocol-gap/runs --out results/figures/protocol-gap
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from cosim.campaign.report import Run, load_run, resolve_runs  # noqa: E402

QUANTITIES = ("formula_s", "lumped_s", "per_step_s", "lumped_over_formula", "per_step_over_formula",
              "per_step_over_lumped")


def run_times(run: Run) -> dict:
    """One run's round times, means over its rounds: predicted by the formula (the longest predicted
    delay of the round's devices, less the server queueing the plan allows for, which the paper's
    formula has not), realised by ns-3 (the round's duration), and their ratio taken round by round;
    with the run's radio, τ, protocol and seed."""
    d = run.devices[run.devices.scheduled]
    formula = (d.predicted_delay_s - d.planned_server_wait_s).groupby(d["round"]).max()
    realised = run.rounds.set_index("round")["round_duration_s"].loc[formula.index]
    cfg = run.config
    learn = cfg["learning"]
    shape = f"{learn['batch_size']} × {learn['model']['max_length']} tokens"
    return {"setting": f"{cfg['scenario']['radio']}, {shape}",
            "local_steps": int(learn["local_steps"]),
            "protocol": cfg.get("protocol", "lumped"), "seed": run.seed, "formula_s": float(formula.mean()),
            "realised_s": float(realised.mean()), "gap": float((realised / formula).mean())}


def gap_table(runs: list[Run]) -> pd.DataFrame:
    """One row per radio, τ and quantity: mean, min and max over seeds, and how many seeds.

    The two protocols' runs see the same channel in their first round only (a round's length moves
    the devices and the fading for the next), so each run is compared with its own formula, and
    per-step with lumped through those ratios, seed by seed."""
    per_run = pd.DataFrame([run_times(r) for r in runs])
    wide = per_run.pivot_table(index=["setting", "local_steps", "seed"], columns="protocol",
                               values=["formula_s", "realised_s", "gap"])
    seeds = pd.DataFrame({
        "formula_s": wide[("formula_s", "lumped")],
        "lumped_s": wide[("realised_s", "lumped")],
        "per_step_s": wide[("realised_s", "per-step")],
        "lumped_over_formula": wide[("gap", "lumped")],
        "per_step_over_formula": wide[("gap", "per-step")],
    })
    seeds["per_step_over_lumped"] = seeds.per_step_over_formula / seeds.lumped_over_formula
    long = seeds.reset_index().melt(id_vars=["setting", "local_steps", "seed"], value_vars=list(QUANTITIES),
                                    var_name="quantity")
    table = long.groupby(["setting", "local_steps", "quantity"], sort=False)["value"].agg(
        ["mean", "min", "max", "count"]).reset_index()
    return table.rename(columns={"count": "seeds"})


def gap_figure(table: pd.DataFrame, path: Path) -> Path:
    """Per setting (radio, sample shape), for each τ: top, the round time by the formula, and
    realised lumped and per-step; bottom, the realised over the formula's. Whiskers: seeds' range."""
    settings = list(dict.fromkeys(table.setting))
    fig, axes = plt.subplots(2, len(settings), figsize=(5 * len(settings), 7), squeeze=False)
    lumped, per_step = "ns-3, lumped", "ns-3, per-step"
    rows = ((("formula_s", "paper's formula"), ("lumped_s", lumped), ("per_step_s", per_step)),
            (("lumped_over_formula", lumped), ("per_step_over_formula", per_step)))
    for col, setting in enumerate(settings):
        sub = table[table.setting == setting]
        taus = sorted(sub.local_steps.unique())
        for row, bars in enumerate(rows):
            ax = axes[row][col]
            width = 0.8 / len(bars)
            for i, (quantity, label) in enumerate(bars):
                values = sub[sub.quantity == quantity].set_index("local_steps").loc[taus]
                x = [t + (i - (len(bars) - 1) / 2) * width for t in range(len(taus))]
                color = f"C{i + 3 - len(bars)}"  # the same colour for a protocol in both rows
                ax.bar(x, values["mean"], width=width, label=label, color=color,
                       yerr=[values["mean"] - values["min"], values["max"] - values["mean"]], capsize=3)
            ax.set_xticks(range(len(taus)), [f"τ = {t}" for t in taus])
            ax.legend(fontsize=8)
            if row == 0:
                ax.set_title(setting)
                ax.set_ylabel("round time [s]")
            else:
                ax.axhline(1.0, color="C0", lw=1, ls="--")
                ax.set_ylabel("realised / formula")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cosim.campaign.protocol_gap",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders, or folders holding them (a sweep's runs/)")
    ap.add_argument("--out", type=Path, default=Path("results/figures/protocol-gap"),
                    help="path without suffix: writes OUT.csv and OUT.png")
    args = ap.parse_args(argv)
    runs = [load_run(p) for p in resolve_runs(args.runs)]
    table = gap_table(runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False, float_format="%.4g")
    gap_figure(table, args.out.with_suffix(".png"))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"wrote {args.out.with_suffix('.csv')} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
