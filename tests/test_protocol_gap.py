"""The protocol-gap table: formula, lumped and per-step round times and their ratios, seed by seed."""

import pandas as pd
import pytest

from cosim.campaign.protocol_gap import gap_figure, gap_table
from cosim.campaign.report import Run


def fake_run(protocol: str, seed: int, predicted: list[float], wait: float, realised: list[float]) -> Run:
    """Two devices, two rounds: the round's formula is the larger device's prediction less its wait."""
    devices = pd.DataFrame({"round": [0, 0, 1, 1], "device_id": [0, 1, 0, 1], "scheduled": True,
                            "predicted_delay_s": predicted, "planned_server_wait_s": wait})
    rounds = pd.DataFrame({"round": [0, 1], "round_duration_s": realised})
    config = {"scenario": {"radio": "lte"}, "learning": {"local_steps": 2, "batch_size": 8,
                                                         "model": {"max_length": 64}},
              "protocol": protocol, "seed": seed, "policy": {"name": "all-equal"}}
    return Run(None, config, {}, rounds, devices)


def test_ratios_are_taken_against_each_run_s_own_formula(tmp_path):
    runs = [fake_run("lumped", 1, [1.5, 2.5, 1.0, 4.5], 0.5, [3.0, 6.0]),  # formula 2, 4: ratio 1.5
            fake_run("per-step", 1, [2.5, 1.5, 3.5, 3.5], 0.5, [3.3, 3.6]),  # formula 2, 3: 1.65, 1.2
            fake_run("lumped", 2, [1.5, 1.5, 1.5, 1.5], 0.5, [1.0, 1.0]),  # formula 1: ratio 1
            fake_run("per-step", 2, [1.5, 1.5, 1.5, 1.5], 0.5, [2.0, 2.0])]  # ratio 2
    table = gap_table(runs).set_index("quantity")
    assert (table.setting == "lte, 8 × 64 tokens").all() and (table.seeds == 2).all()
    assert table.loc["formula_s", "mean"] == pytest.approx((3.0 + 1.0) / 2)
    lumped = table.loc["lumped_over_formula", ["mean", "min", "max"]].tolist()
    assert lumped == pytest.approx([1.25, 1.0, 1.5])
    assert table.loc["per_step_over_formula", ["min", "max"]].tolist() == pytest.approx([1.425, 2.0])
    assert table.loc["per_step_over_lumped", ["min", "max"]].tolist() == pytest.approx([1.425 / 1.5, 2.0])
    assert gap_figure(gap_table(runs), tmp_path / "gap.png").stat().st_size > 10_000
