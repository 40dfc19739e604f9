"""Plans are validated when they are made; reports and outcomes are tidy tables."""

import numpy as np
import pytest

from cosim.wire import layout
from cosim.wire.messages import RoundPlan, read_outcome, read_plan
from cosim.wire.steps import Step


def plan(**kw):
    base = dict(round_index=0, scheduled=[True, True, False], bandwidth_share=[0.5, 0.5, 0.0],
                uplink_bytes=[10, 10, 0], downlink_bytes=[5, 5, 0], compute_time_s=[0, 0, 0],
                deadline_s=1.0)
    base.update(kw)
    return RoundPlan.lumped(**base)


def test_valid_plan_becomes_the_wire_records():
    header_bytes, record_bytes, step_bytes = plan(compute_time_s=[0.5, 0.25, 0]).wire
    header = np.frombuffer(header_bytes, layout.PLAN_HEADER.dtype)[0]
    records = np.frombuffer(record_bytes, layout.PLAN_RECORD.dtype)
    steps = np.frombuffer(step_bytes, layout.PLAN_STEP.dtype)
    assert int(header["num_devices"]) == 3 and float(header["deadline_s"]) == 1.0
    assert int(header["num_steps"]) == 8  # four per scheduled device, none for the other
    assert records["scheduled"].tolist() == [1, 1, 0]
    assert records["bandwidth_share"].tolist() == [0.5, 0.5, 0.0]
    assert records["first_step"].tolist() == [0, 4, 8] and records["step_count"].tolist() == [4, 4, 0]
    kinds = layout.STEP_KINDS
    assert steps["kind"].tolist() == [kinds["STEP_DEVICE_COMPUTE"], kinds["STEP_UPLINK"],
                                      kinds["STEP_SERVER_COMPUTE"], kinds["STEP_DOWNLINK"]] * 2
    assert steps["device_id"].tolist() == [0] * 4 + [1] * 4 and steps["index"].tolist() == [0, 1, 2, 3] * 2
    assert steps["bytes"].tolist() == [0, 10, 0, 5] * 2
    assert steps["seconds"].tolist() == [0.5, 0, 0, 0, 0.25, 0, 0, 0]


def test_steps_are_checked_when_they_are_made():
    with pytest.raises(ValueError, match="whole number of bytes"):
        Step("uplink", bytes=-1)
    with pytest.raises(ValueError, match="finite seconds"):
        Step("server_compute", seconds=float("nan"))
    with pytest.raises(ValueError, match="not one of"):
        Step("sidelink", bytes=1)
    with pytest.raises(ValueError, match="not a cosim.wire.steps.Step"):
        RoundPlan(0, [True], [1.0], [[("uplink", 10)]], deadline_s=1.0)


def test_a_plan_read_back_from_its_wire_bytes_sends_the_same_bytes():
    sent = plan(round_index=7, bandwidth_share=[0.25, 0.5, 0.3], compute_time_s=[0.1, 0.2, 0.3],
                server_time_s=[0.4, 0.5, 0.6], server_count=2)
    back = read_plan(*sent.wire)
    assert back.wire == sent.wire
    assert back.round_index == 7 and back.server_time_s.tolist() == [0.4, 0.5, 0.0]  # device 2 does not go
    assert back.server_count == 2
    assert back.bandwidth_share.tolist() == [0.25, 0.5, 0.0]  # unscheduled devices send no share


@pytest.mark.parametrize("kw, msg", [
    (dict(bandwidth_share=[0.7, 0.5, 0.0]), "sums to 1.2"),
    (dict(bandwidth_share=[np.nan, 0.5, 0.0]), "finite"),
    (dict(bandwidth_share=[-0.1, 0.5, 0.0]), r"\[0, 1\]"),
    (dict(bandwidth_share=[0.0, 0.5, 0.0]), r"devices \[0\] with a zero"),
    (dict(uplink_bytes=[-1, 0, 0]), "bytes must be >= 0"),
    (dict(deadline_s=0.0), "deadline_s"),
    (dict(compute_time_s=[0, np.inf, 0]), "finite seconds"),
    (dict(scheduled=[True, False]), "shape"),
])
def test_invalid_plans_are_refused(kw, msg):
    with pytest.raises(ValueError, match=msg):
        plan(**kw)


def test_equal_shares_split_the_band_among_scheduled_devices():
    p = RoundPlan.equal_shares(3, [True, False, True, True], 100, 50, deadline_s=2.0)
    assert p.bandwidth_share.tolist() == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])
    assert p.to_frame()["round"].eq(3).all()


def test_outcome_frame_is_one_row_per_device_with_units():
    header = np.zeros(1, layout.OUTCOME_HEADER.dtype)
    header["num_devices"] = 2
    records = np.zeros(4, layout.OUTCOME_RECORD.dtype)
    records["deadline_met"][:2] = [1, 0]
    out = read_outcome(header.tobytes(), records.tobytes(), b"")
    df = out.to_frame()
    assert len(df) == 2 and out.delivered.tolist() == [True, False]
    assert {"uplink_transfer_s", "tx_energy_j", "uplink_delivered_bytes"} <= set(df.columns)
