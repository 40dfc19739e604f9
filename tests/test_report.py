"""`cosim report` on run folders written by `RunDir` itself, with values checked by hand."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from cosim.campaign.report import (
    CannotPair,
    NotARunFolder,
    _curves,
    accuracy_by_energy,
    load_run,
    mark_budget,
    resolve_runs,
    write_report,
)
from cosim.cli import app
from cosim.experiment import rundir
from cosim.experiment.config import load_config

ROUNDS = 3
# (policy, seed) -> accuracy per round, energy per (round, device) of the two devices
RUNS = {
    ("lyapunov", 1): ([0.2, 0.4, 0.6], [[0.1, 0.3], [0.2, 0.2], [0.3, 0.1]]),
    ("lyapunov", 2): ([0.3, 0.5, 0.8], [[0.2, 0.4], [0.2, 0.2], [0.2, 0.0]]),
    ("random-k", 1): ([0.1, 0.3, 0.5], [[0.5, 0.0], [0.0, 0.5], [0.5, 0.0]]),
    ("random-k", 2): ([0.2, 0.3, 0.55], [[0.0, 0.5], [0.5, 0.0], [0.0, 0.5]]),
}


def write_run(results: Path, policy: str, seed: int, metric: str = "accuracy") -> Path:
    """A finished run through RunDir.record, with the real columns the report reads; its quality, the
    accuracies of RUNS, as `metric` (a causal-LM run's is `perplexity`)."""
    accuracy, energy = RUNS[policy, seed]
    run = rundir.RunDir(load_config("smoke", [f"results_dir={results}", f"seed={seed}",
                                               f"policy.name={policy}", f"rounds={ROUNDS}"]))
    for t in range(ROUNDS):
        e = np.array(energy[t])
        scheduled = e > 0
        delivered = scheduled & ~((t == 0) & (np.cumsum(scheduled) == 1))  # round 0 loses its first update
        run.record({"round": t, "scheduled": int(scheduled.sum()), "delivered": int(delivered.sum()),
                    "accuracy": np.nan, metric: accuracy[t], "energy_j": float(e.sum()), "solver": policy,
                    "license": "n/a",
                    "sim_time_s": 10.0 * t, "round_duration_s": 5.0 + t},
                   {"round": np.full(2, t), "device_id": np.arange(2), "scheduled": scheduled,
                    "delivered": delivered, "realised_energy_j": e, "energy_budget_j": np.full(2, 0.25),
                    "snr_db": np.array([10.0, 20.0]), "uplink_transfer_s": np.array([1.0, 2.0])})
    run.finish("completed")
    return run.path


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(rundir, "git_commit", lambda: None)
    for policy, seed in RUNS:
        write_run(tmp_path / "results", policy, seed)
    return tmp_path / "results"


def test_table_has_runs_and_policy_means_with_t_intervals(results, tmp_path):
    table, csv_path, png_path, _ = write_report([str(results)], tmp_path / "out")
    assert png_path.stat().st_size > 10_000 and png_path.name == "report.png"
    assert pd.read_csv(csv_path).shape == table.shape
    runs = table[table["row"] == "run"].set_index(["policy", "seed"])
    assert runs.loc[("lyapunov", 2), "final_accuracy"] == pytest.approx(0.8)
    assert runs.loc[("lyapunov", 1), "mean_scheduled"] == pytest.approx(2.0)
    assert runs.loc[("lyapunov", 1), "delivered_ratio"] == pytest.approx(5 / 6)
    assert runs.loc[("lyapunov", 1), "energy_per_device_round_j"] == pytest.approx(1.2 / 6)
    # random-k seed 1: device 0 averages 1/3 J, device 1 1/6 J, against a budget of 0.25 J
    assert runs.loc[("random-k", 1), "max_energy_over_budget"] == pytest.approx((1.0 / 3) / 0.25)
    means = table[table["row"] == "mean"].set_index("policy")
    assert list(means.index) == ["lyapunov", "random-k"]
    # two seeds: mean (0.6 + 0.8) / 2; half-width t(0.975, 1) * s / sqrt(2) with s = 0.1 * sqrt(2)
    assert means.loc["lyapunov", "final_accuracy"] == pytest.approx(0.7)
    assert means.loc["lyapunov", "final_accuracy_ci95"] == pytest.approx(12.7062047 * 0.1, rel=1e-6)
    assert means.loc["random-k", "final_accuracy_ci95"] == pytest.approx(12.7062047 * 0.025, rel=1e-6)
    assert means.loc["random-k", "mean_scheduled_ci95"] == 0.0
    assert means.loc["lyapunov", "seed"] == "1,2"


def test_accuracy_is_compared_at_the_least_energy_any_run_spent(results, tmp_path):
    # cumulative energy per device: lyapunov s1 0.2, 0.4, 0.6; s2 0.3, 0.5, 0.6; random-k 0.25, 0.5, 0.75
    table = write_report([str(results)], tmp_path / "out")[0]
    np.testing.assert_allclose(table["common_energy_j"], 0.6)  # on every row
    runs = table[table["row"] == "run"].set_index(["policy", "seed"])["accuracy_at_common_energy"]
    assert runs[("lyapunov", 1)] == pytest.approx(0.6) and runs[("lyapunov", 2)] == pytest.approx(0.8)
    # random-k between 0.5 J and 0.75 J: 0.3 + (0.6 - 0.5) / 0.25 * (0.5 - 0.3), and the same for s2
    assert runs[("random-k", 1)] == pytest.approx(0.38) and runs[("random-k", 2)] == pytest.approx(0.40)
    means = table[table["row"] == "mean"].set_index("policy")
    assert means.loc["random-k", "accuracy_at_common_energy"] == pytest.approx(0.39)


def test_accuracy_by_energy_sits_at_the_mean_energy_over_seeds(results):
    runs = [load_run(p) for p in resolve_runs([str(results / "*-lyapunov-*")])]
    accuracy, energy = _curves(runs)["lyapunov"]
    frame = accuracy_by_energy(accuracy, energy)
    np.testing.assert_allclose(frame.index, [0.25, 0.45, 0.6])
    np.testing.assert_allclose(frame.to_numpy(), [[0.2, 0.3], [0.4, 0.5], [0.6, 0.8]])


def test_a_budget_far_beyond_the_curves_is_named_not_drawn():
    fig, (near, far) = plt.subplots(1, 2)
    near.plot([0.5, 5.0], [0.5, 0.9])
    mark_budget(near, 6.0, 5.0)  # within 1.5 x the curves: a line at the budget
    assert [line.get_xdata()[0] for line in near.get_lines()[1:]] == [6.0]
    far.plot([0.5, 5.0], [0.5, 0.9])
    mark_budget(far, 20.0, 5.0)  # beyond: the axis ends at the curves, a note names the budget
    assert far.get_xlim() == pytest.approx((0.0, 5.25)) and len(far.get_lines()) == 1
    assert [t.get_text() for t in far.texts] == ["budget at the last round: 20 J →"]
    plt.close(fig)


def test_cli_accepts_globs_and_prints_the_table(results, tmp_path):
    result = CliRunner().invoke(app, ["report", str(results / "*-lyapunov-*"), str(results / "*-random-k-s1"),
                                      "--out", str(tmp_path / "out")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "0.700 ± 1.271" in result.output and "3 run(s); common energy 0.600 J" in result.output
    assert (tmp_path / "out" / "report.png").is_file()


def test_a_folder_that_is_not_a_run_is_named_with_its_missing_files(results, tmp_path):
    (victim,) = (p for p in results.iterdir() if p.name.endswith("random-k-s2"))
    (victim / "devices.parquet").unlink()
    with pytest.raises(NotARunFolder, match=r"random-k-s2 is not a run folder: devices.parquet missing"):
        resolve_runs([str(victim)])
    with pytest.raises(NotARunFolder, match=r"matches no run folder \(one holding config.yaml"):
        resolve_runs([str(results / "*-random-k-s2")])
    assert len(resolve_runs([str(results / "*")])) == 3  # the broken one is skipped by a pattern
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["report", str(empty)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "config.yaml, manifest.json, rounds.parquet, devices.parquet missing" in result.output
    assert "Traceback" not in result.output


def test_csv_on_request_mirrors_the_parquet_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "git_commit", lambda: None)
    run = rundir.RunDir(load_config("smoke", [f"results_dir={tmp_path}", "csv=true"]))
    run.record({"round": 0, "scheduled": 1, "solver": "s", "license": "l", "energy_j": 0.5},
               {"round": np.zeros(2, int), "device_id": np.arange(2), "realised_energy_j": [0.5, 0.0]})
    for name in ("rounds", "devices"):
        pd.testing.assert_frame_equal(pd.read_csv(run.path / f"{name}.csv"),
                                      pd.read_parquet(run.path / f"{name}.parquet"), check_dtype=False)
    plain = rundir.RunDir(load_config("smoke", [f"results_dir={tmp_path / 'plain'}"]))
    plain.record({"round": 0, "scheduled": 0, "solver": "s", "license": "l", "energy_j": 0.0},
                 {"round": np.zeros(1, int), "device_id": np.arange(1)})
    assert not (plain.path / "rounds.csv").exists()


def test_runs_can_be_grouped_by_any_config_keys(results, tmp_path):
    table, _, png, _ = write_report([str(results)], tmp_path / "by", by=("seed",))
    means = table[table["row"] == "mean"].set_index("group")
    assert list(means.index) == ["1", "2"] and list(means["policy"]) == ["lyapunov,random-k"] * 2
    assert means.loc["1", "run"] == "2 run(s)" and png.is_file()
    both = write_report([str(results)], tmp_path / "both", by=("policy.name", "seed"))[0]
    assert "lyapunov, seed=2" in set(both["group"])
    turned = write_report([str(results)], tmp_path / "turned", by=("seed", "policy.name"))[0]
    assert "2, policy=random-k" in set(turned["group"])
    by = ("policy.name", "policy.k", "policy.energy_price")
    knobs = write_report([str(results)], tmp_path / "knobs", by=by)[0]
    assert set(knobs["group"]) == {"lyapunov, energy_price=0.0", "random-k, k=3"}  # each only its own knobs
    result = CliRunner().invoke(app, ["report", str(results), "--by", "policy.nope"])
    assert result.exit_code == 2 and "no key 'policy.nope' to group by" in " ".join(result.output.split())


def test_a_key_older_runs_lack_groups_them_with_its_default(results, tmp_path):
    """A run made before a config key existed ran with its default: it joins that group."""
    config = next(results.glob("*-lyapunov-s1")) / "config.yaml"
    data = yaml.safe_load(config.read_text())
    del data["policy"]["energy_price"]
    config.write_text(yaml.safe_dump(data))
    table = write_report([str(results)], tmp_path / "out", by=("policy.name", "policy.energy_price"))[0]
    means = table[table["row"] == "mean"].set_index("group")
    assert means.loc["lyapunov, energy_price=0.0", "run"] == "2 run(s)"


def test_accuracy_is_averaged_over_the_energy_every_curve_covers(results, tmp_path):
    # first evaluations at 0.2 / 0.3 / 0.25 / 0.25 J: the range is 0.3 J to the common 0.6 J
    table = write_report([str(results)], tmp_path / "out")[0]
    np.testing.assert_allclose(table["energy_from_j"], 0.3)
    runs = table[table["row"] == "run"].set_index(["policy", "seed"])["accuracy_over_energy"]
    # lyapunov s1: accuracy = energy on 0.2..0.6 J, so its mean over 0.3..0.6 J is 0.45
    assert runs[("lyapunov", 1)] == pytest.approx(0.45)
    # lyapunov s2: 0.3 J 0.3 → 0.5 J 0.5 → 0.6 J 0.8: areas 0.2·0.4 + 0.1·0.65 over 0.3 J
    assert runs[("lyapunov", 2)] == pytest.approx((0.2 * 0.4 + 0.1 * 0.65) / 0.3)
    # random-k s1: 0.25 J 0.1 → 0.5 J 0.3 → 0.75 J 0.5: 0.3 J is at 0.14, 0.6 J at 0.38
    assert runs[("random-k", 1)] == pytest.approx((0.2 * (0.14 + 0.3) / 2 + 0.1 * (0.3 + 0.38) / 2) / 0.3)


def test_a_run_first_evaluated_past_the_common_energy_is_flagged(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "git_commit", lambda: None)
    accuracy, energy = RUNS["random-k", 1]
    monkeypatch.setitem(RUNS, ("random-k", 1), ([np.nan, np.nan, accuracy[2]], energy))
    for policy, seed in RUNS:
        write_run(tmp_path / "results", policy, seed)
    table = write_report([str(tmp_path / "results")], tmp_path / "out")[0]
    runs = table[table["row"] == "run"].set_index(["policy", "seed"])
    # random-k s1 is first evaluated after round 2, at (0.5 + 0.5 + 0.5) J over 2 devices; the common
    # energy is still 0.6 J, so its accuracy there is read at 0.75 J
    assert runs.loc[("random-k", 1), "first_evaluation_energy_j"] == pytest.approx(0.75)
    assert runs.loc[("lyapunov", 2), "first_evaluation_energy_j"] == pytest.approx(0.3)
    assert runs.loc[("random-k", 1), "accuracy_at_common_energy"] == pytest.approx(0.5)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "results"), "--out", str(tmp_path / "o")],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "note: 1 run(s) (random-k) had spent more than the common energy (0.600 J per device) by their " \
           "first evaluation" in result.output


def test_what_papers_report_per_run_by_hand(results, tmp_path):
    table = write_report([str(results)], tmp_path / "out", target=0.4)[0]
    runs = table[table["row"] == "run"].set_index(["policy", "seed"])
    first = runs.loc[("lyapunov", 1)]
    # 1.2 J spent in all, 5 of 6 scheduled updates arrived
    assert first["energy_per_delivered_update_j"] == pytest.approx(1.2 / 5)
    assert first["late_or_lost_share"] == pytest.approx(1 / 6)
    # every device-round scheduled: the mean of 10 and 20 dB; device 0 uploads 1 s, device 1 2 s
    assert first["scheduled_snr_db"] == pytest.approx(15.0)
    assert first["uplink_transfer_s"] == pytest.approx(1.5)
    # random-k seed 1 schedules device 0, then 1, then 0
    assert runs.loc[("random-k", 1), "scheduled_snr_db"] == pytest.approx(40.0 / 3)
    # 0.4 is first reached in round 1, which ends at 10 + 6 s, after 0.2 + 0.2 J per device
    assert first["time_to_target_s"] == pytest.approx(16.0)
    assert first["energy_to_target_j"] == pytest.approx(0.4)
    # random-k seed 2 reaches 0.3 in round 1 and 0.55 in round 2: 0.4 only in round 2, at 20 + 7 s
    assert runs.loc[("random-k", 2), "time_to_target_s"] == pytest.approx(27.0)
    assert np.isnan(runs.loc[("random-k", 1), "downlink_transfer_s"])  # not in these tables
    means = table[table["row"] == "mean"].set_index("policy")
    assert means.loc["lyapunov", "reached_target"] == 2 and means.loc["lyapunov", "target_accuracy"] == 0.4
    never = write_report([str(results)], tmp_path / "never", target=0.9)[0]
    assert never[never["row"] == "mean"]["reached_target"].tolist() == [0, 0]
    assert never[never["row"] == "run"]["time_to_target_s"].isna().all()



def test_groups_are_compared_seed_by_seed_against_one(results, tmp_path):
    table, _, _, paired = write_report([str(results)], tmp_path / "out", against="lyapunov")
    assert (tmp_path / "out" / "paired.csv").is_file()
    row = paired.set_index(["group", "metric"]).loc[("random-k", "final_accuracy")]
    # random-k minus lyapunov at the last round: seed 1 0.5 - 0.6, seed 2 0.55 - 0.8
    interval = stats.ttest_rel([0.5, 0.55], [0.6, 0.8]).confidence_interval(0.95)
    assert row["difference"] == pytest.approx(-0.175)
    assert row["difference_ci95"] == pytest.approx((interval.high - interval.low) / 2)
    assert (row["seeds"], row["higher"], row["lower"]) == (2, 0, 2)
    energy = paired.set_index(["group", "metric"]).loc[("random-k", "energy_per_device_round_j")]
    runs = table[table["row"] == "run"].set_index(["policy", "seed"])["energy_per_device_round_j"]
    by_hand = np.mean([runs["random-k", s] - runs["lyapunov", s] for s in (1, 2)])
    assert energy["difference"] == pytest.approx(by_hand)
    assert set(paired["group"]) == {"random-k"}  # the reference is not compared with itself


def test_causal_lm_runs_are_reported_and_paired_by_their_perplexity(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "git_commit", lambda: None)
    for policy, seed in RUNS:
        write_run(tmp_path / "results", policy, seed, metric="perplexity")
    table, _, _, paired = write_report([str(tmp_path / "results")], tmp_path / "out", against="lyapunov")
    runs = table[table["row"] == "run"].set_index(["policy", "seed"])
    assert runs.loc[("lyapunov", 2), "final_perplexity"] == 0.8 and runs["final_accuracy"].isna().all()
    assert runs.loc[("lyapunov", 2), "first_evaluation_energy_j"] == pytest.approx(0.3)  # its round 0
    row = paired.set_index(["group", "metric"]).loc[("random-k", "final_perplexity")]
    assert row["difference"] == pytest.approx(-0.175) and (row["higher"], row["lower"]) == (0, 2)
    assert "final_accuracy" not in set(paired["metric"])  # a metric no run has is not paired


def test_causal_lm_runs_are_drawn_by_their_perplexity(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "git_commit", lambda: None)
    for policy, seed in RUNS:
        write_run(tmp_path / "results", policy, seed, metric="perplexity")
    close = plt.close
    close("all")
    monkeypatch.setattr(plt, "close", lambda fig: None)  # keep the figure to read it back
    write_report([str(tmp_path / "results")], tmp_path / "out")
    quality, _, trade = plt.gcf().axes[:3]
    assert quality.get_ylabel() == trade.get_ylabel() == "test perplexity"
    lyapunov = quality.get_lines()[0]  # groups in order: lyapunov first, its mean over seeds 1 and 2
    np.testing.assert_allclose(lyapunov.get_ydata(), [0.25, 0.45, 0.7])
    close("all")


def test_an_unknown_reference_group_lists_the_groups(results, tmp_path):
    listed = r"'lyapunov-fast' is not a group of these runs; they are: 'lyapunov'; 'random-k'"
    with pytest.raises(CannotPair, match=listed):
        write_report([str(results)], tmp_path / "out", against="lyapunov-fast")
    result = CliRunner().invoke(app, ["report", str(results), "--against", "nobody",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "is not a group of these runs" in result.output
    with pytest.raises(CannotPair, match="one run per seed"):
        write_report([str(results)], tmp_path / "out", by=("seed",), against="1")
