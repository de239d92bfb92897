"""The rotating committee (docs/protocol.md, "Committee"): validators[(offset + (r - 1) * c + j) % V]."""

from __future__ import annotations

from contract_helpers import SLASH


def committees(flow, task, rounds):
    return [flow.committee(task, r) for r in range(1, rounds + 1)]


def test_consecutive_committees_disjoint_when_enough_validators(market, flow, ready_task):
    task = ready_task(n_validators=6, rounds=3)
    c1, c2, c3 = committees(flow, task, 3)
    assert len(set(c1)) == 3 and set(c1).isdisjoint(c2) and set(c2).isdisjoint(c3)
    assert set(c1) | set(c2) == set(market.functions.validators(task).call())
    assert c3 == c1  # V = 2c: the rotation has period 2


def test_rotation_formula(market, flow, ready_task):
    task = ready_task(n_validators=4, rounds=4)
    validators = market.functions.validators(task).call()
    got = committees(flow, task, 4)
    offset = validators.index(got[0][0])
    for r, committee in enumerate(got, start=1):
        assert committee == [validators[(offset + (r - 1) * 3 + j) % 4] for j in range(3)]


def test_validator_off_committee_cannot_act_and_is_not_slashed(market, actors, flow, events, expect_revert, ready_task):
    task = ready_task(n_validators=6)
    trainers = actors.trainers[:3]
    committee = flow.committee(task, 1)
    resting = [v for v in actors.validators[:6] if v not in committee]
    flow.to_phase(task, 1, trainers, "Score")
    expect_revert(market.functions.submitScores(task, 1, [1, 1, 1]), resting[0], "NotCommitteeMember", task, 1, resting[0])
    for member in committee:
        flow.score(task, 1, member, [1, 1, 1])
    flow.publish(task, 1)
    receipt = None
    for member in committee:
        receipt = flow.confirm(task, 1, member)
    assert events(receipt, "Slashed") == []
    paid = {e["participant"] for e in events(receipt, "RewardAccrued")}
    assert set(committee) <= paid and not paid & set(resting)
    assert market.functions.hasConfirmed(task, 1, resting[0]).call() == [False, False]
    assert market.functions.scoresOf(task, 1, resting[0]).call() == [False, []]


def test_member_missing_score_and_vote_is_slashed_once(market, actors, flow, events, advance, ready_task):
    task = ready_task()
    trainers = actors.trainers[:3]
    committee = flow.committee(task, 1)
    flow.to_phase(task, 1, trainers, "Score")
    for member in committee[:2]:
        flow.score(task, 1, member, [1, 1, 1])
    advance(101)  # Score ends at its deadline: Publish
    flow.publish(task, 1)
    for member in committee[:2]:
        flow.confirm(task, 1, member)
    advance(101)  # the absent member never votes: Due
    receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0])
    assert events(receipt, "Slashed") == [{"modelId": task, "round": 1, "participant": committee[2], "reason": SLASH["Late"], "amount": 2_000}]
    assert flow.participant(task, committee[2])["stakeRemaining"] == 18_000
