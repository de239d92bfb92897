"""The end of a task: finalizeContract, generateTrainingPayments, withdraw (pull payments)."""

from __future__ import annotations

import pytest
from contract_helpers import DEFAULT_REWARD, PHASE, STATUS

from fedmarket.chain.compile import _compile
from fedmarket.chain.deploy import deploy_contract

REJECTER = """
// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
/// A contract account that acts through `forward` and refuses every ether transfer to it.
contract Rejecter {
    function forward(address target, bytes calldata data) external payable {
        (bool ok, bytes memory ret) = target.call{value: msg.value}(data);
        if (!ok) assembly { revert(add(ret, 32), mload(ret)) }
    }
    receive() external payable { revert("no ether, thanks"); }
}
"""


@pytest.fixture(scope="module")
def rejecter_artifacts():
    return _compile({"tests/Rejecter.sol": REJECTER})


def finished_task(flow, actors, ready_task, rounds=1):
    task = ready_task(rounds=rounds)
    for r in range(1, rounds + 1):
        flow.play_round(task, r, actors.trainers[:3])
    return task


# ------------------------------------------------------------------------------ finalizeContract


def test_finalize_after_last_round_by_anyone(market, actors, flow, events, ready_task):
    task = finished_task(flow, actors, ready_task)
    receipt = flow.tx(market.functions.finalizeContract(task), actors.outsiders[0])
    assert events(receipt, "ModelFinalized") == [{"modelId": task, "roundsClosed": 1, "unspentEscrow": 0}]
    assert flow.state(task)["status"] == STATUS["Finalized"]


def test_finalize_early_needs_owner(market, actors, flow, expect_revert, ready_task):
    task = ready_task()
    expect_revert(market.functions.finalizeContract(task), actors.trainers[0], "NotOwner", task, actors.trainers[0])


def test_owner_stops_early(market, actors, flow, events, ready_task):
    """The owner stops before round 2's first commit: round 2 is abandoned (nobody slashed), its budget returns."""
    task = ready_task()
    trainers = actors.trainers[:3]
    flow.play_round(task, 1, trainers)
    receipt = flow.tx(market.functions.finalizeContract(task), actors.owner)
    budget2 = DEFAULT_REWARD - DEFAULT_REWARD // 2
    assert events(receipt, "ModelFinalized") == [{"modelId": task, "roundsClosed": 1, "unspentEscrow": budget2}]
    assert flow.round(task, 2)["phase"] == PHASE["None"]
    receipt = flow.tx(market.functions.generateTrainingPayments(task), actors.outsiders[0])
    assert events(receipt, "Slashed") == []
    (buyer,) = events(receipt, "ModelBuyerReturnPayment")
    assert buyer["amount"] >= budget2
    assert market.functions.taskBalance(task).call() == 0


def test_finalize_wrong_status(market, actors, flow, expect_revert, post_task, ready_task):
    open_task = post_task()
    expect_revert(market.functions.finalizeContract(open_task), actors.owner, "WrongStatus", open_task, STATUS["Training"], STATUS["Open"])
    task = finished_task(flow, actors, ready_task)
    flow.tx(market.functions.finalizeContract(task), actors.owner)
    expect_revert(market.functions.finalizeContract(task), actors.owner, "WrongStatus", task, STATUS["Training"], STATUS["Finalized"])
    expect_revert(market.functions.finalizeContract(55), actors.owner, "UnknownModel", 55)


# ------------------------------------------------------------------------------ generateTrainingPayments


def test_generate_training_payments(w3, market, actors, flow, events, ready_task):
    task = finished_task(flow, actors, ready_task)
    flow.tx(market.functions.finalizeContract(task), actors.owner)
    receipt = flow.tx(market.functions.generateTrainingPayments(task), actors.outsiders[0])
    contributions = events(receipt, "ContributionPayment")
    validations = events(receipt, "ValidationPayment")
    assert [e["trainer"] for e in contributions] == actors.trainers[:3]
    assert [e["validator"] for e in validations] == market.functions.validators(task).call()
    assert all(e["stakeReturned"] == 10_000 and e["earned"] > 0 for e in contributions)
    (orchestration,) = events(receipt, "OrchestrationPayment")
    assert orchestration["stakeReturned"] == 30_000 and orchestration["earned"] > 0
    (buyer,) = events(receipt, "ModelBuyerReturnPayment")
    credited = sum(e["earned"] + e["stakeReturned"] for e in contributions + validations + [orchestration]) + buyer["amount"]
    assert credited == DEFAULT_REWARD + 3 * 10_000 + 3 * 20_000 + 30_000
    assert market.functions.taskBalance(task).call() == 0
    assert flow.state(task)["status"] == STATUS["Settled"]
    for e in contributions:
        assert market.functions.credit(e["trainer"]).call() == e["earned"] + e["stakeReturned"]
    assert market.functions.totalCredit().call() == w3.eth.get_balance(market.address)


def test_generate_training_payments_wrong_status(market, actors, flow, expect_revert, ready_task):
    task = finished_task(flow, actors, ready_task)
    expect_revert(market.functions.generateTrainingPayments(task), actors.owner, "WrongStatus", task, STATUS["Finalized"], STATUS["Training"])
    flow.tx(market.functions.finalizeContract(task), actors.owner)
    flow.tx(market.functions.generateTrainingPayments(task), actors.owner)
    expect_revert(market.functions.generateTrainingPayments(task), actors.owner, "WrongStatus", task, STATUS["Finalized"], STATUS["Settled"])
    expect_revert(market.functions.generateTrainingPayments(8), actors.owner, "UnknownModel", 8)


# ------------------------------------------------------------------------------ withdraw


def test_withdraw(w3, market, actors, flow, events, post_task):
    task = post_task()
    flow.tx(market.functions.cancelModel(task), actors.owner)
    before = w3.eth.get_balance(actors.owner)
    receipt = flow.tx(market.functions.withdraw(), actors.owner)
    assert events(receipt, "Withdrawal") == [{"account": actors.owner, "amount": DEFAULT_REWARD}]
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(actors.owner) == before + DEFAULT_REWARD - fee
    assert market.functions.credit(actors.owner).call() == 0
    assert market.functions.totalCredit().call() == 0
    assert w3.eth.get_balance(market.address) == 0


def test_withdraw_pulls_credit_of_every_task(market, actors, flow, events, post_task):
    first, second = post_task(value=5), post_task(value=7)
    flow.tx(market.functions.cancelModel(first), actors.owner)
    flow.tx(market.functions.cancelModel(second), actors.owner)
    receipt = flow.tx(market.functions.withdraw(), actors.owner)
    assert events(receipt, "Withdrawal")[0]["amount"] == 12


def test_withdraw_nothing(market, actors, expect_revert):
    expect_revert(market.functions.withdraw(), actors.trainers[0], "NothingToWithdraw", actors.trainers[0])


def test_withdraw_to_refusing_receiver_keeps_credit(w3, market, actors, flow, make_params, rejecter_artifacts, expect_revert, post_task):
    """A receiver that reverts gets TransferFailed and keeps its credit; nobody else is blocked."""
    rejecter = deploy_contract(w3, "Rejecter", actors.outsiders[0], artifacts=rejecter_artifacts)
    data = market.encode_abi("newModel", args=[make_params()])
    flow.tx(rejecter.functions.forward(market.address, data), actors.outsiders[0], value=1_000)
    task = market.functions.modelCount().call()
    flow.tx(market.functions.buyLicense(task), actors.trainers[0], value=1_000)  # held by the task
    flow.tx(rejecter.functions.forward(market.address, market.encode_abi("cancelModel", args=[task])), actors.outsiders[0])
    assert market.functions.credit(rejecter.address).call() == 1_000  # the escrow
    withdraw = market.encode_abi("withdraw", args=[])
    expect_revert(rejecter.functions.forward(market.address, withdraw), actors.outsiders[0], "TransferFailed", rejecter.address, 1_000)
    assert market.functions.credit(rejecter.address).call() == 1_000
    other = post_task()
    flow.tx(market.functions.cancelModel(other), actors.owner)
    flow.tx(market.functions.withdraw(), actors.owner)  # unaffected
    assert w3.eth.get_balance(market.address) == 1_000 + 1_000 == market.functions.taskBalance(task).call() + market.functions.totalCredit().call()
