"""Isolation of payments: re-entrancy, refusing receivers, and one task's money versus another's.

- A participant contract whose receive() re-enters `withdraw` (contracts/test/ReentrancyAttacker.sol)
  fails to re-enter and is paid exactly once.
- A participant contract whose receive() reverts (contracts/test/RevertingReceiver.sol) blocks
  nobody: settlement needs no transfer, every other payee still withdraws, and its own credit
  stays intact until it accepts ether.
- Two tasks with the same participants: every credit is exactly what that account earned in each
  task (hand-computed below to the wei), and settling one task never touches the other's balance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_utils import keccak
from web3 import Web3
from web3.logs import DISCARD

from fedmarket.chain.compile import compile_contracts
from fedmarket.chain.deploy import deploy_contract
from fedmarket.chain.protocol import score_commitment, vote_commitment

WINDOW = 100


# ------------------------------------------------------------------------------ helpers


@pytest.fixture
def test_artifacts() -> dict[str, Any]:
    return compile_contracts(include_test=True)


@pytest.fixture
def attacker(w3: Web3, market: Any, accounts: list[str], test_artifacts: dict[str, Any]) -> Any:
    """A ReentrancyAttacker controlled by accounts[28]."""
    return deploy_contract(w3, "ReentrancyAttacker", accounts[28], market.address, artifacts=test_artifacts)


@pytest.fixture
def refuser(w3: Web3, market: Any, accounts: list[str], test_artifacts: dict[str, Any]) -> Any:
    """A RevertingReceiver controlled by accounts[28]."""
    return deploy_contract(w3, "RevertingReceiver", accounts[28], market.address, artifacts=test_artifacts)


class Proxy:
    """Drive a helper contract (attacker / refuser) as if it were an account of the market."""

    def __init__(self, contract: Any, controller: str, market: Any, tx: Callable[..., Any]) -> None:
        self.contract = contract
        self.controller = controller
        self.market = market
        self.tx = tx
        self.address = contract.address

    def send(self, fn: str, *args: Any, value: int = 0) -> Any:
        data = self.market.encode_abi(fn, args=list(args))
        return self.tx(self.contract.functions.execute(data), self.controller, value=value)


def _credits(market: Any, accounts: list[str]) -> dict[str, int]:
    return {a: market.functions.credit(a).call() for a in accounts}


def _commit_reveal(market: Any, tx: Callable[..., Any], model_id: int, round_: int, trainer: str | Proxy, seed: str) -> tuple[bytes, int, bytes]:
    """Commit to an update; returns what to reveal."""
    digest, samples, salt = keccak(text=f"update {seed}"), 100, keccak(text=f"salt {seed}")
    address = trainer.address if isinstance(trainer, Proxy) else trainer
    commitment = market.functions.commitmentOf(model_id, round_, digest, samples, salt, address).call()
    if isinstance(trainer, Proxy):
        trainer.send("commitUpdate", model_id, round_, commitment)
    else:
        tx(market.functions.commitUpdate(model_id, round_, commitment), trainer)
    return digest, samples, salt


def _reveal(market: Any, tx: Callable[..., Any], model_id: int, round_: int, trainer: str | Proxy, secret: tuple[bytes, int, bytes]) -> None:
    if isinstance(trainer, Proxy):
        trainer.send("revealUpdate", model_id, round_, *secret)
    else:
        tx(market.functions.revealUpdate(model_id, round_, *secret), trainer)


def _run_one_round(market: Any, tx: Callable[..., Any], model_id: int, trainers: list[Any], scorer: Any, scores: list[int], aggregator: str) -> None:
    """Every trainer commits and reveals, the (single-member) committee scores, the aggregator
    publishes and the committee votes ok: the round closes in the vote reveal."""
    round_ = market.functions.getModel(model_id).call()[1][2]
    secrets = [_commit_reveal(market, tx, model_id, round_, t, f"{model_id}/{round_}/{i}") for i, t in enumerate(trainers)]
    for t, s in zip(trainers, secrets):
        _reveal(market, tx, model_id, round_, t, s)
    _score(market, tx, model_id, round_, scorer, scores)
    tx(market.functions.publishGlobalModel(model_id, round_, keccak(text=f"global {model_id}/{round_}"), 900_000), aggregator)
    _vote(market, tx, model_id, round_, scorer)
    assert market.functions.getRound(model_id, round_).call()[-1], "the last vote reveal closes the round"


def _member_call(market: Any, tx: Callable[..., Any], member: Any, fn: str, *args: Any) -> None:
    if isinstance(member, Proxy):
        member.send(fn, *args)
    else:
        tx(getattr(market.functions, fn)(*args), member)


def _score(market: Any, tx: Callable[..., Any], model_id: int, round_: int, member: Any, scores: list[int]) -> None:
    """A (single-member) committee's score commit, then its reveal (the commit ended ScoreCommit)."""
    address = member.address if isinstance(member, Proxy) else member
    salt = keccak(text=f"score salt {model_id}/{round_}")
    _member_call(market, tx, member, "commitScores", model_id, round_, score_commitment(model_id, round_, address, scores, salt))
    _member_call(market, tx, member, "revealScores", model_id, round_, scores, salt)


def _vote(market: Any, tx: Callable[..., Any], model_id: int, round_: int, member: Any, ok: bool = True) -> None:
    address = member.address if isinstance(member, Proxy) else member
    salt = keccak(text=f"vote salt {model_id}/{round_}")
    _member_call(market, tx, member, "commitVote", model_id, round_, vote_commitment(model_id, round_, address, ok, salt))
    _member_call(market, tx, member, "revealVote", model_id, round_, ok, salt)


def _settle(market: Any, tx: Callable[..., Any], model_id: int, caller: str) -> None:
    tx(market.functions.finalizeContract(model_id), caller)
    tx(market.functions.generateTrainingPayments(model_id), caller)
    assert market.functions.taskBalance(model_id).call() == 0


def _balance(w3: Web3, address: str) -> int:
    return w3.eth.get_balance(Web3.to_checksum_address(address))


# ------------------------------------------------------------------------------ re-entrancy


def test_reentrant_withdraw_fails_and_pays_exactly_once(
    w3: Web3,
    market: Any,
    actors: Any,
    accounts: list[str],
    attacker: Any,
    tx: Callable[..., Any],
    post_task: Callable[..., int],
    events: Callable[..., Any],
    call_error: Callable[..., Any],
) -> None:
    proxy = Proxy(attacker, accounts[28], market, tx)
    model_id = post_task(rounds=1, minTrainers=1, committeeSize=1, maxValidators=1, value=1_000_003)
    params, _ = market.functions.getModel(model_id).call()
    fee, t_stake, v_stake, a_stake = params[13], params[14], params[15], params[16]
    validator, honest = actors.validators[0], actors.trainers[0]
    proxy.send("buyLicense", model_id, value=fee)
    proxy.send("joinAsTrainer", model_id, value=t_stake)
    tx(market.functions.buyLicense(model_id), honest, value=fee)
    tx(market.functions.joinAsTrainer(model_id), honest, value=t_stake)
    tx(market.functions.joinAsValidator(model_id), validator, value=v_stake)
    tx(market.functions.joinAsAggregator(model_id), actors.aggregator, value=a_stake)
    tx(market.functions.startTraining(model_id), actors.owner)
    # attacker utility 300_000, honest 100_000: T = 700_002 split 3:1
    _run_one_round(market, tx, model_id, [proxy, honest], validator, [300_000, 100_000], actors.aggregator)
    _settle(market, tx, model_id, actors.outsiders[0])

    owed = market.functions.credit(attacker.address).call()
    assert owed == 700_002 * 300_000 // 400_000 + t_stake
    others = [actors.owner, honest, validator, actors.aggregator]
    credits_before = _credits(market, others)
    total_before = market.functions.totalCredit().call()
    held_before = _balance(w3, market.address)

    receipt = tx(attacker.functions.attack(), accounts[28])

    assert attacker.functions.receipts().call() == 1, "paid more than once"
    assert attacker.functions.received().call() == owed
    assert attacker.functions.reentries().call() == 1, "receive() did not try to re-enter"
    assert attacker.functions.reentriesSucceeded().call() == 0, "re-entered withdraw succeeded"
    reason = attacker.functions.lastReentryError().call()
    assert reason[:4] in (keccak(text="ReentrantCall()")[:4], keccak(text="NothingToWithdraw(address)")[:4]), reason.hex()
    assert market.functions.credit(attacker.address).call() == 0
    assert market.functions.totalCredit().call() == total_before - owed
    assert _balance(w3, market.address) == held_before - owed
    assert _credits(market, others) == credits_before, "another account's credit moved"
    assert [(e["account"], e["amount"]) for e in events(receipt, "Withdrawal")] == [(attacker.address, owed)]
    # the credit is spent: a second attack gets nothing
    assert call_error(attacker.functions.attack(), accounts[28])[0] == "NothingToWithdraw"
    with pytest.raises(AssertionError):  # the transaction reverts too
        tx(attacker.functions.attack(), accounts[28])
    assert attacker.functions.received().call() == owed


def test_reentrancy_that_bubbles_fails_the_withdrawal_and_keeps_the_credit(
    w3: Web3,
    market: Any,
    actors: Any,
    accounts: list[str],
    attacker: Any,
    tx: Callable[..., Any],
    post_task: Callable[..., int],
    call_error: Callable[..., Any],
) -> None:
    proxy = Proxy(attacker, accounts[28], market, tx)
    model_id = post_task(value=5_000)
    params, _ = market.functions.getModel(model_id).call()
    fee, t_stake = params[13], params[14]
    proxy.send("buyLicense", model_id, value=fee)
    proxy.send("joinAsTrainer", model_id, value=t_stake)
    tx(market.functions.cancelModel(model_id), actors.owner)
    assert market.functions.credit(attacker.address).call() == t_stake
    tx(attacker.functions.configure(keccak(text="withdraw()")[:4], 1, True), accounts[28])
    held = _balance(w3, market.address)

    name, args = call_error(attacker.functions.attack(), accounts[28])
    assert name == "TransferFailed"
    assert (args[0].lower(), args[1]) == (attacker.address.lower(), t_stake)
    with pytest.raises(AssertionError):  # the transaction reverts too
        tx(attacker.functions.attack(), accounts[28])
    assert market.functions.credit(attacker.address).call() == t_stake, "a failed transfer lost the credit"
    assert _balance(w3, market.address) == held
    assert attacker.functions.received().call() == 0

    tx(attacker.functions.configure(keccak(text="withdraw()")[:4], 0, False), accounts[28])
    tx(attacker.functions.attack(), accounts[28])
    assert attacker.functions.received().call() == t_stake
    assert attacker.functions.receipts().call() == 1
    assert market.functions.credit(attacker.address).call() == 0


# ------------------------------------------------------------------------------ refusing receivers


def test_reverting_receiver_blocks_nobody_and_keeps_its_credit(
    w3: Web3, market: Any, actors: Any, accounts: list[str], refuser: Any, tx: Callable[..., Any], post_task: Callable[..., int], call_error: Callable[..., Any]
) -> None:
    proxy = Proxy(refuser, accounts[28], market, tx)
    model_id = post_task(rounds=1, minTrainers=2, committeeSize=1, maxValidators=1, value=1_000_003)
    params, _ = market.functions.getModel(model_id).call()
    fee, t_stake, v_stake, a_stake = params[13], params[14], params[15], params[16]
    trainers = actors.trainers[:2]
    for t in trainers:
        tx(market.functions.buyLicense(model_id), t, value=fee)
        tx(market.functions.joinAsTrainer(model_id), t, value=t_stake)
    proxy.send("joinAsValidator", model_id, value=v_stake)  # the only validator: the whole committee
    tx(market.functions.joinAsAggregator(model_id), actors.aggregator, value=a_stake)
    tx(market.functions.startTraining(model_id), actors.aggregator)
    _run_one_round(market, tx, model_id, trainers, proxy, [500_000, 500_000], actors.aggregator)
    # settlement pushes nothing, so a refusing payee cannot stop it
    _settle(market, tx, model_id, actors.outsiders[1])

    owed = 200_000 + v_stake  # V = 1_000_003 * 2000 / 10000, one eligible member
    assert market.functions.credit(refuser.address).call() == owed
    name, args = call_error(refuser.functions.execute(market.encode_abi("withdraw", args=[])), accounts[28])
    assert name == "TransferFailed" and args[1] == owed
    assert market.functions.credit(refuser.address).call() == owed

    payees = {actors.owner: 2 * fee, trainers[0]: 350_001 + t_stake, trainers[1]: 350_001 + t_stake, actors.aggregator: 100_001 + a_stake}
    assert _credits(market, list(payees)) == payees
    for payee, amount in payees.items():
        before = _balance(w3, payee)
        receipt = tx(market.functions.withdraw(), payee)
        assert _balance(w3, payee) - before + receipt["gasUsed"] * receipt["effectiveGasPrice"] == amount
    assert market.functions.credit(refuser.address).call() == owed, "others' withdrawals touched the refuser's credit"
    assert _balance(w3, market.address) == owed == market.functions.totalCredit().call()

    tx(refuser.functions.setRejecting(False), accounts[28])
    proxy.send("withdraw")
    assert refuser.functions.received().call() == owed
    assert market.functions.credit(refuser.address).call() == 0
    assert _balance(w3, market.address) == 0


# ------------------------------------------------------------------------------ two tasks, same people


def test_two_tasks_with_the_same_participants_pay_each_from_its_own_money(
    w3: Web3,
    market: Any,
    actors: Any,
    accounts: list[str],
    tx: Callable[..., Any],
    make_params: Callable[..., Any],
    advance: Callable[[int], int],
    expect_revert: Callable[..., Any],
) -> None:
    owner_a, owner_b = actors.owner, actors.outsiders[0]
    t1, t2, only_b = actors.trainers[0], actors.trainers[1], actors.trainers[2]
    validator, aggregator = actors.validators[0], actors.aggregator
    everyone = [owner_a, owner_b, t1, t2, only_b, validator, aggregator]

    def post(owner: str, value: int, **overrides: Any) -> int:
        receipt = tx(market.functions.newModel(make_params(**overrides)), owner, value=value)
        (created,) = market.events.ModelCreated().process_receipt(receipt, errors=DISCARD)
        return int(created["args"]["modelId"])

    a = post(
        owner_a,
        1_000_003,
        rounds=1,
        minTrainers=2,
        committeeSize=1,
        maxValidators=1,
        licenseFee=1_000,
        trainerStake=10_000,
        validatorStake=20_000,
        aggregatorStake=30_000,
        lateSlashBps=1_000,
        badSlashBps=5_000,
        poisonThreshold=-500_000,
    )
    b = post(
        owner_b,
        500_000,
        rounds=2,
        minTrainers=2,  # one commit of two is a healthy round (2 * 1 >= 2): the silent trainer is late
        committeeSize=1,
        maxValidators=1,
        licenseFee=0,
        commitWindow=10,
        trainerStake=7_000,
        validatorStake=3_000,
        aggregatorStake=9_000,
        lateSlashBps=2_500,
        badSlashBps=10_000,
        poisonThreshold=-500_000,
    )
    for mid, fee, stake in ((a, 1_000, 10_000), (b, 0, 7_000)):
        for t in (t1, t2):
            tx(market.functions.buyLicense(mid), t, value=fee)
            tx(market.functions.joinAsTrainer(mid), t, value=stake)
    tx(market.functions.buyLicense(b), only_b, value=0)  # licensed in B only, never joins
    tx(market.functions.joinAsValidator(a), validator, value=20_000)
    tx(market.functions.joinAsValidator(b), validator, value=3_000)
    tx(market.functions.joinAsAggregator(a), aggregator, value=30_000)
    tx(market.functions.joinAsAggregator(b), aggregator, value=9_000)
    tx(market.functions.startTraining(a), owner_a)
    tx(market.functions.startTraining(b), aggregator)
    deposits_b = 500_000 + 2 * 7_000 + 3_000 + 9_000
    assert market.functions.taskBalance(a).call() == 1_000_003 + 2 * 10_000 + 20_000 + 30_000
    assert market.functions.taskBalance(b).call() == deposits_b
    # a trainer of A only is not a trainer of B (and the owner of A is nobody in B)
    expect_revert(market.functions.commitUpdate(b, 1, b"\x01" * 32), owner_a, "NotTrainer")

    # Interleaved round 1 of both tasks. In B only t1 commits: t2 is late.
    sa1 = _commit_reveal(market, tx, a, 1, t1, "a1")
    sb1 = _commit_reveal(market, tx, b, 1, t1, "b1")
    sa2 = _commit_reveal(market, tx, a, 1, t2, "a2")
    _reveal(market, tx, a, 1, t2, sa2)
    _reveal(market, tx, a, 1, t1, sa1)
    advance(11)  # B's 10 s commit window ends (t2 never committed); A is scoring (100 s window)
    _reveal(market, tx, b, 1, t1, sb1)
    _score(market, tx, a, 1, validator, [600_000, -700_000])  # reveal order: t2, t1
    _score(market, tx, b, 1, validator, [250_000])
    tx(market.functions.publishGlobalModel(a, 1, keccak(text="A1"), 1), aggregator)
    tx(market.functions.publishGlobalModel(b, 1, keccak(text="B1"), 1), aggregator)
    _vote(market, tx, b, 1, validator)
    _vote(market, tx, a, 1, validator)
    # t2 revealed first in A: u(t2) = 600_000, u(t1) = -700_000 (poison)
    # A: B=1_000_003, T=700_002 all to t2, V=200_000, A=100_001; t1 loses 5_000, burned (a verdict slash)
    # B round 1: B=250_000, T=175_000 to t1, V=50_000, A=25_000; t2 late: 7_000 * 25 % = 1_750 -> t1
    assert market.functions.taskBalance(a).call() == 1_000_003 + 2 * 10_000 + 20_000 + 30_000 - 5_000
    assert market.functions.credit("0x" + "00" * 20).call() == 5_000
    assert market.functions.taskBalance(b).call() == deposits_b

    _settle(market, tx, a, only_b)  # someone outside A settles it
    expected_after_a = {
        owner_a: 2 * 1_000,
        owner_b: 0,
        t1: 10_000 - 5_000,
        t2: 700_002 + 10_000,
        only_b: 0,
        validator: 200_000 + 20_000,
        aggregator: 100_001 + 30_000,
    }
    assert _credits(market, everyone) == expected_after_a
    assert market.functions.taskBalance(b).call() == deposits_b, "settling A moved B's money"
    for account in (t1, t2, validator, aggregator, owner_a):
        tx(market.functions.withdraw(), account)
    assert market.functions.taskBalance(b).call() == deposits_b
    assert _balance(w3, market.address) == deposits_b + market.functions.totalCredit().call()

    # B: the owner stops after round 1; round 2's budget returns to the buyer
    expect_revert(market.functions.finalizeContract(b), t1, "NotOwner")
    tx(market.functions.finalizeContract(b), owner_b)
    tx(market.functions.generateTrainingPayments(b), t2)
    expected_after_b = {
        owner_a: 0,
        owner_b: 250_000,
        t1: 175_000 + 1_750 + 7_000,
        t2: 7_000 - 1_750,
        only_b: 0,
        validator: 50_000 + 3_000,
        aggregator: 25_000 + 9_000,
    }
    assert _credits(market, everyone) == expected_after_b
    assert market.functions.taskBalance(b).call() == 0
    assert sum(expected_after_b.values()) == deposits_b
    assert _balance(w3, market.address) == deposits_b + 5_000 == market.functions.totalCredit().call()  # + A's burned wei
