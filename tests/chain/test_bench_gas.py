"""`fedmarket bench gas` end to end on the embedded chain, small: 4 trainers, committee 3 of 6
validators, its three measured rounds with the committee's commit-reveal (commitScores,
revealScores, commitVote, revealVote; the last revealVote closes rounds 1 and 3, closeRound
round 2), the report and its markdown."""

from __future__ import annotations

import pytest

from fedmarket.bench import gas

TRAINERS, COMMITTEE = 4, 3
VALIDATORS = 2 * COMMITTEE
ROUNDS = (gas.FIRST, gas.DEADLINE, gas.STEADY)

EXPECTED_CALLS = {
    "newModel": 1,
    "payForModel": 1,
    "buyLicense": TRAINERS,
    "joinAsTrainer": TRAINERS,
    "joinAsValidator": VALIDATORS,
    "joinAsAggregator": 1,
    "startTraining": 1,
    "commitUpdate": 3 * TRAINERS,
    "revealUpdate": 3 * TRAINERS,
    "commitScores": 3 * COMMITTEE,
    "revealScores": 3 * COMMITTEE,
    "publishGlobalModel": 3,
    "commitVote": 3 * COMMITTEE,
    "revealVote": 3 * (COMMITTEE - 1),  # the last member's reveal is recorded apart (closing) or never sent (round 2)
    gas.CLOSING_VOTE: 2,  # rounds 1 and 3
    "closeRound": 1,  # round 2: one member committed its vote and never revealed it
    "finalizeContract (owner, early)": 1,
    "generateTrainingPayments": 1,
    "withdraw": 1,
    "cancelModel": 1,
}


@pytest.fixture(scope="module")
def report() -> dict:
    return gas.run(TRAINERS, COMMITTEE, [TRAINERS], worst_case=False)


def test_every_transaction_kind_is_recorded_with_gas(report: dict) -> None:
    functions = report["main"]["functions"]
    assert {name: v["calls"] for name, v in functions.items()} == EXPECTED_CALLS
    for name, v in functions.items():
        assert 0 < v["min"] <= v["mean"] <= v["max"], (name, v)
        assert v["max"] > 21_000, (name, v)  # every call is a transaction that did some work
    assert report["main"]["deploy"] > 0


def test_per_trainer_is_the_sum_of_its_parts(report: dict) -> None:
    rounds = report["main"]["rounds"]
    assert set(rounds) == set(ROUNDS)
    for rnd in ROUNDS:
        r = rounds[rnd]
        assert r["closed_by"] == ("closeRound" if rnd == gas.DEADLINE else gas.CLOSING_VOTE)
        shared = (
            COMMITTEE * (r["score_commit_per_member"] + r["score_reveal_per_member"] + r["vote_commit_per_member"])
            + r["publish"]
            + r["vote_reveals"]
            + r["closing"]
        )
        # The per-member means are rounded: at most 0.5 gas each, 3 of them per member.
        assert abs(shared - r["shared_per_trainer"] * TRAINERS) <= 3 * COMMITTEE + TRAINERS, (rnd, r)
        assert abs(r["per_trainer"] - (r["commit"] + r["reveal"] + r["shared_per_trainer"])) <= 2, (rnd, r)
        # The breakdown's parts add up to the total (each part rounded).
        assert set(r["breakdown"]) >= {"commitUpdate", "revealUpdate", "commitScores (share)", "revealScores (share)", "commitVote (share)"}
        assert abs(sum(r["breakdown"].values()) - r["per_trainer"]) <= len(r["breakdown"]), (rnd, r)
        for part, value in r["breakdown"].items():
            assert value > 0, (rnd, part)
        # Every transaction of the round is in the per-trainer figure: N trainers pay the round's total.
        assert abs(r["per_trainer"] * TRAINERS - r["round_total"]) <= TRAINERS, (rnd, r)


def test_report_and_markdown_name_the_commit_reveal_calls(report: dict) -> None:
    (row,) = report["scaling"]
    steady = report["main"]["rounds"][gas.STEADY]
    assert row["per_trainer_steady"] == steady["per_trainer"] == report["per_trainer_per_round"]["steady"]
    for key in ("commitScores", "revealScores", "commitVote", "revealVote_closing", "closeRound"):
        assert row[key] > 0, key
    markdown = gas.to_markdown(report)
    for name in ("commitScores", "revealScores", "commitVote", "revealVote", gas.CLOSING_VOTE, "closeRound"):
        assert f"| {name} |" in markdown, name
    assert "submitScores" not in markdown and "confirmGlobalModel" not in markdown
    assert f"**{steady['per_trainer']:,}**" in markdown
