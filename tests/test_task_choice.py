"""The task-choice study's two methods on a tiny encoder: random-k trains k devices a round, the
centralised reference as many steps as every device would take."""

from __future__ import annotations

import pytest
from test_learning_federated import _config
from test_learning_support import tiny_model_dir, topic_csv

from cosim.campaign import task_choice
from learning.trainer import CentralisedTrainer, SplitFedTrainer


def test_random_k_and_centralised_train_what_they_say(tmp_path, monkeypatch):
    config = _config((tiny_model_dir(tmp_path / "model"), topic_csv(tmp_path / "topics.csv")))
    trained: list[list[int]] = []
    local_train = SplitFedTrainer.local_train
    monkeypatch.setattr(SplitFedTrainer, "local_train",
                        lambda self, devices: trained.append(list(devices)) or local_train(self, devices))
    metrics = task_choice.random_k(config, rounds=3, k=2)
    assert [len(set(d)) for d in trained] == [2, 2, 2] and len({tuple(d) for d in trained}) > 1
    assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["val_accuracy"] <= 1
    taken: list[int] = []
    train = CentralisedTrainer.train
    monkeypatch.setattr(CentralisedTrainer, "train",
                        lambda self, steps: taken.append(steps) or train(self, steps))
    task_choice.centralised(config, rounds=3)
    assert taken == [3 * config.data.devices * config.local_steps]
    trained.clear()
    task_choice.every_device(config, rounds=2)
    assert [sorted(d) for d in trained] == [list(range(config.data.devices))] * 2


def test_an_unknown_method_is_refused_with_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        task_choice.main(["--methods", "random-k,oracle"])
    assert "unknown methods ['oracle']" in capsys.readouterr().err
