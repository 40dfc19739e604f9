"""Testing a policy without ns-3: synthetic rounds with Rayleigh fading, the run's own bookkeeping
(`Scheduler`: energy queues and history), and a property the policy promises.
Run it with `python -m pytest docs/examples/test_proportional_fair.py`."""

import numpy as np
from proportional_fair import ProportionalFair, ProportionalFairConfig

from optimizer import PolicyContext, Scheduler
from optimizer.synthetic import RayleighChannel, random_inputs


def test_every_device_gets_its_turn_whatever_its_mean_snr():
    rng = np.random.default_rng(0)
    base = random_inputs(rng, 8, deadline_s=6.0, mean_snr_db=(-5.0, 20.0))  # 25 dB between devices
    channel = RayleighChannel(base, base.snr_db)
    scheduler = Scheduler(ProportionalFair(ProportionalFairConfig(k=3), PolicyContext(rounds=200)), 8)
    for t in range(200):
        inputs, plan = scheduler.plan(channel.round(t, rng))
        assert plan.n_scheduled <= 3 and plan.late == []  # at most k, every one on time
        scheduler.observe(inputs, plan, plan.predicted_energy_j)
    share = scheduler.history.participation / 200
    assert share.min() > 0.25  # 3 of 8 a round is 0.375 each on average; best-channel-k starves some
