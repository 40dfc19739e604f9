"""Datasets, user files with clear errors, train/test split, partitions and metrics."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from learning.config import DataSettings
from learning.data import load_bbc, load_dataset, load_table, load_tweets, split_dataset
from learning.metrics import accuracy, macro_f1
from learning.partition import label_counts, partition, partition_dirichlet

BBC_LABELS = load_bbc().labels


def test_packaged_corpora_load_offline():
    bbc, tweets = load_bbc(), load_tweets()
    assert len(bbc) == 2225 and bbc.label_names == ("business", "entertainment", "politics", "sports", "tech")
    assert np.bincount(bbc.labels).tolist() == [510, 386, 417, 511, 401]
    assert bbc.texts[0].startswith("Ad sales boost Time Warner profit")
    assert len(tweets) > 38_000 and tweets.label_names == ("negative", "neutral", "positive")


def test_a_text_is_kept_once_so_no_test_text_is_a_training_one():
    bbc = load_dataset("bbc")
    assert len(bbc) == 2225 - 98 and len(set(bbc.texts)) == len(bbc)
    assert len(load_dataset("bbc", deduplicate=False)) == 2225
    train, validation, test = split_dataset(bbc, 0.2, 0.1, seed=1)
    assert not set(test.texts) & (set(train.texts) | set(validation.texts))


def test_the_split_is_stratified_disjoint_and_seeded():
    bbc = load_bbc()
    train, validation, test = split_dataset(bbc, 0.2, 0.1, seed=1)
    # a partition of the corpus (as multisets: BBC holds some articles twice)
    assert Counter(train.texts) + Counter(validation.texts) + Counter(test.texts) == Counter(bbc.texts)
    np.testing.assert_allclose(np.bincount(test.labels) / np.bincount(bbc.labels), 0.2, atol=0.01)
    np.testing.assert_allclose(np.bincount(validation.labels) / np.bincount(bbc.labels), 0.1, atol=0.01)
    again, _, _ = split_dataset(bbc, 0.2, 0.1, seed=1)
    other, _, _ = split_dataset(bbc, 0.2, 0.1, seed=2)
    assert again.texts == train.texts and other.texts != train.texts
    # a validation split takes from the training data only: the test set stays the same
    _, none, same_test = split_dataset(bbc, 0.2, 0.0, seed=1)
    assert len(none) == 0 and same_test.texts == test.texts


def test_user_csv_and_jsonl(tmp_path):
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('text,label\n"hello, world",b\nsecond,a\n"multi\nline",b\n')
    data = load_table(csv_file)
    assert data.texts == ["hello, world", "second", "multi\nline"] and data.label_names == ("a", "b")
    assert data.labels.tolist() == [1, 0, 1]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": f"t{i}", "label": i % 12}) for i in range(24)) + "\n\n")
    data = load_dataset(jsonl)
    assert data.label_names[:3] == ("0", "1", "2") and data.label_names[-1] == "11"
    assert load_table(csv_file, label_names=["b", "a"]).labels.tolist() == [0, 1, 0]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("d.csv", "text,category\nhi,a\n", r"d.csv:2: missing column\(s\) \['label'\]"),
    ("d.csv", "text,label\nhi,a\n,b\n", r"d.csv:3: column 'text' must be non-empty"),
    ("d.csv", "text,label\nhi,a\nyo,a,extra\n", r"d.csv:3: more fields"),
    ("d.csv", "text,label\nhi,\n", r"d.csv:2: empty label"),
    ("d.csv", "text,label\nhi,a\nyo,zebra\n", r"d.csv:3: unknown label 'zebra'"),
    ("d.jsonl", '{"text": "a", "label": "a"}\n{"text": "b", label}\n', r"d.jsonl:2: not valid JSON"),
    ("d.jsonl", '{"text": "a", "label": "a"}\n["b", "a"]\n', r"d.jsonl:2: expected a JSON object"),
    ("d.csv", "text,label\n", r"d.csv: no data rows"),
    ("d.txt", "hi\n", r"d.txt: unsupported file type"),
])
def test_bad_data_files_name_the_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_table(path, label_names=["a", "b"])


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_dataset(tmp_path / "nope.csv")
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.csv: not UTF-8"):
        load_table(path)


def _entropy(counts: np.ndarray) -> float:
    p = counts / counts.sum()
    return float(-(p[p > 0] * np.log(p[p > 0])).sum())


@pytest.mark.parametrize("kind", ["iid", "dirichlet", "shards"])
def test_partitions_assign_every_sample_once_and_are_seeded(kind):
    settings = DataSettings(devices=10, partition=kind, seed=3)
    parts = partition(BBC_LABELS, settings)
    assert len(parts) == 10 and all(len(p) > 0 for p in parts)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(BBC_LABELS)))
    again = partition(BBC_LABELS, settings)
    other = partition(BBC_LABELS, DataSettings(devices=10, partition=kind, seed=4))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))
    assert label_counts(BBC_LABELS, parts, 5).sum(axis=1).tolist() == [len(p) for p in parts]


def test_dirichlet_skew_follows_alpha():
    """Smaller α ⇒ lower mean per-device label entropy; IID sits near the maximum log(5)."""
    def mean_entropy(alpha: float, seed: int) -> float:
        parts = partition_dirichlet(BBC_LABELS, 10, alpha, np.random.default_rng(seed))
        return np.mean([_entropy(c) for c in label_counts(BBC_LABELS, parts, 5)])

    entropies = [np.mean([mean_entropy(alpha, seed) for seed in range(5)])
                 for alpha in (0.1, 0.5, 5.0, 100.0)]
    assert entropies == sorted(entropies)
    assert entropies[0] < 0.6 and entropies[-1] > 0.98 * np.log(5)
    iid = partition(BBC_LABELS, DataSettings(devices=10, partition="iid"))
    assert min(_entropy(c) for c in label_counts(BBC_LABELS, iid, 5)) > 0.95 * np.log(5)


def test_shards_give_each_device_few_classes():
    parts = partition(BBC_LABELS, DataSettings(devices=10, partition="shards", shards_per_device=2))
    assert max((c > 0).sum() for c in label_counts(BBC_LABELS, parts, 5)) <= 3


def test_partition_errors():
    with pytest.raises(ValueError, match="shards"):
        partition(np.zeros(5, int), DataSettings(devices=5, partition="shards", shards_per_device=2))
    with pytest.raises(ValueError, match="raise alpha"):
        partition_dirichlet(np.zeros(12, int), 10, 0.01, np.random.default_rng(0), max_tries=3)


def test_metrics_match_hand_computation():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 1, 1, 1, 0, 2])
    # F1: class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp1 fp0 fn1 -> 2/3.
    assert accuracy(labels, preds) == pytest.approx(4 / 6)
    assert macro_f1(labels, preds, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert macro_f1(labels, labels, 4) == 1.0
