"""Issue 10's money rules: each attack of the outside review performed against the contract, shown
to fail or to gain nothing (to the wei), and every new revert path.

Items here: 1 (early finalize after the round's commits), 2 (licence fees held until start,
refundable), 3 (start deadline, leaving an Open task), 4 (no licence sale outside Open),
6 (clamped scores, lower median, quorum), 9 (a positive majority accepts), 10 (maxSamples).
"""

from __future__ import annotations

import pytest
from contract_helpers import DEFAULT_REWARD, PHASE, ROLE, START_WINDOW, STATUS, salt_of, update_digest

from fedmarket.chain.deploy import MARKETPLACE_GAS_LIMITS

FEE, T_STAKE, V_STAKE, A_STAKE = 1_000, 10_000, 20_000, 30_000  # contract_helpers.DEFAULT_PARAMS
MAX_WINDOW = 30 * 24 * 3600


# ------------------------------------------------------------------------------ item 1


def test_item1_early_finalize_after_commits_settles_the_round(market, actors, flow, events, ready_task):
    """The owner finalizes once round 2 has its reveals, scores and proposal: round 2 still settles
    normally, its trainers are paid, and the owner gets only the rounding dust."""
    task = ready_task()
    trainers = actors.trainers[:3]
    flow.play_round(task, 1, trainers)
    flow.to_phase(task, 2, trainers, "VoteCommit")
    receipt = flow.tx(market.functions.finalizeContract(task), actors.owner)
    assert events(receipt, "EndRequested") == [{"modelId": task, "round": 2}]
    assert events(receipt, "ModelFinalized") == []
    assert flow.state(task)["status"] == STATUS["Training"] and flow.state(task)["endRequested"] is True
    assert flow.round(task, 2)["phase"] == PHASE["VoteCommit"]
    flow.tx(market.functions.finalizeContract(task), actors.owner)  # a repeat changes nothing
    assert flow.state(task)["status"] == STATUS["Training"]

    receipt = None
    receipt = flow.vote(task, 2, dict.fromkeys(flow.committee(task, 2), True))
    assert events(receipt, "ModelFinalized") == [{"modelId": task, "roundsClosed": 2, "unspentEscrow": 0}]
    # budget 2 = 1,000,003 - 500,001 = 500,002: T 350,001 (116,667 each), V 100,000 (33,333 each, 1 dust), A 50,001
    trainer_pay = [e["amount"] for e in events(receipt, "RewardAccrued") if e["role"] == ROLE["Trainer"]]
    assert trainer_pay == [116_667] * 3
    (closed,) = events(receipt, "RoundClosed")
    assert (closed["budget"], closed["returnedToBuyer"]) == (500_002, 1)
    receipt = flow.tx(market.functions.generateTrainingPayments(task), actors.outsiders[0])
    # round 1 returned 2 (T dust) + 1 (V dust): the owner's whole return is 4 wei, not round 2's budget
    assert [e["amount"] for e in events(receipt, "ModelBuyerReturnPayment")] == [4]
    assert [e["earned"] for e in events(receipt, "ContributionPayment")] == [116_666 + 116_667] * 3


def test_item1_early_finalize_before_any_commit_abandons_the_round(market, actors, flow, events, ready_task):
    """Without a commit in the open round nobody worked for it: the task ends at once."""
    task = ready_task()
    receipt = flow.tx(market.functions.finalizeContract(task), actors.owner)
    assert events(receipt, "ModelFinalized") == [{"modelId": task, "roundsClosed": 0, "unspentEscrow": DEFAULT_REWARD}]


# ------------------------------------------------------------------------------ item 2


def test_item2_sell_licences_then_cancel_keeps_nothing(market, actors, tx, events, ready_task):
    """Sell three licences, cancel: the owner is credited its escrow only; each fee goes back."""
    task = ready_task(start=False)
    tx(market.functions.cancelModel(task), actors.owner)
    assert market.functions.credit(actors.owner).call() == DEFAULT_REWARD
    for trainer in actors.trainers[:3]:
        receipt = tx(market.functions.leaveModel(task), trainer)
        assert events(receipt, "ParticipantLeft") == [{"modelId": task, "participant": trainer, "role": ROLE["None"], "stakeReturned": 0, "feeReturned": FEE}]
        assert market.functions.credit(trainer).call() == T_STAKE + FEE
    assert market.functions.taskBalance(task).call() == 0


def test_item2_fees_credited_at_start(market, actors, tx, events, ready_task, flow):
    task = ready_task(start=False)
    assert market.functions.taskBalance(task).call() == DEFAULT_REWARD + 3 * (FEE + T_STAKE) + 3 * V_STAKE + A_STAKE
    receipt = tx(market.functions.startTraining(task), actors.owner)
    assert events(receipt, "LicenseIncomeCredited") == [{"modelId": task, "owner": actors.owner, "amount": 3 * FEE}]
    assert market.functions.credit(actors.owner).call() == 3 * FEE
    assert (flow.state(task)["licenseIncome"], flow.state(task)["licenseHeld"]) == (3 * FEE, 0)


# ------------------------------------------------------------------------------ item 3


def test_item3_anyone_cancels_past_the_start_deadline(market, actors, tx, expect_revert, ready_task, flow, set_time):
    task = ready_task(start=False)
    deadline = flow.state(task)["startDeadline"]
    outsider = actors.outsiders[0]
    set_time(deadline)
    expect_revert(market.functions.cancelModel(task), outsider, "NotOwner", task, outsider)
    set_time(deadline + 1)
    tx(market.functions.cancelModel(task), outsider)
    assert flow.state(task)["status"] == STATUS["Cancelled"]
    assert market.functions.credit(actors.trainers[0]).call() == T_STAKE
    assert market.functions.credit(actors.owner).call() == DEFAULT_REWARD
    assert market.functions.credit(outsider).call() == 0


def test_item3_start_after_deadline_reverts(market, actors, expect_revert, ready_task, flow, set_time):
    task = ready_task(start=False)
    deadline = flow.state(task)["startDeadline"]
    set_time(deadline + 1)
    expect_revert(market.functions.startTraining(task), actors.owner, "StartDeadlinePassed", task, deadline)


def test_item3_start_deadline_is_post_time_plus_window(market, actors, tx, post_task, flow, now):
    task = post_task()
    assert flow.state(task)["startDeadline"] == now() + START_WINDOW


def test_item3_trainer_leaves_with_stake_and_fee(market, actors, tx, events, ready_task, flow):
    task = ready_task(start=False)
    first, second, last = actors.trainers[:3]
    receipt = tx(market.functions.leaveModel(task), first)
    assert events(receipt, "ParticipantLeft") == [
        {"modelId": task, "participant": first, "role": ROLE["Trainer"], "stakeReturned": T_STAKE, "feeReturned": FEE}
    ]
    assert market.functions.credit(first).call() == T_STAKE + FEE
    assert receipt["gasUsed"] <= MARKETPLACE_GAS_LIMITS["leaveModel"]
    assert market.functions.trainers(task).call() == [last, second]  # the last joiner took the seat
    assert flow.participant(task, first) == {"role": ROLE["None"], "stakeRemaining": 0, "earned": 0, "slashed": 0, "licensed": False}
    assert flow.state(task)["trainerCount"] == 2
    assert market.functions.taskBalance(task).call() == DEFAULT_REWARD + 2 * (FEE + T_STAKE) + 3 * V_STAKE + A_STAKE
    tx(market.functions.leaveModel(task), second)
    tx(market.functions.leaveModel(task), last)
    assert market.functions.trainers(task).call() == []


def test_item3_validator_aggregator_and_licensee_leave(market, actors, tx, events, ready_task, flow):
    task = ready_task(start=False)
    tx(market.functions.leaveModel(task), actors.validators[1])
    assert market.functions.validators(task).call() == [actors.validators[0], actors.validators[2]]
    assert market.functions.credit(actors.validators[1]).call() == V_STAKE
    receipt = tx(market.functions.leaveModel(task), actors.aggregator)
    assert events(receipt, "ParticipantLeft")[0]["stakeReturned"] == A_STAKE
    assert flow.state(task)["aggregatorJoined"] is False
    licensee = actors.outsiders[1]
    tx(market.functions.buyLicense(task), licensee, value=FEE)
    tx(market.functions.leaveModel(task), licensee)
    assert market.functions.credit(licensee).call() == FEE
    tx(market.functions.joinAsAggregator(task), actors.aggregator, value=A_STAKE)  # may come back


def test_item3_leave_reverts(market, actors, expect_revert, post_task, ready_task, tx):
    task = post_task()
    outsider = actors.outsiders[0]
    expect_revert(market.functions.leaveModel(task), outsider, "NothingToLeave", task, outsider)
    started = ready_task()
    expect_revert(market.functions.leaveModel(started), actors.trainers[0], "WrongStatus", started, STATUS["Open"], STATUS["Training"])
    expect_revert(market.functions.leaveModel(77), outsider, "UnknownModel", 77)
    cancelled = ready_task(start=False)
    tx(market.functions.cancelModel(cancelled), actors.owner)
    tx(market.functions.leaveModel(cancelled), actors.trainers[0])
    expect_revert(market.functions.leaveModel(cancelled), actors.trainers[0], "NothingToLeave", cancelled, actors.trainers[0])
    expect_revert(market.functions.leaveModel(cancelled), actors.validators[0], "NothingToLeave", cancelled, actors.validators[0])


def test_item3_start_window_out_of_range(market, actors, expect_revert, make_params):
    for window in (0, MAX_WINDOW + 1):
        expect_revert(
            market.functions.newModel(make_params(startWindow=window)), actors.owner, "WindowOutOfRange", PHASE["None"], window, 1, MAX_WINDOW, value=1
        )


# ------------------------------------------------------------------------------ item 4


def test_item4_no_licence_sale_after_open(market, actors, expect_revert, ready_task, tx, flow):
    task = ready_task()
    expect_revert(market.functions.buyLicense(task), actors.outsiders[0], "WrongStatus", task, STATUS["Open"], STATUS["Training"], value=FEE)
    tx(market.functions.finalizeContract(task), actors.owner)
    expect_revert(market.functions.buyLicense(task), actors.outsiders[0], "WrongStatus", task, STATUS["Open"], STATUS["Finalized"], value=FEE)


# ------------------------------------------------------------------------------ item 6


def test_item6_one_member_cannot_set_the_utilities(market, actors, flow, events, advance, ready_task):
    """Committee 3, one member absent: the other dishonest one scores its ally +4.6e18. The score
    is clamped to MAX_SCORE and the utility is the lower median, a submitted score: the ally gets
    the honest member's score, and the three trainers split the pool as the honest member scored."""
    task = ready_task(rounds=1)
    trainers = actors.trainers[:3]
    flow.to_phase(task, 1, trainers, "ScoreCommit")
    liar, honest, _absent = flow.committee(task, 1)
    flow.score(task, 1, {liar: [4_600_000_000_000_000_000, 300_000, 300_000], honest: [100_000, 300_000, 300_000]})
    assert market.functions.utilities(task, 1).call() == [100_000, 300_000, 300_000]
    assert market.functions.scoresOf(task, 1, liar).call()[1][0] == 10**9
    flow.publish(task, 1)
    receipt = flow.vote(task, 1, dict.fromkeys(flow.committee(task, 1), True))
    # T = 1,000,003 * 0.7 = 700,002; P = 700,000: 100,000 -> 100,000; 300,000 -> 300,001 each (dust 0)
    pay = {e["participant"]: e["amount"] for e in events(receipt, "RewardAccrued") if e["role"] == ROLE["Trainer"]}
    # the absent member's late slash (10 % of 20,000) is shared by utility too; the liar's
    # Disagreed slash (its clamped 1e9 is far from the median) is a verdict slash: burned
    absent_slash = 2_000
    assert events(receipt, "CarryBurned") == [{"modelId": task, "amount": 2_000}]
    assert pay == {
        trainers[0]: 700_002 * 100_000 // 700_000 + absent_slash * 100_000 // 700_000,
        trainers[1]: 700_002 * 300_000 // 700_000 + absent_slash * 300_000 // 700_000,
        trainers[2]: 700_002 * 300_000 // 700_000 + absent_slash * 300_000 // 700_000,
    }


def test_item6_no_quorum_neither_pays_nor_slashes(market, actors, flow, events, advance, ready_task):
    """One score of a committee of 3 is no quorum: every utility is 0, Publish is skipped, nobody
    revealed is paid or poison-slashed (only the two silent members are late)."""
    task = ready_task(rounds=1)
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    c = flow.committee(task, 1)
    flow.score(task, 1, {c[0]: [-1_000_000, -1_000_000, 500_000]})
    assert market.functions.utilities(task, 1).call() == [0, 0, 0]
    advance(100 + 1)
    receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0])
    assert [(e["participant"], e["reason"]) for e in events(receipt, "Slashed")] == [(c[1], 0), (c[2], 0)]
    assert [e for e in events(receipt, "RewardAccrued") if e["role"] == ROLE["Trainer"]] == []


# ------------------------------------------------------------------------------ item 9


def test_item9_silence_approves_nothing(market, actors, flow, events, ready_task):
    """1 reject, 0 approvals, 2 silent: the bogus proposal does not become the global model and
    the aggregator is not paid (its 100,000 wei share returns to the buyer) nor slashed."""
    task = ready_task(rounds=1)
    flow.to_phase(task, 1, actors.trainers[:3], "VoteCommit")
    before = flow.state(task)["globalModelDigest"]
    member = flow.committee(task, 1)[0]
    flow.commit_vote(task, 1, member, ok=False)
    flow.w3.provider.ethereum_tester.time_travel(flow.round(task)["phaseDeadline"] + 1)
    receipt = flow.reveal_vote(task, 1, member, ok=False)  # the only commitment: its reveal settles the round
    (closed,) = events(receipt, "RoundClosed")
    assert closed["accepted"] is False and closed["globalModelDigest"] == before
    assert [e for e in events(receipt, "RewardAccrued") if e["role"] == ROLE["Aggregator"]] == []
    assert [e["participant"] for e in events(receipt, "Slashed")] == flow.committee(task, 1)[1:]  # the silent two: late
    # A = 1,000,003 - 700,002 - 200,000 = 100,001 returns; V = 200,000 goes to the one member that
    # scored and voted; T = 700,002 splits evenly (no dust); the slashes 2 * 2,000 split 1,333 each,
    # 1 wei of dust, which stays in the trainer carry: the buyer gets 100,001
    assert closed["returnedToBuyer"] == 100_001
    assert market.functions.trainerCarry(task).call() == 1


def test_item9_majority_accepts(market, actors, flow, events, ready_task):
    task = ready_task(rounds=1)
    receipt = flow.play_round(task, 1, actors.trainers[:3])
    assert events(receipt, "RoundClosed")[0]["accepted"] is True


# ------------------------------------------------------------------------------ item 10


def test_item10_sample_count_bounded_by_the_task(market, actors, flow, tx, expect_revert, ready_task):
    """2^63 samples made FedAvg one trainer's update; the task's maxSamples refuses it at reveal."""
    task = ready_task(maxSamples=60_000)
    trainer = actors.trainers[0]
    flow.commit(task, 1, trainer, samples=2**63)
    for other in actors.trainers[1:3]:
        flow.commit(task, 1, other, samples=60_000)
    expect_revert(market.functions.revealUpdate(task, 1, update_digest(trainer, 1, ""), 2**63, salt_of(trainer, 1)), trainer, "TooManySamples", 2**63, 60_000)
    flow.reveal(task, 1, actors.trainers[1], samples=60_000)  # at the bound: accepted


def test_item10_zero_max_samples_refused(market, actors, expect_revert, make_params):
    expect_revert(market.functions.newModel(make_params(maxSamples=0)), actors.owner, "ZeroMaxSamples", value=1)


# ------------------------------------------------------------------------------ item 11


def test_item11_trap_parameters_refused(market, actors, expect_revert, make_params):
    """A late slash above half the stake, or a positive poison threshold (an update nobody scored,
    utility 0, would be poison), cannot be posted."""
    expect_revert(market.functions.newModel(make_params(lateSlashBps=5_001)), actors.owner, "LateSlashTooLarge", 5_001, 5_000, value=1)
    expect_revert(market.functions.newModel(make_params(poisonThreshold=1)), actors.owner, "PoisonThresholdPositive", 1, value=1)
    market.functions.newModel(make_params(lateSlashBps=5_000, poisonThreshold=0)).transact({"from": actors.owner, "value": 1})


def test_item11_minimum_window_per_deployment(w3, market, actors, expect_revert, make_params):
    """The dev chain's deployment accepts 1-s windows; one for a real network (minWindow 300) refuses
    them, and a minWindow outside 1 s .. 30 days cannot be deployed."""
    from fedmarket.chain.deploy import deploy_contract
    from fedmarket.chain.protocol import MIN_WINDOW_REAL_S, min_window_for
    from fedmarket.errors import FedmarketError

    assert min_window_for(w3.eth.chain_id) == 1 and min_window_for(1) == MIN_WINDOW_REAL_S
    real = deploy_contract(w3, "Marketplace", actors.deployer, MIN_WINDOW_REAL_S)
    params = make_params(commitWindow=299)
    expect_revert(real.functions.newModel(params), actors.owner, "WindowOutOfRange", PHASE["Commit"], 299, 300, MAX_WINDOW, value=1)
    with pytest.raises(FedmarketError):  # ParamsCheck's MinWindowOutOfRange(0), not in the market's ABI
        deploy_contract(w3, "Marketplace", actors.deployer, 0)
