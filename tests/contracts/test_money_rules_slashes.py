"""Issue 10 items 5 and 13 and issue 11's lateness rule, each attack performed against the contract
and shown to gain nothing (to the wei), and the new revert path.

- item 5: slashed stakes never reach the buyer, the aggregator or the scorers: a late slash goes
  to the round's positive trainers, else to the trainer carry (burned after the last round); a
  verdict slash (poison, disagreed, rejected) is burned at once, so a colluding majority cannot
  steer it to a trainer of its own; a poison slash needs two thirds of the committee's seats;
- item 13: stakes and rewards near 2^128 wei settle without overflow; a deposit that would take a
  task's holdings past 2^128 - 1 reverts AmountTooLarge.
"""

from __future__ import annotations

import pytest
from contract_helpers import DEFAULT_PARAMS, SLASH, Flow, _actors, params_tuple
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3

from fedmarket.chain.deploy import MARKETPLACE_GAS_LIMITS, deploy_marketplace

FEE, T_STAKE, V_STAKE, A_STAKE = 1_000, 10_000, 20_000, 30_000  # contract_helpers.DEFAULT_PARAMS
BURN = "0x" + "00" * 20
T, V, A = 700_002, 200_000, 100_001  # the shares of the default 1,000,003-wei single-round budget


def _party_credit(market, accounts):
    return sum(market.functions.credit(a).call() for a in accounts)


def test_item5_buyer_with_a_committee_majority_gains_nothing(market, actors, flow, events, tx, ready_task):
    """The buyer, its aggregator and 2 of the 3 committee seats (its sybils) score every update
    -1e6; the third member scores them +500,000. Every trainer is poison-slashed (two thirds of
    the seats), but neither the slashes nor the trainer pool reach the party: the verdict slashes
    are burned at the round's close, the trainer pool is carried and burned at settlement.
    The party is credited 306,335 wei, exactly what it gets when its members score honestly
    (licence fees 3,000 + the validators' dust 2 + A 100,001 (its own aggregator's or returned) +
    the aggregator's stake 30,000 + its two members' 66,666 + 20,000 each)."""
    task = ready_task(rounds=1)
    trainers = actors.trainers[:3]
    committee = flow.committee(task, 1)
    sybils, honest = committee[:2], committee[2]
    flow.to_phase(task, 1, trainers, "ScoreCommit")
    receipt = flow.score(task, 1, {**dict.fromkeys(sybils, [-1_000_000] * 3), honest: [500_000] * 3})  # the last reveal: Publish is skipped (P == 0)
    receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0]) if flow.round(task, 1)["closed"] is False else receipt
    # The honest member, far from the majority's medians, is slashed Disagreed (10 % of 20,000):
    # a colluding majority of the committee can still out-vote one member, but gains nothing by it:
    # V is three equal shares, and the honest member's goes to the trainer carry, not to the sybils.
    assert [(e["participant"], e["reason"], e["amount"]) for e in events(receipt, "Slashed")] == [
        *[(t, SLASH["Poison"], T_STAKE // 2) for t in trainers],
        (honest, SLASH["Disagreed"], 2_000),
    ]
    (closed,) = events(receipt, "RoundClosed")
    assert closed["returnedToBuyer"] == A + V % 3  # the aggregator's share and the validators' dust
    verdict = 3 * T_STAKE // 2 + 2_000
    assert events(receipt, "CarryBurned") == [{"modelId": task, "amount": verdict}]
    carry = T + V // 3
    assert market.functions.trainerCarry(task).call() == carry
    tx(market.functions.finalizeContract(task), actors.outsiders[0])
    settled = tx(market.functions.generateTrainingPayments(task), actors.outsiders[0])
    assert events(settled, "CarryBurned") == [{"modelId": task, "amount": carry}]
    assert market.functions.credit(BURN).call() == verdict + carry
    party = [actors.owner, actors.aggregator, *sybils]
    assert _party_credit(market, party) == 3 * FEE + (A + V % 3) + A_STAKE + 2 * (V // 3 + V_STAKE) == 306_335
    assert [market.functions.credit(t).call() for t in trainers] == [T_STAKE // 2] * 3


def test_item5_honest_scoring_gives_the_party_the_same(market, actors, flow, tx, ready_task):
    """The comparison for the attack above: the same party scoring honestly is credited 306,335 too."""
    task = ready_task(rounds=1)
    trainers = actors.trainers[:3]
    receipt = flow.play_round(task, 1, trainers, scores=[500_000] * 3)
    assert receipt is not None
    tx(market.functions.finalizeContract(task), actors.outsiders[0])
    tx(market.functions.generateTrainingPayments(task), actors.outsiders[0])
    sybils = flow.committee(task, 1)[:2]
    assert _party_credit(market, [actors.owner, actors.aggregator, *sybils]) == 3 * FEE + 2 + (A + A_STAKE) + 2 * (V // 3 + V_STAKE) == 306_335
    assert market.functions.credit(BURN).call() == 0


def test_item5_poison_needs_two_thirds_of_the_seats(market, actors, flow, events, advance, ready_task):
    """Two of three score (a quorum); one scores -1e6, the other +300,000: the lower median is
    -1e6, below the threshold, but one seat of three is not a qualified majority: no poison slash.
    The update is not paid either; the trainer pool goes to the carry."""
    task = ready_task(rounds=2, minTrainers=1)
    trainers = actors.trainers[:3]
    flow.to_phase(task, 1, trainers, "ScoreCommit")
    first, second, _silent = flow.committee(task, 1)
    flow.score(task, 1, {first: [-1_000_000] * 3, second: [300_000] * 3})
    assert market.functions.utilities(task, 1).call() == [-1_000_000] * 3
    advance(10_000)
    receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0])
    # the second member is far from the (lower) medians: Disagreed (burned), and its half of V
    # (two eligible) goes to the carry with T and the silent member's late slash
    assert [e["reason"] for e in events(receipt, "Slashed")] == [SLASH["Disagreed"], SLASH["Late"]]
    v_share = (1_000_003 // 2) * 2_000 // 10_000 // 2
    assert market.functions.trainerCarry(task).call() == (1_000_003 // 2) * 7_000 // 10_000 + V_STAKE // 10 + v_share == 402_000


def test_item5_carry_pays_the_next_rounds_positive_trainers(market, actors, flow, events, ready_task):
    """Round 1: everyone scores 0 (nothing positive): T1 = 350,001 is carried. Round 2: every update
    scores 1: each trainer earns T2 / 3 + carry / 3 (T2 = 350,002 + the remainder; dust to the carry)."""
    task = ready_task(rounds=2)
    trainers = actors.trainers[:3]
    flow.to_phase(task, 1, trainers, "Publish", scores=[0, 0, 0])
    flow.tx(market.functions.closeRound(task), actors.outsiders[0])
    budget1 = 1_000_003 // 2
    t1 = budget1 * 7_000 // 10_000
    assert market.functions.trainerCarry(task).call() == t1
    receipt = flow.play_round(task, 2, trainers, scores=[1, 1, 1])
    t2 = (1_000_003 - budget1) * 7_000 // 10_000
    paid = {e["participant"]: e["amount"] for e in events(receipt, "RewardAccrued") if e["participant"] in trainers}
    assert paid == {t: t2 // 3 + t1 // 3 for t in trainers}
    assert market.functions.trainerCarry(task).call() == t1 - 3 * (t1 // 3)


def _huge_chain() -> tuple[Web3, object, Flow]:
    """An embedded chain whose accounts hold 2^130 wei each (py-evm accepts any genesis balance)."""
    genesis = PyEVMBackend.generate_genesis_state(overrides={"balance": 2**130}, num_accounts=30)
    w3 = Web3(EthereumTesterProvider(EthereumTester(backend=PyEVMBackend(genesis_state=genesis))))
    accounts = list(w3.eth.accounts)
    actors = _actors(accounts)
    market = deploy_marketplace(w3, actors.deployer)

    def tx(call, sender, value=0, gas=None):
        receipt = w3.eth.get_transaction_receipt(call.transact({"from": sender, "value": value, "gas": gas or MARKETPLACE_GAS_LIMITS[call.fn_name]}))
        assert receipt["status"] == 1, call.fn_name
        return receipt

    return w3, market, Flow(w3, market, actors, tx)


def test_item13_amounts_near_2_128_settle_without_overflow():
    """Reward 2^127, trainer stakes 2^124 (each trainer earns ~2^126, far above the seats' 96 bits),
    a 50 % poison slash burning 2^123 wei: every amount settles to the wei and every wei is credited."""
    w3, market, flow = _huge_chain()
    actors, f = flow.actors, market.functions
    reward, t_stake, v_stake, a_stake = 2**127, 2**124, 2**120, 2**120
    params = params_tuple(
        market,
        aggregator=actors.aggregator,
        rounds=1,
        minTrainers=3,
        maxTrainers=3,
        committeeSize=3,
        maxValidators=3,
        licenseFee=0,
        trainerStake=t_stake,
        validatorStake=v_stake,
        aggregatorStake=a_stake,
    )
    flow.tx(f.newModel(params), actors.owner, value=reward)
    trainers, validators = actors.trainers[:3], actors.validators[:3]
    for t in trainers:
        flow.tx(f.buyLicense(1), t, value=0)
        flow.tx(f.joinAsTrainer(1), t, value=t_stake)
    for v in validators:
        flow.tx(f.joinAsValidator(1), v, value=v_stake)
    flow.tx(f.joinAsAggregator(1), actors.aggregator, value=a_stake)
    flow.tx(f.startTraining(1), actors.owner)
    receipt = flow.play_round(1, 1, trainers, scores=[600_000, 300_000, -1_000_000])
    assert receipt["status"] == 1
    flow.tx(f.finalizeContract(1), actors.owner)
    flow.tx(f.generateTrainingPayments(1), actors.owner)
    pool, slash = reward * 7_000 // 10_000, t_stake // 2
    assert [f.participant(1, t).call()[2] for t in trainers] == [pool * 2 // 3, pool // 3, 0]
    assert f.credit(BURN).call() == slash
    deposited = reward + 3 * t_stake + 3 * v_stake + a_stake
    everyone = [actors.owner, actors.aggregator, *trainers, *validators, BURN]
    assert sum(f.credit(a).call() for a in everyone) == deposited == f.totalCredit().call() == w3.eth.get_balance(market.address)


def test_item13_a_deposit_past_2_128_reverts():
    """A task never holds 2^128 wei or more: the join that would take it there reverts AmountTooLarge."""
    from contract_helpers import decode_error
    from eth_tester.exceptions import TransactionFailed

    _w3, market, flow = _huge_chain()
    actors, f = flow.actors, market.functions
    stake = 2**127
    params = dict(DEFAULT_PARAMS, aggregator=actors.aggregator, licenseFee=0, trainerStake=stake)
    order = [c["name"] for c in next(i for i in market.abi if i.get("name") == "newModel")["inputs"][0]["components"]]
    flow.tx(f.newModel(tuple(params[k] for k in order)), actors.owner, value=2**127)
    flow.tx(f.buyLicense(1), actors.trainers[0], value=0)
    with pytest.raises(TransactionFailed) as raised:
        f.joinAsTrainer(1).call({"from": actors.trainers[0], "value": stake})
    assert decode_error(market, raised.value) == ("AmountTooLarge", (2**128,))
    flow.tx(f.payForModel(1), actors.owner, value=2**127 - 1)  # up to 2^128 - 1 is fine
    with pytest.raises(TransactionFailed) as raised:
        f.payForModel(1).call({"from": actors.owner, "value": 1})
    assert decode_error(market, raised.value) == ("AmountTooLarge", (2**128,))


def test_a_committee_majority_cannot_steer_judgement_slashes_to_its_own_trainer(market, actors, flow, events, ready_task):
    """A party holds 2 of the 3 seats and trainer 0's seat. Its members score trainer 0 +900,000
    and the two honest trainers -1e6; the honest member scores all three. Two thirds of the seats
    are below the poison threshold for trainers 1 and 2 (poison-slashed 5,000 each), and the
    honest member is far from the medians (Disagreed, 2,000). Steering the trainer pool to trainer
    0 is what any committee majority can do; the stakes slashed by its own verdict must not follow:
    trainer 0 is credited T and its own stake, nothing of the 12,000 wei slashed: they are burned.
    (Until stop 19 they were shared by the positive trainers: 722,002 wei.)"""
    task = ready_task(rounds=1)
    trainers = actors.trainers[:3]
    sybil_trainer = trainers[0]
    committee = flow.committee(task, 1)
    sybils, honest = committee[:2], committee[2]
    flow.to_phase(task, 1, trainers, "ScoreCommit")
    order = [t.lower() for t in market.functions.revealedUpdates(task, 1).call()[0]]
    steered = [900_000 if t == sybil_trainer.lower() else -1_000_000 for t in order]
    flow.score(task, 1, {**dict.fromkeys(sybils, steered), honest: [500_000] * 3})
    assert market.functions.utilities(task, 1).call() == steered
    flow.publish(task, 1)
    receipt = flow.vote(task, 1, dict.fromkeys(committee, True))
    assert sorted((e["participant"], e["reason"], e["amount"]) for e in events(receipt, "Slashed")) == sorted(
        [*[(t, SLASH["Poison"], T_STAKE // 2) for t in trainers[1:]], (honest, SLASH["Disagreed"], V_STAKE // 10)]
    )
    assert events(receipt, "CarryBurned") == [{"modelId": task, "amount": 2 * T_STAKE // 2 + V_STAKE // 10}]
    flow.tx(market.functions.finalizeContract(task), actors.outsiders[0])
    flow.tx(market.functions.generateTrainingPayments(task), actors.outsiders[0])
    assert market.functions.credit(sybil_trainer).call() == T + T_STAKE
