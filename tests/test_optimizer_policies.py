"""Policies behind one interface: baselines give feasible plans; Lyapunov keeps long-run budgets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cosim.experiment.runloop import round_plan
from cosim.wire.steps import lumped_steps
from optimizer import POLICIES, Scheduler, make_policy
from optimizer.synthetic import RayleighChannel, random_inputs

BASELINES = [name for name in POLICIES if not name.startswith("lyapunov")]


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_policy_returns_a_feasible_plan(name):
    rng = np.random.default_rng(11)
    policy = Scheduler(make_policy(name), 12)
    for t in range(5):
        inputs = random_inputs(rng, 12, deadline_s=5.0, mean_snr_db=(-10.0, 20.0))
        inputs, plan = policy.plan(RayleighChannel(inputs, inputs.snr_db).round(t, rng))
        assert plan.bandwidth_share.sum() <= 1 + 1e-9
        assert plan.n_scheduled >= 1
        on_time = plan.predicted_delay_s <= inputs.deadline_s * (1 + 1e-9)
        late = plan.scheduled & ~on_time
        assert set(np.flatnonzero(late)) == set(plan.late)  # every late device is flagged, with why
        assert all("below" in plan.infeasible[k] for k in plan.late)
        if name != "all-equal" and not name.endswith("-k"):
            assert plan.late == []
        steps = [lumped_steps(round(up), round(down)) for up, down in zip(inputs.uplink_bytes,
                                                                          inputs.downlink_bytes, strict=True)]
        round_plan(plan, inputs, steps, inputs.deadline_s, 1)  # the simulator accepts it
        policy.observe(inputs, plan, plan.predicted_energy_j)


def _fresh(name: str):
    kwargs = {"k": 3} if name.endswith("-k") else {}
    if name.startswith("lyapunov"):  # both kinds of queue in the state
        kwargs = {"min_participation": 0.3}
    return Scheduler(make_policy(name, **kwargs, **({"seed": 4} if name == "random-k" else {})), 10)


def _faded_rounds(n: int) -> list:
    rng = np.random.default_rng(15)
    base = random_inputs(rng, 10, deadline_s=5.0, mean_snr_db=(-5.0, 20.0))
    channel = RayleighChannel(base, base.snr_db)
    return [channel.round(t, rng) for t in range(n)]


def _play(policy, inputs):
    inputs, plan = policy.plan(inputs)
    policy.observe(inputs, plan, 3.0 * plan.predicted_energy_j)  # over budget: the queues grow
    return plan


@pytest.mark.parametrize("name", list(POLICIES))
def test_a_policy_restored_from_its_state_plans_as_the_original_goes_on(name):
    """What a resumed run relies on: after load_state_dict, a fresh policy with the run's queues
    makes the same plans."""
    rounds = _faded_rounds(8)
    original = _fresh(name)
    for inputs in rounds[:4]:
        _play(original, inputs)
    restored = _fresh(name)
    restored.policy.load_state_dict(original.policy.state_dict())
    restored.queues.restore(original.queues.values)
    for inputs in rounds[4:]:
        a, b = _play(original, inputs), _play(restored, inputs)
        np.testing.assert_array_equal(a.scheduled, b.scheduled)
        np.testing.assert_array_equal(a.bandwidth_share, b.bandwidth_share)


@pytest.mark.parametrize("name", ["lyapunov", "random-k", "round-robin-k", "energy-greedy"])
def test_a_fresh_policy_without_the_state_plans_differently(name):
    """The state matters for these: forgetting it changes the plans, so the test above can fail."""
    rounds = _faded_rounds(5)
    original = _fresh(name)
    for inputs in rounds[:4]:
        _play(original, inputs)
    forgotten = _fresh(name)
    forgotten.queues.restore(original.queues.values)  # the policy's own state only
    remembered, forgotten = original.plan(rounds[4])[1], forgotten.plan(rounds[4])[1]
    assert not np.array_equal(remembered.bandwidth_share, forgotten.bandwidth_share)


def test_a_lyapunov_state_from_before_the_run_kept_the_energy_queues_still_loads():
    """Run folders written when the policy kept its own copy of the energy queues resume: the
    participation queues come back, the copy is left to the run's."""
    policy = make_policy("lyapunov", min_participation=0.3)
    policy.load_state_dict({"queues": np.ones(4), "participation": np.array([0.0, 0.3, 0.6, 0.0]),
                            "budget": np.full(4, 0.5)})
    np.testing.assert_array_equal(policy.state_dict()["participation"], [0.0, 0.3, 0.6, 0.0])
    policy.load_state_dict({"queues": np.ones(4), "participation": None, "budget": None})
    np.testing.assert_array_equal(policy.state_dict()["participation"], np.zeros(4))


def test_the_lyapunov_policy_prices_energy_with_the_queues_it_is_given():
    """The run's queues reach the policy through its inputs: a device with a long backlog is left out."""
    inputs = random_inputs(np.random.default_rng(15), 8, deadline_s=10.0)
    plain = make_policy("lyapunov").plan(inputs)
    assert plain.scheduled.all()
    backlog = np.where(np.arange(8) == 3, 1e6, 0.0)
    owed = make_policy("lyapunov").plan(dataclasses.replace(inputs, energy_queue_j=backlog))
    assert not owed.scheduled[3] and owed.scheduled.sum() == 7
    with pytest.raises(ValueError, match="energy_queue_j must be >= 0"):
        dataclasses.replace(inputs, energy_queue_j=-1.0)


def test_an_empty_plan_says_whether_the_deadline_or_the_budget_left_nobody():
    inputs = random_inputs(np.random.default_rng(15), 8, deadline_s=10.0)
    broke = dataclasses.replace(inputs, energy_budget_j=np.full(8, 1e-12))
    plan = make_policy("energy-greedy").plan(broke)
    assert plan.n_scheduled == 0 and "over its energy budget" in plan.reason
    hopeless = dataclasses.replace(inputs, deadline_s=1e-6)
    assert make_policy("energy-greedy").plan(hopeless).reason == "no device can meet the deadline"


@pytest.mark.parametrize("name", ["random-k", "round-robin-k", "best-channel-k"])
def test_k_baselines_with_deadline_shares_are_on_time(name):
    rng = np.random.default_rng(12)
    policy = make_policy(name, k=4, shares="deadline")
    inputs = random_inputs(rng, 12, deadline_s=5.0, mean_snr_db=(-10.0, 20.0))
    plan = policy.plan(inputs)
    assert 1 <= plan.n_scheduled <= 4 and plan.late == []


def test_round_robin_cycles_through_devices():
    inputs = random_inputs(np.random.default_rng(13), 6, deadline_s=30.0)
    policy = make_policy("round-robin-k", k=2)
    seen = [tuple(np.flatnonzero(policy.plan(inputs).scheduled)) for _ in range(3)]
    assert seen == [(0, 1), (2, 3), (4, 5)]


def test_all_equal_flags_shares_below_the_deadline_minimum():
    inputs = random_inputs(np.random.default_rng(14), 30, deadline_s=5.0, mean_snr_db=(-10.0, 20.0))
    plan = make_policy("all-equal").plan(inputs)
    assert plan.late and all("below" in plan.infeasible[k] for k in plan.late)


def test_bad_policy_options():
    with pytest.raises(ValueError, match="shares='fair'"):
        make_policy("random-k", shares="fair")
    with pytest.raises(ValueError, match="v=-1"):
        make_policy("lyapunov", v=-1)
    with pytest.raises(ValueError, match="round t=30 outside the horizon"):
        make_policy("lyapunov-fast", rounds=30).plan(
            dataclasses.replace(random_inputs(np.random.default_rng(0), 3), round_index=30))


def test_long_run_budgets_hold_and_v_trades_energy_for_convergence():
    """2,000 rounds of i.i.d. Rayleigh fading around per-device means, realised energy within ±5%
    of the prediction: each device's average stays within its budget (+5%), and a larger V spends
    more energy for a smaller convergence term."""
    k, rounds = 8, 2000
    base = random_inputs(np.random.default_rng(0), k, deadline_s=6.0, mean_snr_db=(-5.0, 20.0))
    channel = RayleighChannel(base, base.snr_db)
    energy, phi = [], []
    for v in (1.0, 10.0, 100.0):
        policy = Scheduler(make_policy("lyapunov-fast", v=v, rounds=rounds), k)
        rng = np.random.default_rng(1)
        spent, phis = np.zeros(k), []
        for t in range(rounds):
            inputs, plan = policy.plan(channel.round(t, rng))
            realised = plan.predicted_energy_j * rng.uniform(0.95, 1.05, k)
            policy.observe(inputs, plan, realised)
            spent += np.where(plan.scheduled, realised, 0.0)
            phis.append(plan.phi if plan.n_scheduled else 1.0)
        average = spent / rounds
        assert np.all(average <= 1.05 * base.energy_budget_j), (v, average / base.energy_budget_j)
        energy.append(average.sum())
        phi.append(np.mean(phis))
    assert energy[0] < energy[1] < energy[2]
    assert phi[0] > phi[1] > phi[2]


def test_an_energy_price_spends_less_than_the_budget_and_still_schedules():
    """With ε = 0 the policy spends up to its budget; pricing energy (ε > 0) makes it spend less
    per device and round, the more so the higher the price, while it keeps scheduling devices."""
    k, rounds = 8, 300
    base = random_inputs(np.random.default_rng(0), k, deadline_s=6.0, mean_snr_db=(-5.0, 20.0))
    channel = RayleighChannel(base, base.snr_db)
    energy, count = [], []
    for price in (0.0, 0.05, 0.5):
        policy = Scheduler(make_policy("lyapunov-fast", v=10.0, rounds=rounds, energy_price=price), k)
        rng = np.random.default_rng(1)
        spent, scheduled = 0.0, 0
        for t in range(rounds):
            inputs, plan = policy.plan(channel.round(t, rng))
            policy.observe(inputs, plan, plan.predicted_energy_j)
            spent += float(plan.predicted_energy_j[plan.scheduled].sum())
            scheduled += plan.n_scheduled
        energy.append(spent / (rounds * k))
        count.append(scheduled / rounds)
    assert energy[0] > energy[1] > energy[2]
    assert energy[1] < 0.8 * float(np.mean(base.energy_budget_j)) and min(count) >= 1.0
    with pytest.raises(ValueError, match="energy_price=-1"):
        make_policy("lyapunov", energy_price=-1)


def test_min_participation_keeps_every_device_in_its_share_of_rounds():
    """With energy priced, the cheap devices would take every round and the expensive ones none;
    participation queues bring every device to at least r of the rounds in the long run."""
    k, rounds, r = 10, 400, 0.3
    base = random_inputs(np.random.default_rng(2), k, deadline_s=6.0, mean_snr_db=(-5.0, 20.0))
    channel = RayleighChannel(base, base.snr_db)
    shares = {}
    for rate in (0.0, r):
        policy = Scheduler(make_policy("lyapunov-fast", v=5.0, rounds=rounds, energy_price=0.05,
                                          min_participation=rate), k)
        rng = np.random.default_rng(3)
        taken = np.zeros(k)
        for t in range(rounds):
            inputs, plan = policy.plan(channel.round(t, rng))
            policy.observe(inputs, plan, plan.predicted_energy_j)
            taken += plan.scheduled
        shares[rate] = taken / rounds
    assert shares[0.0].min() < r - 0.1  # without it some device is mostly left out
    assert shares[r].min() >= r - 0.02, shares[r]
    with pytest.raises(ValueError, match="min_participation=1.0"):
        make_policy("lyapunov", min_participation=1.0)


def test_a_high_energy_price_with_participation_queues_waits_for_good_channels():
    """ε = 1 makes energy outweigh the convergence term, so a device takes part once its deficit
    Z_k outgrows its priced energy: about as many devices per round and rounds per device as
    round-robin-k with k = r·K, but in rounds whose fading is better, for less energy."""
    k, rounds, r = 10, 400, 0.4
    base = random_inputs(np.random.default_rng(2), k, deadline_s=6.0, mean_snr_db=(0.0, 20.0))
    channel = RayleighChannel(base, base.snr_db)
    taken, energy, fading = {}, {}, {}
    for name, options in (("lyapunov-fast", {"v": 5.0, "rounds": rounds, "energy_price": 1.0,
                                             "min_participation": r}),
                          ("round-robin-k", {"k": round(r * k), "shares": "deadline"})):
        policy = Scheduler(make_policy(name, **options), k)
        rng = np.random.default_rng(3)
        taken[name], energy[name], gains = np.zeros(k), 0.0, []
        for t in range(rounds):
            inputs, plan = policy.plan(channel.round(t, rng))
            policy.observe(inputs, plan, plan.predicted_energy_j)
            taken[name] += plan.scheduled
            energy[name] += float(plan.predicted_energy_j[plan.scheduled].sum())
            gains += list((inputs.snr_db - base.snr_db)[plan.scheduled])
        fading[name] = float(np.mean(gains))
    lyapunov, rr = taken["lyapunov-fast"], taken["round-robin-k"]
    assert lyapunov.min() / rounds >= r - 0.02, lyapunov / rounds
    assert abs(lyapunov.sum() / rr.sum() - 1.0) < 0.03
    assert fading["lyapunov-fast"] > fading["round-robin-k"] + 1.5, fading
    assert energy["lyapunov-fast"] < 0.92 * energy["round-robin-k"], energy
