"""A robust aggregation rule: the coordinate-wise trimmed mean (Yin et al. 2018). Each weight is the
mean of the delivered devices' values once the largest and smallest `trim` share are dropped, so a
few far-off updates cannot drag the model. Sample counts are not used.

Run it with `learning.aggregator.name=trimmed_mean:TrimmedMean learning.aggregator.trim=0.2`."""

import math
from dataclasses import dataclass

import torch

from learning.aggregation import Aggregator


@dataclass(frozen=True)
class TrimmedMeanConfig:
    trim: float = 0.1  # share of the devices dropped at each end, per weight: `learning.aggregator.trim`

    def __post_init__(self) -> None:
        if not 0 <= self.trim < 0.5:
            raise ValueError(f"trim={self.trim} must be in [0, 0.5)")


class TrimmedMean(Aggregator):
    Config = TrimmedMeanConfig

    def aggregate(self, part, global_state, states, weights):
        cut = math.floor(self.config.trim * len(states))
        out = {}
        for name in global_state:
            stacked, _ = torch.sort(torch.stack([s[name] for s in states]), dim=0)
            out[name] = stacked[cut: len(states) - cut].mean(dim=0)
        return out
