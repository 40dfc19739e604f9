"""The rate calibration: efficiency samples from outcomes, their running mean, and what the
scheduler does with them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cosim.experiment.calibration import RateCalibration
from cosim.experiment.runloop import round_plan
from cosim.wire import layout
from cosim.wire.steps import lumped_steps
from optimizer import make_policy
from optimizer.synthetic import random_inputs


def _round(k: int = 4):
    inputs = random_inputs(np.random.default_rng(3), k, deadline_s=30.0, mean_snr_db=(10.0, 20.0))
    plan = make_policy("all-equal").plan(inputs)
    assert plan.scheduled.all()
    return inputs, plan


def _outcome(inputs, plan, rate_factor: np.ndarray, finished: np.ndarray) -> np.ndarray:
    """Records as if each device's uplink ran at rate_factor × the model's rate (cut at half the
    bytes when not finished)."""
    model_time = plan.predicted_delay_s - inputs.fixed_time_s()
    took = model_time / rate_factor
    rec = np.zeros(inputs.devices, layout.OUTCOME_RECORD.dtype)
    rec["scheduled"] = plan.scheduled
    rec["uplink_delivered_bytes"] = np.where(finished, inputs.uplink_bytes, inputs.uplink_bytes / 2)
    rec["uplink_transfer_s"] = np.where(finished, took, np.nan)
    rec["airtime_s"] = np.where(finished, took, took / 2)
    return rec


def test_a_device_at_half_the_model_rate_gets_efficiency_one_half():
    inputs, plan = _round()
    cal = RateCalibration(inputs.devices)
    np.testing.assert_array_equal(cal.efficiency, np.ones(4))
    factor = np.array([0.5, 0.25, 1.0, 0.5])
    cal.update(inputs, plan, _outcome(inputs, plan, factor, np.array([True, True, True, False])))
    # bytes are whole on the wire, hence rtol; the unfinished one is measured by its airtime
    np.testing.assert_allclose(cal.efficiency, factor, rtol=1e-5)
    cal.update(inputs, plan, _outcome(inputs, plan, np.full(4, 1.0), np.ones(4, bool)))
    np.testing.assert_allclose(cal.efficiency, np.sqrt(factor), rtol=1e-5)  # weight 1/2 on the logs


def test_unscheduled_devices_keep_theirs_and_unseen_ones_take_the_median():
    inputs, plan = _round()
    cal = RateCalibration(inputs.devices)
    scheduled = np.array([True, True, True, False])
    partial = dataclasses.replace(plan, scheduled=scheduled, bandwidth_share=plan.bandwidth_share * scheduled)
    cal.update(inputs, partial, _outcome(inputs, plan, np.array([0.2, 0.4, 0.8, 0.1]), np.ones(4, bool)))
    np.testing.assert_allclose(cal.efficiency, [0.2, 0.4, 0.8, 0.4], rtol=1e-5)
    state = cal.state_dict()
    again = RateCalibration(inputs.devices)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.efficiency, cal.efficiency)


def test_an_efficiency_is_a_slower_radio_for_the_scheduler():
    """η = 1/2 plans as twice the bytes at the model's rate, and ns-3 still gets the real bytes."""
    inputs, _ = _round()
    slow = dataclasses.replace(inputs, rate_efficiency=0.5)
    double = dataclasses.replace(inputs, uplink_bytes=2 * inputs.uplink_bytes)
    policy = make_policy("lyapunov")
    a, b = policy.plan(slow), make_policy("lyapunov").plan(double)
    np.testing.assert_allclose(a.predicted_delay_s, b.predicted_delay_s)
    np.testing.assert_array_equal(a.scheduled, b.scheduled)
    steps = [lumped_steps(round(up), 1000) for up in inputs.uplink_bytes]
    np.testing.assert_array_equal(round_plan(a, slow, steps, 1.0, 1).uplink_bytes[a.scheduled],
                                  np.rint(inputs.uplink_bytes)[a.scheduled])
    with pytest.raises(ValueError, match="rate_efficiency"):
        dataclasses.replace(inputs, rate_efficiency=0.0)
