"""SemiMarket (contracts/SemiMarket.sol, docs/semi.md): every revert, the records' hash chain, gas
per client round, epoch payments robust to a sybil pair, timeout slashing, conservation of wei,
and a hypothesis state machine over random actions checking the money invariant after each step.

One embedded chain serves the module; every test starts from the snapshot taken after deploying.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fedmarket.chain.embedded import latest_timestamp, new_embedded_web3, set_next_timestamp
from fedmarket.chain.reverts import ContractRevert
from fedmarket.chain.semi_client import (
    MICRO,
    SEMI_GAS_LIMITS,
    ScoreEntry,
    SemiMarketClient,
    SemiParams,
    SemiStatus,
    UploadRef,
    bounded_score,
    deploy_semi_market,
    loss_micro,
    task_id_of,
    verify_chain,
)

REWARD = 1_000_003  # odd: rounding shows
STAKE = 10_000
FEE = 1_000
EPOCH = 100
GOOD, BAD = loss_micro(0.2), loss_micro(1.9)  # scores 229 and 13 under a 2.0 loss cap
BASE = SemiParams(
    spec_digest=keccak(text="semi spec"),
    initial_model_digest=keccak(text="theta0"),
    client_stake=STAKE,
    license_fee=FEE,
    min_clients=2,
    max_clients=8,
    epochs=2,
    epoch_length=EPOCH,
    rounds=3,
    loss_cap=2 * MICRO,
    pass_score=128,
    min_scorers=2,
    late_slash_bps=2_000,
    start_window=1_000,
)


class Chain:
    def __init__(self) -> None:
        self.w3 = new_embedded_web3(num_accounts=40)
        self.accounts = list(self.w3.eth.accounts)
        self.market = deploy_semi_market(self.w3, self.accounts[-1])
        self.w3.provider.ethereum_tester.mine_blocks(1)
        self.base = self.w3.provider.ethereum_tester.take_snapshot()

    def reset(self) -> None:
        self.w3.provider.ethereum_tester.revert_to_snapshot(self.base)

    @property
    def owner(self) -> SemiMarketClient:
        return self.market.with_account(self.accounts[0])

    def as_(self, index: int) -> SemiMarketClient:
        return self.market.with_account(self.accounts[index])

    def post(self, params: SemiParams = BASE, escrow: int = REWARD) -> int:
        return task_id_of(self.owner.post_task(params, escrow))

    def started(self, clients: int, params: SemiParams = BASE) -> int:
        """A Running task with `clients` clients (accounts 1..clients, client index = account - 1)."""
        task = self.post(replace(params, max_clients=max(params.max_clients, clients)))
        for i in range(1, clients + 1):
            self.as_(i).join_task(task)
        self.owner.start_task(task)
        return task

    def at(self, task: int, offset: int) -> None:
        """The next transaction runs `offset` seconds after the task's start."""
        set_next_timestamp(self.w3, self.market.get_task(task).state.start_time + offset)

    def settle_all(self, task: int) -> None:
        t = self.market.get_task(task)
        self.at(task, t.params.epochs * t.params.epoch_length)
        for _ in range(t.params.epochs - t.state.epochs_settled):
            self.owner.settle_epoch(task)


@pytest.fixture(scope="module")
def module_chain() -> Chain:
    return Chain()


@pytest.fixture
def chain(module_chain: Chain) -> Iterator[Chain]:
    module_chain.reset()
    yield module_chain


def reverts(name: str, call: Callable[[], Any]) -> ContractRevert:
    with pytest.raises(ContractRevert) as caught:
        call()
    assert caught.value.name == name, caught.value
    return caught.value


def digest(client: int, round: int) -> bytes:
    return keccak(text=f"model {client} {round}")


# ------------------------------------------------------------------------------ reverts


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spec_digest", b"\0" * 32),
        ("initial_model_digest", b"\0" * 32),
        ("min_clients", 1),
        ("max_clients", 32),
        ("epochs", 0),
        ("epochs", 1001),
        ("epoch_length", 0),
        ("rounds", 0),
        ("loss_cap", 0),
        ("pass_score", 0),
        ("min_scorers", 0),
        ("min_scorers", 31),
        ("late_slash_bps", 10_001),
        ("start_window", 0),
    ],
)
def test_post_task_refuses_bad_params(chain: Chain, field: str, value: Any) -> None:
    error = reverts("BadParam", lambda: chain.post(replace(BASE, **{field: value})))
    head, *rest = field.split("_")
    expected = "clients" if rest == ["clients"] else head + "".join(w.title() for w in rest)
    assert error.what == expected


def test_setup_reverts(chain: Chain) -> None:
    reverts("ZeroValue", lambda: chain.post(escrow=0))
    reverts("UnknownTask", lambda: chain.as_(1).join_task(7, STAKE + FEE))
    task = chain.post(replace(BASE, max_clients=2))
    reverts("NotTaskOwner", lambda: chain.as_(1).fund_task(task, 5))
    reverts("ZeroValue", lambda: chain.owner.fund_task(task, 0))
    reverts("OwnerCannotJoin", lambda: chain.owner.join_task(task))
    reverts("WrongAmount", lambda: chain.as_(1).join_task(task, STAKE))
    chain.as_(1).join_task(task)
    reverts("AlreadyClient", lambda: chain.as_(1).join_task(task))
    reverts("NotEnoughClients", lambda: chain.owner.start_task(task))
    chain.as_(2).join_task(task)
    reverts("TaskFull", lambda: chain.as_(3).join_task(task))
    reverts("NotTaskOwner", lambda: chain.as_(1).start_task(task))
    reverts("CancelTooEarly", lambda: chain.as_(5).cancel_task(task))
    reverts("NotInStatus", lambda: chain.owner.settle_epoch(task))
    deadline = chain.market.get_task(task).state.start_deadline
    set_next_timestamp(chain.w3, deadline + 1)
    reverts("StartTooLate", lambda: chain.owner.start_task(task))
    chain.as_(5).cancel_task(task)  # anyone, past the deadline
    assert chain.market.get_task(task).state.status is SemiStatus.CANCELLED
    assert chain.market.credit(chain.accounts[1]) == STAKE + FEE
    assert chain.market.credit(chain.accounts[0]) == REWARD
    assert chain.market.task_balance(task) == 0
    reverts("NotInStatus", lambda: chain.owner.cancel_task(task))
    reverts("NothingToWithdraw", lambda: chain.as_(9).withdraw())


def test_record_round_reverts(chain: Chain) -> None:
    task = chain.started(3)
    me = chain.as_(1)
    reverts("NotClient", lambda: chain.as_(9).record_round(task, 1, digest(9, 1)))
    reverts("NotNextRound", lambda: me.record_round(task, 2, digest(0, 2)))
    reverts("ZeroModelDigest", lambda: me.record_round(task, 1, b"\0" * 32))
    reverts("TooManyRecords", lambda: me.record_round(task, 1, digest(0, 1), downloads=[UploadRef(1, 1)] * 3))
    reverts("TooManyRecords", lambda: me.record_round(task, 1, digest(0, 1), scores=[ScoreEntry(1, 1, GOOD)] * 3))
    reverts("UnknownUpload", lambda: me.record_round(task, 1, digest(0, 1), downloads=[UploadRef(1, 1)]))  # not uploaded yet
    chain.as_(2).record_round(task, 1, digest(1, 1))
    reverts("SelfReference", lambda: me.record_round(task, 1, digest(0, 1), scores=[ScoreEntry(0, 1, GOOD)]))
    reverts("UnknownUpload", lambda: me.record_round(task, 1, digest(0, 1), scores=[ScoreEntry(1, 2, GOOD)]))
    reverts("UnknownUpload", lambda: me.record_round(task, 1, digest(0, 1), scores=[ScoreEntry(1, 0, GOOD)]))
    reverts("UnknownUpload", lambda: me.record_round(task, 1, digest(0, 1), downloads=[UploadRef(5, 1)]))
    reverts("EpochNotOver", lambda: chain.owner.settle_epoch(task))
    for r in (1, 2, 3):
        me.record_round(task, r, digest(0, r))
    reverts("RoundsDone", lambda: me.record_round(task, 4, digest(0, 4)))
    chain.at(task, 2 * EPOCH)
    reverts("TaskOver", lambda: chain.as_(2).record_round(task, 2, digest(1, 2)))


# ------------------------------------------------------------------------------ records and gas


def test_records_are_chained_and_carry_the_header(chain: Chain) -> None:
    task = chain.started(3)
    chain.as_(1).record_round(task, 1, digest(0, 1))
    chain.as_(2).record_round(task, 1, digest(1, 1), downloads=[UploadRef(0, 1)], scores=[ScoreEntry(0, 1, GOOD)])
    chain.as_(3).record_round(task, 1, digest(2, 1), downloads=[UploadRef(0, 1), UploadRef(1, 1)], scores=[ScoreEntry(0, 1, BAD), ScoreEntry(1, 1, GOOD)])
    records = chain.market.records(task)
    state = chain.market.get_task(task).state
    assert [r.type for r in records] == ["upload", "upload", "download", "score", "upload", "download", "download", "score", "score"]
    assert [r.id for r in records] == list(range(9)) and state.record_count == 9
    assert (state.uploads, state.downloads, state.scores) == (3, 3, 3)
    assert verify_chain(records, state.head)
    assert records[3].client == chain.accounts[2] and records[3].content == {"author": 0, "round": 1, "loss": GOOD, "score": 229, "counted": True}
    assert records[0].content["model_digest"] == digest(0, 1)
    tampered = [*records[:3], replace(records[3], content={**records[3].content, "loss": 0}), *records[4:]]
    assert not verify_chain(tampered)
    assert chain.market.score_book(task, 0, 0) == ([0, 229, 13], True)
    assert bounded_score(GOOD, 2 * MICRO) == chain.market.bounded_score(GOOD, 2 * MICRO) == 229
    assert [chain.market.bounded_score(x, 7) for x in (0, 3, 7, 99)] == [bounded_score(x, 7) for x in (0, 3, 7, 99)] == [255, 146, 1, 1]


def _round_gas(chain: Chain, clients: int) -> tuple[int, int]:
    """Gas of a steady-state client round (1 upload + clients - 1 downloads and scores, all counted),
    and of the epoch settlement that judges them."""
    task = chain.started(clients, replace(BASE, max_clients=clients, rounds=2, epochs=1, min_scorers=1))
    for i in range(1, clients + 1):
        chain.as_(i).record_round(task, 1, digest(i, 1))
    others = [j for j in range(clients) if j != 0]
    result = chain.as_(1).record_round(task, 2, digest(0, 2), downloads=[UploadRef(j, 1) for j in others], scores=[ScoreEntry(j, 1, GOOD) for j in others])
    chain.at(task, EPOCH)
    return result.gas_used, chain.owner.settle_epoch(task).gas_used


@pytest.mark.parametrize("clients", [4, 31])
def test_gas_per_client_round_is_bounded(chain: Chain, clients: int) -> None:
    round_gas, settle_gas = _round_gas(chain, clients)
    print(f"semi: {clients} clients: recordRound (1 upload + {clients - 1} downloads + {clients - 1} scores) {round_gas:,} gas; settleEpoch {settle_gas:,}")
    assert round_gas < SEMI_GAS_LIMITS["recordRound"] and settle_gas < SEMI_GAS_LIMITS["settleEpoch"]


# ------------------------------------------------------------------------------ payments


def _play_sybil_scenario(chain: Chain, sybils_collude: bool, sybil_models_good: bool) -> dict[int, int]:
    """Clients 0-3 honest, 4 and 5 a sybil pair; two rounds in one epoch, every round scores every
    other client's latest upload. Returns each account's credit after settlement."""
    task = chain.started(6, replace(BASE, epochs=1, rounds=2, min_scorers=2))
    honest, sybil = {0, 1, 2, 3}, {4, 5}

    def loss(scorer: int, author: int) -> int:
        good_author = author in honest or sybil_models_good
        if scorer in sybil and sybils_collude:
            return 0 if author in sybil else BAD  # score the partner up, everyone else down
        return GOOD if good_author else BAD

    for i in range(6):
        chain.as_(i + 1).record_round(task, 1, digest(i, 1))
    for i in range(6):
        others = [j for j in range(6) if j != i]
        latest = {j: 2 if j < i else 1 for j in others}
        chain.as_(i + 1).record_round(task, 2, digest(i, 2), scores=[ScoreEntry(j, latest[j], loss(i, j)) for j in others])
    chain.settle_all(task)
    return {i: chain.market.credit(chain.accounts[i]) for i in range(7)}


@pytest.mark.parametrize("sybil_models_good", [False, True])
def test_a_sybil_pair_gains_nothing_beyond_its_honest_share(chain: Chain, sybil_models_good: bool) -> None:
    honest_run = _play_sybil_scenario(chain, sybils_collude=False, sybil_models_good=sybil_models_good)
    chain.reset()
    colluding = _play_sybil_scenario(chain, sybils_collude=True, sybil_models_good=sybil_models_good)
    assert colluding == honest_run
    paid = 6 if sybil_models_good else 4
    each = REWARD // paid
    for client in range(6):
        earned = each if client < 4 or sybil_models_good else 0
        assert colluding[client + 1] == STAKE + earned
    assert colluding[0] == 6 * FEE + REWARD - paid * each  # licence fees + the division's remainder


def test_a_client_that_stops_uploading_is_slashed_and_the_buyer_gets_none_of_it(chain: Chain) -> None:
    params = replace(BASE, epochs=2, rounds=5, min_scorers=1, pass_score=1)
    task = chain.started(3, params)
    for i in range(3):  # epoch 0: everyone uploads and the others score it
        chain.as_(i + 1).record_round(task, 1, digest(i, 1))
    for i in range(3):
        chain.as_(i + 1).record_round(task, 2, digest(i, 2), scores=[ScoreEntry(j, 2 if j < i else 1, GOOD) for j in range(3) if j != i])
    chain.at(task, EPOCH + 5)  # epoch 1: client 2 stops
    for i in range(2):
        chain.as_(i + 1).record_round(task, 3, digest(i, 3), scores=[ScoreEntry(1 - i, 3 if i == 1 else 2, GOOD)])
    chain.owner.settle_epoch(task)
    assert chain.market.clients(task)[2].stake == STAKE  # uploaded in epoch 0: not late there
    chain.at(task, 2 * EPOCH)
    result = chain.owner.settle_epoch(task)
    cut = STAKE * 2_000 // 10_000
    assert [e.args["amount"] for e in result.events_named("ClientSlashed")] == [cut]
    first = REWARD // 2 // 3  # epoch 0: all three paid
    second = REWARD - REWARD // 2  # epoch 1: only client 0, whose epoch-1 upload client 1 scored
    # client 0's epoch-1 score names client 1's epoch-0 upload: recorded, not counted
    assert [e.args["counted"] for e in chain.market.logs() if e.name == "ScoreRecord"][-2:] == [False, True]
    assert chain.market.credit(chain.accounts[1]) == STAKE + first + second + cut
    assert chain.market.credit(chain.accounts[2]) == STAKE + first
    assert chain.market.credit(chain.accounts[3]) == STAKE - cut + first
    assert chain.market.credit(chain.accounts[0]) == 3 * FEE + REWARD - 3 * first - second


def test_a_client_done_with_its_rounds_is_never_late(chain: Chain) -> None:
    task = chain.started(2, replace(BASE, epochs=3, rounds=1, min_scorers=1, pass_score=1))
    chain.as_(1).record_round(task, 1, digest(0, 1))
    chain.as_(2).record_round(task, 1, digest(1, 1), scores=[ScoreEntry(0, 1, GOOD)])
    chain.settle_all(task)
    assert [e.name for e in chain.market.logs() if e.name == "ClientSlashed"] == []
    assert chain.market.credit(chain.accounts[2]) == STAKE


def test_every_wei_is_conserved_end_to_end(chain: Chain) -> None:
    before = {a: chain.w3.eth.get_balance(a) for a in chain.accounts[:5]}
    gas_paid = dict.fromkeys(before, 0)

    def spend(account: str, result: Any) -> None:
        receipt = chain.w3.eth.get_transaction_receipt(result.tx_hash)
        gas_paid[account] += receipt["gasUsed"] * receipt["effectiveGasPrice"]

    owner = chain.accounts[0]
    posted = chain.owner.post_task(replace(BASE, rounds=2), REWARD)
    spend(owner, posted)
    task = task_id_of(posted)
    for i in range(1, 5):
        spend(chain.accounts[i], chain.as_(i).join_task(task))
    spend(owner, chain.owner.start_task(task))
    for i in range(4):
        scores = [ScoreEntry(j, 1, BAD if j == 3 else GOOD) for j in range(i)]
        spend(chain.accounts[i + 1], chain.as_(i + 1).record_round(task, 1, digest(i, 1), scores=scores))
    assert chain.w3.eth.get_balance(chain.market.address) == chain.market.task_balance(task) + chain.market.total_credit()
    chain.at(task, 2 * EPOCH)  # epoch 1: nobody uploads round 2: all four late
    for _ in range(2):
        spend(owner, chain.owner.settle_epoch(task))
    assert chain.market.task_balance(task) == 0
    assert chain.w3.eth.get_balance(chain.market.address) == chain.market.total_credit()
    for account in before:
        spend(account, chain.market.with_account(account).withdraw())
    assert chain.w3.eth.get_balance(chain.market.address) == 0
    after = {a: chain.w3.eth.get_balance(a) + gas_paid[a] for a in before}
    assert sum(after.values()) == sum(before.values())
    assert after[owner] - before[owner] == 4 * FEE - 2 * (REWARD // 2 // 2)  # epoch 0 paid clients 0 and 1 (two scorers each)


# ------------------------------------------------------------------------------ state machine


class SemiMarketMachine(RuleBasedStateMachine):
    """Random joins, starts, rounds (with downloads and scores of existing uploads), time jumps,
    settlements, cancellations and withdrawals on one task; after every step the contract holds
    exactly the task's money plus the credits, and a finished task holds nothing."""

    chain: Chain

    @initialize()
    def fresh(self) -> None:
        self.chain.reset()
        self.params = replace(BASE, epochs=3, rounds=4, min_scorers=1, max_clients=5)
        self.task = self.chain.post(self.params)
        self.clients: list[int] = []  # account numbers in join order
        self.rounds: list[int] = []

    def _state(self) -> Any:
        return self.chain.market.get_task(self.task).state

    @precondition(lambda self: len(self.clients) < 5)
    @rule(data=st.data())
    def join(self, data: st.DataObject) -> None:
        if self._state().status is not SemiStatus.OPEN:
            return
        account = data.draw(st.sampled_from([a for a in range(1, 8) if a not in self.clients]))
        self.chain.as_(account).join_task(self.task)
        self.clients.append(account)
        self.rounds.append(0)

    @rule()
    def start(self) -> None:
        if self._state().status is SemiStatus.OPEN and len(self.clients) >= 2:
            self.chain.owner.start_task(self.task)

    @rule(data=st.data())
    def play_round(self, data: st.DataObject) -> None:
        s = self._state()
        if s.status is not SemiStatus.RUNNING or latest_timestamp(self.chain.w3) + 1 >= s.start_time + 3 * EPOCH:
            return
        me = data.draw(st.integers(0, len(self.clients) - 1))
        if self.rounds[me] >= self.params.rounds:
            return
        uploaded = [j for j in range(len(self.clients)) if j != me and self.rounds[j] > 0]
        picked = data.draw(st.lists(st.sampled_from(uploaded), unique=True)) if uploaded else []
        scores = [ScoreEntry(j, data.draw(st.integers(1, self.rounds[j])), data.draw(st.integers(0, 3 * MICRO))) for j in picked]
        self.rounds[me] += 1
        self.chain.as_(self.clients[me]).record_round(
            self.task, self.rounds[me], digest(me, self.rounds[me]), downloads=[UploadRef(e.author, e.round) for e in scores], scores=scores
        )

    @rule(seconds=st.integers(1, 2 * EPOCH))
    def wait(self, seconds: int) -> None:
        set_next_timestamp(self.chain.w3, latest_timestamp(self.chain.w3) + seconds)

    @rule()
    def settle(self) -> None:
        s = self._state()
        if s.status is SemiStatus.RUNNING and latest_timestamp(self.chain.w3) + 1 >= s.start_time + (s.epochs_settled + 1) * EPOCH:
            self.chain.owner.settle_epoch(self.task)

    @rule()
    def cancel(self) -> None:
        if self._state().status is SemiStatus.OPEN:
            self.chain.owner.cancel_task(self.task)

    @rule(account=st.integers(0, 7))
    def withdraw(self, account: int) -> None:
        if self.chain.market.credit(self.chain.accounts[account]) > 0:
            self.chain.as_(account).withdraw()

    @invariant()
    def money_is_conserved(self) -> None:
        if not hasattr(self, "task"):
            return
        m = self.chain.market
        assert self.chain.w3.eth.get_balance(m.address) == m.task_balance(self.task) + m.total_credit()
        s = self._state()
        if s.status in (SemiStatus.SETTLED, SemiStatus.CANCELLED):
            assert m.task_balance(self.task) == 0
        assert s.stakes_held == sum(c.stake for c in m.clients(self.task)) or s.status is SemiStatus.CANCELLED


def test_state_machine(module_chain: Chain) -> None:
    SemiMarketMachine.chain = module_chain
    machine = SemiMarketMachine.TestCase
    machine.settings = settings(max_examples=12, stateful_step_count=14, deadline=None, suppress_health_check=list(HealthCheck))
    machine().runTest()
