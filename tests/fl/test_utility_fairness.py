"""The market's requirements on the default utility, shown on digits with a Dir(0.3) split.

Twenty trainers, 30 % of them attacking (seed 0: free rider, momentum free rider, stale copy,
copycat, Gaussian noise, label flip; seed 1: sign flip, x10 scale, two ALIE colluders, lazy, free
rider), honest trainers with 100 % down to 20 % clean labels, an MLP, five market rounds, one
validator with 200 held-out samples; the global model is the FedAvg of the updates scored > 0, as
the market's aggregator publishes it.
"""

from __future__ import annotations

import json

import pytest

from fedmarket.bench.fairness import FairnessConfig, run
from fedmarket.fl.utility import DEFAULT_UTILITY

PUBLIC_ONLY = ("free_ride", "momentum_free_ride", "stale_copy", "copycat")


@pytest.mark.slow
def test_default_utility_pays_honest_trainers_and_nothing_for_public_information() -> None:
    config = FairnessConfig(rounds=5, seeds=(0, 1), clients=20, validators=1, utilities=(DEFAULT_UTILITY,))
    summary = run(config)["utilities"][DEFAULT_UTILITY]
    roles = summary["roles"]
    scores = {
        role: [s for run_ in summary["runs"] for round_scores in run_["scores"] for r, s in zip(run_["roles"], round_scores) if r == role] for role in roles
    }
    assert len(scores["honest"]) == 2 * 5 * 14
    assert sum(s > 0 for s in scores["honest"]) >= 0.95 * len(scores["honest"]), "honest non-IID trainers are paid"
    for role in PUBLIC_ONLY:
        assert max(scores[role]) <= 0 and roles[role]["pool_share"] == 0, f"{role} is public information"
    assert max(scores["gaussian_noise"]) <= 0
    assert max(scores["sign_flip"]) < 0, "sign-flipped updates are bad-slashed at a poison threshold of 0"
    assert max(scores["scale"]) < 0, "x10-scaled updates are bad-slashed at a poison threshold of 0"
    assert roles["honest"]["pool_share"] >= 0.9


def test_bench_fairness_command_writes_json_and_markdown(tmp_path) -> None:
    from typer.testing import CliRunner

    from fedmarket.cli.bench_cmd import bench_app as app

    result = CliRunner().invoke(
        app,
        [
            "fairness",
            "--rounds",
            "1",
            "--seeds",
            "0",
            "--scenarios",
            "linear:0.05",
            "--clients",
            "10",
            "--validators",
            "1",
            "--partitions",
            "dir:0.3,pat:2",
            "--utilities",
            "loss_delta,loo",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "fairness.json").read_text())
    assert [s["settings"]["partition"] for s in report["scenarios"]] == ["dir:0.3", "pat:2"]
    scenario = report["scenarios"][0]
    assert set(scenario["utilities"]) == {"loss_delta", "loo"}
    assert set(scenario["utilities"]["loo"]["checks"]) == {
        "attackers_at_most_0_5pct",
        "poisoners_slashed_most_rounds",
        "honest_at_least_95pct",
        "accuracy_within_2pts",
        "spearman_at_least_0_9",
    }
    assert scenario["settings"]["arch"] == "linear"
    assert "| utility | honest |" in (tmp_path / "fairness.md").read_text()
    unknown = CliRunner().invoke(app, ["fairness", "--attacks", "bribe", "--out", str(tmp_path)])
    assert unknown.exit_code != 0 and "unknown attack" in unknown.output
    bad = CliRunner().invoke(app, ["fairness", "--scenarios", "mlp", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "MODEL:LR" in bad.output


def test_poison_slash_needs_two_thirds_of_every_committee_seat() -> None:
    """The contract's rule (RoundSettlement._slashTrainers) as bench fairness applies it, micro-units, threshold -100,000."""
    from fedmarket.chain.protocol import poison_slashed

    low, high, t = -200_000, 500_000, -100_000
    assert poison_slashed([low, low, high], 3, t)  # 2 of 3 seats: 6 >= 6
    assert not poison_slashed([low, high, high], 3, t)  # utility above the threshold
    assert not poison_slashed([low, low, high, high], 4, t)  # lower median below, but 2 of 4 seats: 6 < 8
    assert poison_slashed([low, low, low], 4, t)  # one seat silent: 3 of 4, 9 >= 8
    assert not poison_slashed([low, low, low], 5, t)  # quorum, utility below, but 3 of 5 seats: 9 < 10
    assert not poison_slashed([low], 3, t)  # no quorum: utility 0
    assert not poison_slashed([t, t, t], 3, t)  # at the threshold is not below it


def test_a_pool_nobody_earned_is_carried_to_the_next_round() -> None:
    from fedmarket.bench.fairness import settle_pool

    assert settle_pool([0.0, -0.5], 0.0) == ([0.0, 0.0], 1.0)
    assert settle_pool([0.0, 0.0], 1.0) == ([0.0, 0.0], 2.0)
    paid, carried = settle_pool([0.3, 0.1, -1.0], 2.0)
    assert paid == pytest.approx([2.25, 0.75, 0.0]) and carried == 0.0


def test_the_winner_pays_honest_trainers_most_then_attackers_least_then_meets_most_targets() -> None:
    from fedmarket.bench.fairness_report import overall_winner, winner

    def summary(honest: float, attackers: list[float], met: int) -> dict:
        roles = {"honest": {"pool_share": honest}} | {f"attack{k}": {"pool_share": a} for k, a in enumerate(attackers)}
        return {"roles": roles, "checks": {f"t{k}": k < met for k in range(5)}}

    # The last run's case: more targets met (accuracy) does not outrank a larger honest share.
    assert winner({"weighted_loss_delta": summary(0.86, [0.141], 2), "novel_separation": summary(0.94, [0.062], 1)}) == "novel_separation"
    assert winner({"a": summary(0.9, [0.05, 0.05], 5), "b": summary(0.9, [0.02, 0.01], 0)}) == "b"
    assert winner({"a": summary(0.9, [0.1], 1), "b": summary(0.9, [0.1], 2)}) == "b"
    scenarios = [
        {"utilities": {"a": summary(0.99, [0.01], 0), "b": summary(0.9, [0.0], 5)}},
        {"utilities": {"a": summary(0.9, [0.1], 0), "b": summary(0.95, [0.0], 5)}},
    ]
    assert overall_winner(scenarios) == "a"  # mean honest share 0.945 against 0.925
