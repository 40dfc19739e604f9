"""Spreading the training samples over devices: IID, Dirichlet(α) label skew, or label-sorted shards.

Every function returns one sorted index array per device; together they hold each sample exactly once,
and the same seed gives the same split.
"""

from __future__ import annotations

import numpy as np

from learning.config import DataSettings


def partition_iid(labels: np.ndarray, devices: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [np.sort(part) for part in np.array_split(rng.permutation(len(labels)), devices)]


def partition_dirichlet(labels: np.ndarray, devices: int, alpha: float, rng: np.random.Generator,
                        min_size: int = 1, max_tries: int = 100) -> list[np.ndarray]:
    """Each class is cut among the devices in Dirichlet(α) proportions: small α, few classes per device.

    Draws again (up to `max_tries`) while a device would get fewer than `min_size` samples.
    """
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(devices)]
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            cuts = (np.cumsum(rng.dirichlet(np.full(devices, alpha)))[:-1] * len(members)).astype(int)
            for part, chunk in zip(parts, np.split(members, cuts), strict=True):
                part.append(chunk)
        result = [np.sort(np.concatenate(part)) for part in parts]
        if min(len(r) for r in result) >= min_size:
            return result
    raise ValueError(f"Dirichlet(alpha={alpha}) left a device with fewer than {min_size} samples in "
                     f"{max_tries} draws ({len(labels)} samples, {devices} devices): raise alpha or the data")


def partition_shards(labels: np.ndarray, devices: int, shards_per_device: int,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Sort by label, cut into devices × shards_per_device shards, deal the shards out at random."""
    count = devices * shards_per_device
    if count > len(labels):
        raise ValueError(f"{count} shards ({devices} devices x {shards_per_device}) need at least as many "
                         f"samples, got {len(labels)}")
    shuffled = rng.permutation(len(labels))
    shards = np.array_split(shuffled[np.argsort(labels[shuffled], kind="stable")], count)
    order = rng.permutation(count).reshape(devices, shards_per_device)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in order]


def partition(labels: np.ndarray, settings: DataSettings) -> list[np.ndarray]:
    rng = np.random.default_rng(settings.seed)
    if settings.partition == "iid":
        return partition_iid(labels, settings.devices, rng)
    if settings.partition == "dirichlet":
        return partition_dirichlet(labels, settings.devices, settings.dirichlet_alpha, rng)
    return partition_shards(labels, settings.devices, settings.shards_per_device, rng)


def label_counts(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """(devices, classes) sample counts: what each device holds, for the run's records."""
    return np.stack([np.bincount(labels[part], minlength=num_classes) for part in parts])
