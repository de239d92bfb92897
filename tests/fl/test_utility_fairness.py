"""The market's requirements on the default utility, shown on digits with a Dir(0.3) split.

Ten trainers (five honest; one free rider, one Gaussian-noise, one label-flipping, one
sign-flipping and one x10-scaling trainer), an MLP, eight market rounds, three seeds (the roles
rotate with the seed), one validator with 300 held-out samples; the global model is the FedAvg of
the updates scored > 0, as the market's aggregator publishes it. Both the seed protocol's
learning rate and a 10x larger one.
"""

from __future__ import annotations

import json

import pytest

from fedmarket.bench.fairness import FairnessConfig, run
from fedmarket.fl.utility import DEFAULT_UTILITY


@pytest.mark.slow
@pytest.mark.parametrize("lr", [0.05, 0.005])
def test_default_utility_pays_honest_trainers_and_no_attacker(lr: float) -> None:
    config = FairnessConfig(lr=lr, rounds=8, seeds=(0, 1, 2), clients=10, utilities=(DEFAULT_UTILITY,))
    summary = run(config)["utilities"][DEFAULT_UTILITY]
    roles = summary["roles"]
    scores = {role: [s for run_ in summary["runs"] for round_scores in run_["scores"]
                     for r, s in zip(run_["roles"], round_scores) if r == role] for role in roles}
    assert len(scores["honest"]) == 3 * 8 * 5
    assert min(scores["honest"]) > 0, "every honest non-IID trainer is paid"
    assert set(scores["free_ride"]) == {0.0}, "a free rider scores exactly 0"
    assert roles["gaussian_noise"]["pool_share"] + roles["label_flip"]["pool_share"] <= 0.01, \
        "noise and label flipping together take at most 1 % of the trainer pool"
    assert max(scores["gaussian_noise"]) <= 0
    assert max(scores["sign_flip"]) < 0, "sign-flipped updates are bad-slashed at a poison threshold of 0"
    assert max(scores["scale"]) < 0, "x10-scaled updates are bad-slashed at a poison threshold of 0"
    assert roles["honest"]["pool_share"] >= 0.99
    assert summary["meets_requirements"]


def test_bench_fairness_command_writes_json_and_markdown(tmp_path) -> None:
    from typer.testing import CliRunner

    from fedmarket.cli.bench_cmd import bench_app as app

    result = CliRunner().invoke(app, ["fairness", "--rounds", "1", "--seeds", "0", "--scenarios", "linear:0.05", "--clients", "10",
                                      "--validators", "1", "--partitions", "dir:0.3,pat:2",
                                      "--utilities", "loss_delta,loo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "fairness.json").read_text())
    assert [s["settings"]["partition"] for s in report["scenarios"]] == ["dir:0.3", "pat:2"]
    scenario = report["scenarios"][0]
    assert set(scenario["utilities"]) == {"loss_delta", "loo"}
    assert set(scenario["utilities"]["loo"]["checks"]) == {"attackers_at_most_0_5pct", "poisoners_slashed_most_rounds",
                                                         "honest_at_least_95pct", "accuracy_within_2pts", "spearman_at_least_0_9"}
    assert scenario["settings"]["arch"] == "linear"
    assert "| utility | honest |" in (tmp_path / "fairness.md").read_text()
    unknown = CliRunner().invoke(app, ["fairness", "--attacks", "bribe", "--out", str(tmp_path)])
    assert unknown.exit_code != 0 and "unknown attack" in unknown.output
    bad = CliRunner().invoke(app, ["fairness", "--scenarios", "mlp", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "MODEL:LR" in bad.output
