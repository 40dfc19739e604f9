"""Which task can tell scheduling policies apart: random-k against centralised fine-tuning, network-free.

    python -m cosim.campaign.task_choice --dataset bbc --alpha 0.5 --seeds 10 --out results/task-choice

For each seed (which draws the data's split and partition, as `data_seed` does in a run), k devices
drawn uniformly every round train τ local steps and are all aggregated (`random-k`: the learning side
of the policy with every update delivered); with `--methods` also every device every round (`all`:
all-equal with every update delivered), and a centralised LoRA on the pooled data for as many steps
as every device would take (`centralised`). A task
lets scheduling matter when random-k stays well below the centralised accuracy after the preset's
rounds; it measures policies when one method's spread over seeds is small. Writes one row per seed
and method (test and validation accuracy) to `<out>/<label>.csv` and prints the mean and 95 %
half-width of each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cosim.campaign.report import mean_ci
from learning.config import DataSettings, TrainerConfig
from learning.trainer import CentralisedTrainer, SplitFedTrainer


def random_k(config: TrainerConfig, rounds: int, k: int) -> dict[str, float]:
    trainer = SplitFedTrainer(config)
    rng = np.random.default_rng([config.seed, 7])
    for _ in range(rounds):
        chosen = rng.choice(trainer.devices, size=k, replace=False)
        updates = trainer.local_train(chosen.tolist())
        trainer.aggregate(updates, set(updates))
    return trainer.evaluate()


def every_device(config: TrainerConfig, rounds: int) -> dict[str, float]:
    return random_k(config, rounds, config.data.devices)


def centralised(config: TrainerConfig, rounds: int) -> dict[str, float]:
    trainer = CentralisedTrainer(config)
    trainer.train(steps=rounds * config.data.devices * config.local_steps)
    return trainer.evaluate()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m cosim.campaign.task_choice",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="bbc", help="bbc, tweets or a CSV/JSONL file")
    ap.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration of the partition")
    ap.add_argument("--max-samples", type=int, default=None, help="subsample the corpus (tweets: 38k)")
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--k", type=int, default=3, help="devices per round for random-k")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--methods", default="random-k,centralised",
                    help="comma-separated: random-k, all (every device every round), centralised")
    ap.add_argument("--seeds", type=int, default=10, help="data seeds 1..N for random-k and all")
    ap.add_argument("--central-seeds", type=int, default=3, help="data seeds 1..N for the centralised one")
    ap.add_argument("--server-lr", type=float, default=None,
                    help="the server's peak learning rate (default: learning.server_lr's)")
    ap.add_argument("--out", type=Path, default=Path("results/task-choice"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    methods = {"random-k": (lambda config: random_k(config, args.rounds, args.k), args.seeds),
               "all": (lambda config: every_device(config, args.rounds), args.seeds),
               "centralised": (lambda config: centralised(config, args.rounds), args.central_seeds)}
    chosen = args.methods.split(",")
    unknown = sorted(set(chosen) - set(methods))
    if unknown:
        ap.error(f"unknown methods {unknown}; choose from {sorted(methods)}")
    size = f"-n{args.max_samples}" if args.max_samples else ""
    lr = f"-slr{args.server_lr:g}" if args.server_lr else ""
    label = f"{Path(str(args.dataset)).stem}{size}-alpha{args.alpha:g}-k{args.k}-r{args.rounds}{lr}"
    server = {"server_lr": args.server_lr} if args.server_lr else {}
    rows = []
    for method in chosen:
        train, seeds = methods[method]
        for seed in range(1, seeds + 1):
            data = DataSettings(dataset=args.dataset, devices=args.devices, partition="dirichlet",
                                dirichlet_alpha=args.alpha, max_samples=args.max_samples, seed=seed)
            config = TrainerConfig(data=data, seed=seed, rounds_hint=args.rounds, **server)
            metrics = train(config)
            rows.append({"method": method, "seed": seed, "test_accuracy": metrics["accuracy"],
                         "val_accuracy": metrics.get("val_accuracy", np.nan),
                         "test_samples": metrics["samples"]})
            print(f"{label} {method} seed {seed}: test {metrics['accuracy']:.4f} "
                  f"validation {metrics.get('val_accuracy', np.nan):.4f}", flush=True)
            table = pd.DataFrame(rows)  # written after every run, so a long study keeps what it has
            args.out.mkdir(parents=True, exist_ok=True)
            table.to_csv(args.out / f"{label}.csv", index=False)
    for method, group in table.groupby("method", sort=False):
        mean, half = mean_ci(group["test_accuracy"].to_numpy())
        print(f"{label} {method}: test accuracy {mean:.4f} ± {half:.4f} (95 %, {len(group)} seeds, "
              f"{int(group['test_samples'].iloc[0])} test samples)")


if __name__ == "__main__":
    main()
