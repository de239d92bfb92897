"""Settlement corner cases (docs/protocol.md, "Settlement of round r"): poison, slash caps,
rejection majority, nobody eligible, P == 0, budgets of the last round."""

from __future__ import annotations

from contract_helpers import DEFAULT_REWARD, ROLE, SLASH, WINDOW


def accrued(events, receipt):
    return {(e["participant"], e["role"]): e["amount"] for e in events(receipt, "RewardAccrued")}


def test_poisoned_update_is_bad_slashed_and_its_stake_is_burned(actors, flow, events, ready_task):
    """Median -600_000 < threshold -500_000: 50 % of 10_000 slashed and burned (a verdict slash: a
    colluding majority picks the positive trainers, so it must not reach them)."""
    task = ready_task(rounds=1)
    a, b, c = actors.trainers[:3]
    receipt = flow.play_round(task, 1, [a, b, c], scores=[300_000, 100_000, -600_000])
    assert events(receipt, "Slashed") == [{"modelId": task, "round": 1, "participant": c, "reason": SLASH["Poison"], "amount": 5_000}]
    assert events(receipt, "CarryBurned") == [{"modelId": task, "amount": 5_000}]
    # B = W (one round) = 1_000_003: T = 700_002, V = 200_000, A = 100_001; P = 400_000
    # A: 700_002 * 3/4 = 525_001 (525_001.5); B: 700_002 * 1/4 = 175_000 (175_000.5)
    got = accrued(events, receipt)
    assert got[(a, ROLE["Trainer"])] == 525_001 and got[(b, ROLE["Trainer"])] == 175_000
    assert (c, ROLE["Trainer"]) not in got
    (closed,) = events(receipt, "RoundClosed")
    # buyer: trainer dust 700_002 - 525_001 - 175_000 = 1; validators 200_000 / 3 -> dust 2
    assert closed["returnedToBuyer"] == 3
    assert flow.participant(task, c)["stakeRemaining"] == 5_000


def test_slashes_are_capped_at_the_stake_remaining(market, actors, flow, events, advance, ready_task):
    """Late slash of 40 % (the cap is 50 %): 4_000 in rounds 1 and 2, then only the 2_000 left in round 3."""
    task = ready_task(rounds=3, lateSlashBps=4_000)  # two commits of three trainers: a healthy round
    a, b, c = actors.trainers[:3]
    slashes = []
    for r in (1, 2, 3):
        flow.commit(task, r, a)
        flow.commit(task, r, b)  # c never commits
        advance(WINDOW + 1)
        for t in (a, b):
            flow.reveal(task, r, t)
        flow.score(task, r, dict.fromkeys(flow.committee(task, r), [1, 1]))
        flow.publish(task, r)
        receipt = flow.vote(task, r, dict.fromkeys(flow.committee(task, r), True))
        slashes.append([(e["participant"], e["amount"]) for e in events(receipt, "Slashed")])
    assert slashes == [[(c, 4_000)], [(c, 4_000)], [(c, 2_000)]]
    assert flow.participant(task, c)["stakeRemaining"] == 0 and flow.participant(task, c)["slashed"] == 10_000


def test_lateness_needs_half_of_the_trainers_committed(market, actors, flow, events, advance, ready_task):
    """Issue 11's rule: nobody is late-slashed in a round where 2 * commits < trainers (the parent
    model was likely unretrievable); from half on, every trainer that did not reveal is late, even
    when minTrainers equals the number of trainers (4 here)."""
    task = ready_task(n_trainers=4, rounds=2, minTrainers=4)
    trainers = actors.trainers[:4]
    slashed = []
    for r, committing in ((1, trainers[:1]), (2, trainers[:2])):
        for t in committing:
            flow.commit(task, r, t)
        advance(WINDOW + 1)
        for t in committing:
            flow.reveal(task, r, t)
        advance(10_000)  # nobody scores: Due
        receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0])
        slashed.append(sorted(e["participant"] for e in events(receipt, "Slashed") if e["reason"] == SLASH["Late"] and e["participant"] in trainers))
    assert slashed == [[], sorted(trainers[2:])]  # 2 * 1 < 4: nobody; 2 * 2 >= 4: the two absent


def test_rejection_needs_a_strict_majority(actors, flow, events, ready_task):
    """Committee 2: one rejection of two is not a majority (1 * 2 > 2 is false), so the aggregator
    is not slashed; one approval of two is not one either (issue 10 item 9), so the proposal is
    not accepted and the aggregator is not paid."""
    task = ready_task(n_validators=2, rounds=1)
    trainers = actors.trainers[:3]
    flow.to_phase(task, 1, trainers, "VoteCommit")
    m1, m2 = flow.committee(task, 1)
    receipt = flow.vote(task, 1, {m1: False, m2: True})
    (closed,) = events(receipt, "RoundClosed")
    assert closed["accepted"] is False and events(receipt, "Slashed") == []
    assert (actors.aggregator, ROLE["Aggregator"]) not in accrued(events, receipt)


def test_nobody_scores(market, actors, flow, events, advance, ready_task):
    """Nobody scores: every utility is 0, Publish is skipped, the committee is late. With P == 0
    and updates revealed, the trainers' share and every slash go to the trainer carry (burned after
    the last round), never to the buyer; the validators' and the aggregator's shares return to it."""
    task = ready_task(rounds=1)
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    advance(WINDOW + 1)
    receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0])
    committee = flow.committee(task, 1)
    assert [(e["participant"], e["reason"], e["amount"]) for e in events(receipt, "Slashed")] == [(m, SLASH["Late"], 2_000) for m in committee]
    assert events(receipt, "RewardAccrued") == []
    (closed,) = events(receipt, "RoundClosed")
    assert closed["returnedToBuyer"] == DEFAULT_REWARD - 700_002 and closed["accepted"] is False
    assert market.functions.trainerCarry(task).call() == 700_002 + 3 * 2_000


def test_zero_scores_pay_no_trainer_but_pay_the_committee(market, actors, flow, events, ready_task):
    """Everyone scores 0: nothing to aggregate (aggregator not late), trainers earn nothing,
    the committee that scored earns V (nothing was proposed, so no vote was needed)."""
    task = ready_task(rounds=1)
    flow.to_phase(task, 1, actors.trainers[:3], "Publish", scores=[0, 0, 0])
    receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0])
    assert events(receipt, "Slashed") == []
    got = accrued(events, receipt)
    assert set(got) == {(m, ROLE["Validator"]) for m in flow.committee(task, 1)}
    assert set(got.values()) == {200_000 // 3}
    (closed,) = events(receipt, "RoundClosed")
    assert closed["returnedToBuyer"] == 200_000 % 3 + 100_001  # T = 700_002 is carried (revealed updates)
    assert market.functions.trainerCarry(task).call() == 700_002


def test_committee_member_that_skips_the_vote_earns_nothing(market, actors, flow, events, advance, ready_task):
    task = ready_task(rounds=1)
    flow.to_phase(task, 1, actors.trainers[:3], "VoteCommit")
    m1, m2, m3 = flow.committee(task, 1)
    receipt = flow.vote(task, 1, dict.fromkeys((m1, m2), True))  # the last of the two reveals settles
    assert [(e["participant"], e["reason"]) for e in events(receipt, "Slashed")] == [(m3, SLASH["Late"])]
    got = accrued(events, receipt)
    assert got[(m1, ROLE["Validator"])] == got[(m2, ROLE["Validator"])] == 100_000
    assert (m3, ROLE["Validator"]) not in got


def test_budgets_sum_to_the_reward(market, actors, flow, events, ready_task):
    """R = 3, W = 1_000_003: 333_334, 333_334, then the remainder 333_335."""
    task = ready_task(rounds=3)
    budgets = []
    for r in (1, 2, 3):
        receipt = flow.play_round(task, r, actors.trainers[:3])
        budgets.append(events(receipt, "RoundClosed")[0]["budget"])
    assert budgets == [333_334, 333_334, 333_335] and sum(budgets) == DEFAULT_REWARD
    assert flow.state(task)["escrow"] == 0
