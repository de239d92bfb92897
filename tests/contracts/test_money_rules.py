"""Issue 10's money rules: each attack of the outside review performed against the contract, shown
to fail or to gain nothing (to the wei), and every new revert path.

Items here: 1 (early finalize after the round's commits), 2 (licence fees held until start,
refundable), 3 (start deadline, leaving an Open task), 4 (no licence sale outside Open).
"""

from __future__ import annotations

from contract_helpers import DEFAULT_REWARD, PHASE, ROLE, START_WINDOW, STATUS

FEE, T_STAKE, V_STAKE, A_STAKE = 1_000, 10_000, 20_000, 30_000  # contract_helpers.DEFAULT_PARAMS
MAX_WINDOW = 30 * 24 * 3600


# ------------------------------------------------------------------------------ item 1


def test_item1_early_finalize_after_commits_settles_the_round(market, actors, flow, events, ready_task):
    """The owner finalizes once round 2 has its reveals, scores and proposal: round 2 still settles
    normally, its trainers are paid, and the owner gets only the rounding dust."""
    task = ready_task()
    trainers = actors.trainers[:3]
    flow.play_round(task, 1, trainers)
    flow.to_phase(task, 2, trainers, "Confirm")
    receipt = flow.tx(market.functions.finalizeContract(task), actors.owner)
    assert events(receipt, "EndRequested") == [{"modelId": task, "round": 2}]
    assert events(receipt, "ModelFinalized") == []
    assert flow.state(task)["status"] == STATUS["Training"] and flow.state(task)["endRequested"] is True
    assert flow.round(task, 2)["phase"] == PHASE["Confirm"]
    flow.tx(market.functions.finalizeContract(task), actors.owner)  # a repeat changes nothing
    assert flow.state(task)["status"] == STATUS["Training"]

    receipt = None
    for member in flow.committee(task, 2):
        receipt = flow.confirm(task, 2, member)
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
        assert events(receipt, "ParticipantLeft") == [
            {"modelId": task, "participant": trainer, "role": ROLE["None"], "stakeReturned": 0, "feeReturned": FEE}
        ]
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
        expect_revert(market.functions.newModel(make_params(startWindow=window)), actors.owner, "WindowOutOfRange", PHASE["None"], window, 1, MAX_WINDOW, value=1)


# ------------------------------------------------------------------------------ item 4


def test_item4_no_licence_sale_after_open(market, actors, expect_revert, ready_task, tx, flow):
    task = ready_task()
    expect_revert(market.functions.buyLicense(task), actors.outsiders[0], "WrongStatus", task, STATUS["Open"], STATUS["Training"], value=FEE)
    tx(market.functions.finalizeContract(task), actors.owner)
    expect_revert(market.functions.buyLicense(task), actors.outsiders[0], "WrongStatus", task, STATUS["Open"], STATUS["Finalized"], value=FEE)
