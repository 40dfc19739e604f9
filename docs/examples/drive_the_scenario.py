"""Drive the ns-3 scenario from Python: a channel report, then two rounds, one with the paper's
lumped round for every device, one with split learning's messages one by one for two of them."""

import torch

from cosim import Ns3Simulation, RoundPlan, ScenarioConfig, Step, StepTimes, per_step_steps
from learning.payload import PayloadPredictor

cfg = ScenarioConfig(devices=4, radio="lte", mobility="random-walk", rng_run=3)
with Ns3Simulation(cfg) as sim:
    report = sim.channel_report()            # ChannelReport; report.to_frame() -> pandas
    plan = RoundPlan.equal_shares(0, report.snr_db > -5, uplink_bytes=300_000,
                                  downlink_bytes=300_000, deadline_s=10.0)
    outcome = sim.execute(plan)              # RoundOutcome; outcome.to_frame() -> pandas
    print(outcome.to_frame()[["device_id", "deadline_met", "completion_time_s", "tx_energy_j"]])

    # any other exchange: a sequence of steps per device, walked by the device and the server
    messages = PayloadPredictor(384, torch.float32, device_params=1_925, server_params=150_000,
                                front_trainable=False).messages(steps=2, batch=1, seq_len=16)
    split = per_step_steps(messages, StepTimes(0.002, 0.004, 0.004, 0.005, 0.010))
    ping = [Step("uplink", bytes=100), Step("server_compute", seconds=0.01), Step("downlink", bytes=100)]
    sim.channel_report()
    plan = RoundPlan(1, [True, True, False, False], [0.5, 0.5, 0, 0], [split, ping, (), ()], deadline_s=10.0)
    outcome = sim.execute(plan)
    print(outcome.steps_frame(plan)[["device_id", "kind", "bytes", "start_s", "end_s"]])
