"""The split-learning protocol at packet level: the steps of a round (cosim/experiment/protocol.py) and ns-3
walking them on both radios (ns3_scenarios/cosim-protocol.cc).

References: the learning side's real tensors (a real local step of the packaged MiniLM), the
radios' own byte counters, FlowMonitor's count of TCP flows, and arithmetic on the plan's times.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from cosim.experiment.config import load_config
from cosim.experiment.protocol import DeviceFlops, StepTimes, per_step_steps
from cosim.experiment.runloop import longest_wait_s
from cosim.simulator.scenario import ScenarioConfig
from cosim.simulator.simulation import Ns3Simulation
from cosim.wire.messages import RoundPlan
from cosim.wire.steps import Step, lumped_steps
from learning.payload import DOWN, UP, PayloadPredictor
from learning.trainer import SplitFedTrainer

TAUS = (1, 2, 4)
TIMES = StepTimes(embed_forward_s=0.002, head_s=0.003, embed_backward_s=0.004, server_forward_s=0.01,
                  server_backward_s=0.02)
QUIET = dict(mobility="constant", fading="none", shadowing=False, cell_radius_m=150.0)


@pytest.fixture(scope="module")
def real_messages():
    """τ -> the messages one real local round of the packaged model sent, tensor by tensor."""
    out = {}
    for tau in TAUS:
        trainer = SplitFedTrainer(load_config("smoke", [f"learning.local_steps={tau}"]).learning)
        out[tau] = trainer.local_train([0])[0].messages
    return out


def test_per_step_round_places_every_message_and_computation():
    predictor = PayloadPredictor(hidden_size=8, wire_dtype=torch.float32, device_params=10, server_params=20,
                                 front_trainable=True)
    for tau in TAUS:
        messages = predictor.messages(tau, batch=2, seq_len=3)
        steps = per_step_steps(messages, TIMES)
        sent = [(s.kind, s.bytes) for s in steps if s.is_message]
        assert sent == [("uplink" if m.direction == UP else "downlink", m.nbytes) for m in messages]
        assert {s.local_step for s in steps} == set(range(tau + 1))
        compute = [s for s in steps if not s.is_message]
        assert sum(s.seconds for s in compute if s.kind == "device_compute") == pytest.approx(
            tau * (TIMES.embed_forward_s + TIMES.head_s + TIMES.embed_backward_s))
        assert sum(s.seconds for s in compute if s.kind == "server_compute") == pytest.approx(
            tau * (TIMES.server_forward_s + TIMES.server_backward_s))
        assert steps[0] == Step("downlink", bytes=messages[0].nbytes)  # the global device part first


def test_frozen_embeddings_charge_their_backward_before_the_gradient_goes_up():
    predictor = PayloadPredictor(8, torch.float32, 10, 20, front_trainable=False)
    steps = per_step_steps(predictor.messages(1, 2, 3), TIMES)
    kinds = [s.kind for s in steps]
    assert kinds == ["downlink", "device_compute", "uplink", "server_compute", "downlink", "device_compute",
                     "uplink", "server_compute", "uplink"]
    assert steps[5].seconds == pytest.approx(TIMES.head_s + TIMES.embed_backward_s)


def test_step_times_split_by_flops():
    flops = DeviceFlops.of(seq_len=64, hidden=384, labels=5)
    assert flops.total == 3 * (8 * 64 * 384 + 64 * 384 + 2 * 384 * 5)  # the device model's count
    t = StepTimes.split(0.9, 0.3, flops, server_forward_fraction=1 / 3)
    assert t.embed_forward_s + t.head_s + t.embed_backward_s == pytest.approx(0.9)
    assert (t.server_forward_s, t.server_backward_s) == pytest.approx((0.1, 0.2))
    with pytest.raises(ValueError, match="server_forward_fraction"):
        StepTimes.split(1, 1, flops, 1.5)


def _execute(radio: str, steps, **scenario):
    cfg = ScenarioConfig(devices=2, radio=radio, **{**QUIET, **scenario})
    plan = RoundPlan(0, [True, False], [1.0, 0.0], [steps, ()], deadline_s=30.0)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        return plan, sim.execute(plan)


@pytest.mark.parametrize("radio", ["ideal-fdma", "lte"])
def test_ns3_carries_the_real_tensors_message_by_message_in_order(radio, real_messages, tmp_path):
    for tau in TAUS:
        messages = real_messages[tau]
        assert len(messages) == 2 + 3 * tau  # params down, (activations, output, gradient) × τ, params up
        flowmon = tmp_path / f"flows-{tau}.xml"
        extra = dict(flow_monitor_xml=flowmon) if radio == "lte" else {}
        plan, outcome = _execute(radio, per_step_steps(messages, TIMES), **extra)
        steps = outcome.steps_frame(plan)
        carried = steps[steps.kind.isin(["uplink", "downlink"])]
        assert len(carried) == len(messages)
        assert carried.kind.tolist() == ["uplink" if m.direction == UP else "downlink" for m in messages]
        assert carried.delivered_bytes.tolist() == [m.nbytes for m in messages]
        assert np.isfinite(carried.end_s).all()
        # strictly ordered: each message leaves after the one before it arrived, and arrives later
        assert (carried.start_s.to_numpy()[1:] >= carried.end_s.to_numpy()[:-1]).all()
        assert (np.diff(carried.end_s.to_numpy()) > 0).all()
        rec = outcome.records[0]
        assert rec["deadline_met"] == 1 and rec["steps_completed"] == tau
        assert rec["messages_delivered"] == len(messages)
        # the radio's own counters
        assert rec["uplink_delivered_bytes"] == sum(m.nbytes for m in messages if m.direction == UP)
        assert rec["downlink_delivered_bytes"] == sum(m.nbytes for m in messages if m.direction == DOWN)
        if radio == "lte":
            up, down = tcp_payload(flowmon)
            assert up == rec["uplink_delivered_bytes"] and down == rec["downlink_delivered_bytes"]


def tcp_payload(flowmon) -> tuple[int, int]:
    """TCP payload bytes the device sent and received, from FlowMonitor's IP-level counts alone.

    Every segment of ns-3's TCP carries 52 bytes of headers (IPv4 20, TCP 20, the timestamp
    option padded to 12); the SYN 4 more (window scale and SACK-permitted). So a connection's data
    direction carried txBytes − 52·txPackets − 4 bytes of payload. There must be exactly one
    connection each way (two flows each: data, and the ACKs coming back): the protocol keeps them
    for the round."""
    root = ET.parse(flowmon).getroot()
    tuples = {f.get("flowId"): f.attrib for f in root.find("Ipv4FlowClassifier")}
    flows = [(tuples[f.get("flowId")], f.attrib) for f in root.find("FlowStats")
             if tuples[f.get("flowId")]["protocol"] == "6"]
    assert len(flows) == 4, [t for t, _ in flows]
    payload = {}
    for t, stats in flows:
        carried = int(stats["txBytes"]) - 52 * int(stats["txPackets"]) - 4
        direction = "up" if t["sourceAddress"].startswith("7.") else "down"
        payload[direction] = max(payload.get(direction, 0), carried)  # the other flow: ACKs only
    return payload["up"], payload["down"]


@pytest.mark.parametrize("radio, tol_per_step_s", [("ideal-fdma", 1e-9), ("lte", 1.5e-3)])
def test_server_time_per_step_delays_completion_tau_times(radio, tol_per_step_s):
    """Alone on a quiet link, Δ more server time per local step costs τ·Δ of completion time when the
    server's answers are on the device's path (embeddings that train wait for their gradient).

    The server already takes 0.3 s per step, so the link is idle whenever it computes: LTE's TCP
    and radio state at each message is then the same in both runs, up to the 1 ms TTI a shifted
    downlink message may wait for. (With short server times LTE's uplink messages are slower: a
    message that follows the previous one within TCP's delayed-ACK time waits for it.)"""
    predictor = PayloadPredictor(64, torch.float32, 5_000, 50_000, front_trainable=True)
    base = StepTimes(0.002, 0.003, 0.004, server_forward_s=0.1, server_backward_s=0.2)
    delta = 0.1
    for tau in TAUS:
        messages = predictor.messages(tau, batch=4, seq_len=16)
        slow = StepTimes(base.embed_forward_s, base.head_s, base.embed_backward_s,
                         base.server_forward_s + delta / 3, base.server_backward_s + 2 * delta / 3)
        done = [_execute(radio, per_step_steps(messages, t))[1].records[0]["completion_time_s"]
                for t in (base, slow)]
        assert done[1] - done[0] == pytest.approx(tau * delta, abs=tau * tol_per_step_s)


@pytest.mark.parametrize("radio", ["ideal-fdma", "lte"])
def test_lumped_round_is_one_upload_then_one_download(radio):
    plan, outcome = _execute(radio, lumped_steps(200_000, 50_000, compute_s=0.05, server_s=0.1))
    rec = outcome.records[0]
    steps = outcome.steps_frame(plan)
    assert steps.kind.tolist() == ["device_compute", "uplink", "server_compute", "downlink"]
    assert rec["messages_delivered"] == 2 and rec["steps_completed"] == 0 and rec["deadline_met"] == 1
    assert rec["device_compute_s"] == pytest.approx(0.05) and rec["server_compute_s"] == pytest.approx(0.1)
    up, down = steps.iloc[1], steps.iloc[3]
    assert up.ready_s == pytest.approx(0.05) and steps.iloc[2].start_s == pytest.approx(up.end_s)
    assert rec["uplink_transfer_s"] == pytest.approx(up.end_s - up.start_s)
    assert rec["completion_time_s"] == pytest.approx(down.end_s)


def test_the_deadline_cuts_a_device_mid_sequence_and_counts_what_arrived():
    messages = PayloadPredictor(64, torch.float32, 5_000, 50_000, False).messages(4, 4, 16)
    slow = StepTimes(0.0, 0.0, 0.0, 0.5, 0.5)  # a second of server per step: two steps fit in 2.5 s
    cfg = ScenarioConfig(devices=1, radio="ideal-fdma", **QUIET)
    plan = RoundPlan(0, [True], [1.0], [per_step_steps(messages, slow)], deadline_s=2.5)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        outcome = sim.execute(plan)
    rec = outcome.records[0]
    assert rec["deadline_met"] == 0 and np.isnan(rec["completion_time_s"])
    assert rec["steps_completed"] == 2
    steps = outcome.steps_frame(plan)
    arrived = steps[np.isfinite(steps.end_s) & steps.kind.isin(["uplink", "downlink"])]
    assert rec["messages_delivered"] == len(arrived)
    assert rec["uplink_delivered_bytes"] >= arrived[arrived.kind == "uplink"].bytes.sum()
    assert outcome.round_duration_s == pytest.approx(2.5)


def test_a_request_waits_at_most_one_local_step_of_each_other_device():
    """The per-step wait allowance (cosim/experiment/runloop.py): with frozen embeddings a device does
    not wait for the server's backward pass, so it may have that and its next forward pass queued at once;
    never more than one local step's work. Three devices in lockstep on one accelerator."""
    messages = PayloadPredictor(64, torch.float32, 5_000, 50_000, False).messages(3, 4, 16)
    busy = StepTimes(0.001, 0.002, 0.002, server_forward_s=0.1, server_backward_s=0.2)
    step_s = busy.server_forward_s + busy.server_backward_s
    cfg = ScenarioConfig(devices=3, radio="ideal-fdma", **QUIET)
    plan = RoundPlan(0, [True] * 3, [1 / 3] * 3, [per_step_steps(messages, busy)] * 3, deadline_s=60.0)
    with Ns3Simulation(cfg) as sim:
        sim.channel_report()
        outcome = sim.execute(plan)
    steps = outcome.steps_frame(plan)
    waits = (steps.start_s - steps.ready_s)[steps.kind == "server_compute"]
    assert waits.max() > 0.1  # the queue is exercised
    assert waits.max() <= 2 * step_s + 1e-9  # one step of each of the two others
    assert outcome.delivered.all()
    allowance = 2 * 3 * longest_wait_s(np.full(3, step_s), ahead=2, servers=1)
    assert (outcome.records["server_wait_s"] <= allowance + 1e-9).all()
