"""A real split federated run: all-MiniLM-L6-v2 on BBC News, 10 devices, Dirichlet(0.5), a few rounds."""

from __future__ import annotations

import numpy as np
import torch

from learning.config import DataSettings, TrainerConfig
from learning.data import load_dataset
from learning.trainer import SplitFedTrainer, run_rounds

torch.set_num_threads(1)


def test_split_federated_lora_learns_bbc_news():
    config = TrainerConfig(data=DataSettings(devices=10, partition="dirichlet", dirichlet_alpha=0.5),
                           local_steps=2, batch_size=8, eval_every=3)
    trainer = SplitFedTrainer(config)
    assert trainer.sample_counts.sum() == len(trainer.train_data)
    assert trainer.label_counts.sum(axis=1).tolist() == trainer.sample_counts.tolist()
    payloads = []
    history = run_rounds(trainer, rounds=3, on_round=lambda r, updates, metrics: payloads.extend(
        (u.payload, trainer.payload_bytes(k)) for k, u in updates.items()))
    assert all(measured == predicted for measured, predicted in payloads)
    final = history[-1]
    classes = np.bincount(load_dataset("bbc").labels)  # 2,127 articles once each, in 5 classes
    assert final["round"] == 3 and final["samples"] == sum(round(n * 0.2) for n in classes) == 426
    assert final["val_samples"] == sum(round(n * 0.1) for n in classes)
    assert final["accuracy"] >= 0.6, final
    assert final["macro_f1"] >= 0.5, final
