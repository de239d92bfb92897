"""Property tests of the Marketplace: random action sequences against the reference model.

A hypothesis RuleBasedStateMachine drives the deployed contract (embedded eth-tester chain) and the
Python reference model (tests/contracts/model.py) with the same random calls: tasks posted with
random (sometimes invalid) parameters, top-ups, licences, joins, starts, commits (honest, replayed,
random, copied digests), reveals (matching and tampered), score commitments (honest near a shared
truth, random, negative, extreme, poison, wrong count, another member's) and their reveals (own,
tampered), proposals, vote commitments (ok / reject, replayed) and their reveals (own, flipped),
time jumps (small, onto deadlines, past every deadline),
closeRound, cancel, the owner's early finalize, finalize, generateTrainingPayments and withdraw; by
the right actors and by wrong ones. Two or more tasks run at once with overlapping participants.
One task in four elects its committee from its trainers (maxValidators 0, docs/protocol.md
"Elected committees"): its members score instead of training (and sometimes try to commit an
update anyway), the others train.

For every call the model predicts success or the set of custom errors that may come back; the
contract must agree (a revert must carry one of those errors). After every step every invariant
of design.md §3 / docs/protocol.md is checked: the contract's ether balance equals the sum of the
task balances plus the total credit; each task balance equals escrow + stakes + accrued and the
model's; per-task conservation (deposited == credited out + balance); every account's credit and
every participant's stake, earnings and slashes equal the model's; the current round's phase,
deadline, committee and counters equal the model's. Every round's committee (RoundStarted and
getRound, when it opens and at the end of the sequence) is the model's; in an elected task no
sitting member has a committed update, and no committee sits twice running when at least
committeeSize trainers sit outside it.

Running it:

    .venv/bin/python -m pytest tests/contracts/test_invariants.py            # CI: 200 sequences
    FEDMARKET_HYPOTHESIS_EXAMPLES=10000 .venv/bin/python -m pytest tests/contracts/test_invariants.py
    FEDMARKET_HYPOTHESIS_PROFILE=thorough ...                                  # same: 10,000

FEDMARKET_HYPOTHESIS_STEPS=N changes the maximum number of rules per sequence (default 30).
See tests/contracts/conftest_hypothesis.py for the profiles.

Each sequence starts from a fresh chain state: the deployment is made once and every sequence
reverts to an eth-tester snapshot taken after it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth.exceptions import Revert
from eth.vm.message import Message
from eth_abi import decode, encode
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector, keccak, to_canonical_address, to_checksum_address
from eth_utils.abi import collapse_if_tuple, get_abi_input_types, get_abi_output_types
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model as M  # noqa: E402
from conftest_hypothesis import PARTS, marketplace_settings  # noqa: E402
from contract_helpers import STATE_FIELDS  # noqa: E402

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
FAR_FUTURE_S = 10**8
"""Chain time is moved this far past the wall clock so that every block is exactly its parent + 1 s."""

DEFAULT_GAS = 8_000_000
SIMULATION_GAS = 30_000_000
SEND_REVERT_EVERY = 5
"""An expected revert is sent as a real transaction once in this many (the others only simulated)."""

# --------------------------------------------------------------------------------------- driver


@dataclass
class Outcome:
    """What one transaction did on chain."""

    ok: bool
    error: tuple[str, tuple[Any, ...]] | None  # decoded revert (name, args) when not ok
    tx_hash: bytes | None
    timestamp: int
    logs: list[dict[str, Any]]
    gas_used: int
    gas_price: int


class ContractDriver:
    """Thin, fast access to a contract on the embedded chain (eth-tester, no web3 middleware).

    `transact` first runs the call against the pending block (same state and timestamp as the
    transaction) to learn its revert reason, then sends the transaction with an explicit gas limit
    and checks the two agree.
    """

    def __init__(self, w3: Any, address: str, abi: list[dict[str, Any]], gas_limits: dict[str, int] | None = None) -> None:
        self.w3 = w3
        self.tester = w3.provider.ethereum_tester
        self.address = to_checksum_address(address)
        self.abi = abi
        self.gas_limits = gas_limits or {}
        self.caller = self.tester.get_accounts()[0]  # a funded account for eth_call
        self._address_bytes = to_canonical_address(self.address)
        self._state: Any = None
        self._state_key: Any = None
        self._code = b""
        self.functions: dict[str, dict[str, Any]] = {}
        for item in abi:
            if item.get("type") == "function":
                self.functions[item["name"]] = {
                    "selector": function_abi_to_4byte_selector(item),
                    "inputs": list(get_abi_input_types(item)),
                    "outputs": list(get_abi_output_types(item)),
                }
        self.errors: dict[bytes, tuple[str, list[str]]] = {
            bytes.fromhex("08c379a0"): ("Error", ["string"]),
            bytes.fromhex("4e487b71"): ("Panic", ["uint256"]),
        }
        for item in abi:
            if item.get("type") == "error":
                types = [collapse_if_tuple(i) for i in item.get("inputs", [])]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self.errors[selector] = (item["name"], types)
        self.events: dict[bytes, dict[str, Any]] = {}
        for item in abi:
            if item.get("type") == "event":
                self.events[event_abi_to_log_topic(item)] = item

    # ---------------------------------------------------------------- encoding

    def encode_call(self, fn: str, *args: Any) -> bytes:
        meta = self.functions[fn]
        return meta["selector"] + encode(meta["inputs"], list(args))

    def decode_error(self, data: bytes) -> tuple[str, tuple[Any, ...]]:
        if len(data) < 4:
            return ("<no data>", ())
        entry = self.errors.get(data[:4])
        if entry is None:
            return (f"<unknown 0x{data[:4].hex()}>", ())
        name, types = entry
        values = decode(types, data[4:])
        return (name, tuple(_normalize(v) for v in values))

    def decode_logs(self, logs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for log in logs:
            if to_checksum_address(log["address"]) != self.address or not log["topics"]:
                continue
            item = self.events.get(_to_bytes(log["topics"][0]))
            if item is None:
                continue
            indexed = [i for i in item["inputs"] if i["indexed"]]
            plain = [i for i in item["inputs"] if not i["indexed"]]
            values: dict[str, Any] = {}
            for inp, topic in zip(indexed, log["topics"][1:]):
                values[inp["name"]] = _normalize(decode([collapse_if_tuple(inp)], _to_bytes(topic))[0])
            decoded = decode([collapse_if_tuple(i) for i in plain], _to_bytes(log["data"]))
            for inp, value in zip(plain, decoded):
                values[inp["name"]] = _normalize(value)
            out.append((item["name"], values))
        return out

    # ---------------------------------------------------------------- chain access

    def now(self) -> int:
        """Timestamp of the next transaction's block (the pending block)."""
        return int(self.tester.backend.chain.header.timestamp)

    def prevrandao(self) -> int:
        """block.prevrandao the next transaction sees (the pending header's mix hash)."""
        return int.from_bytes(bytes(self.tester.backend.chain.header.mix_hash), "big")

    def warp_to(self, timestamp: int) -> None:
        """Make `timestamp` the next transaction's block timestamp."""
        now = self.now()
        if timestamp < now:
            raise ValueError("time only moves forward")
        if timestamp > now:
            self.tester.time_travel(timestamp)

    def balance(self, account: str) -> int:
        return int(self.tester.get_balance(to_checksum_address(account)))

    # eth-tester's own eth_call builds a fresh VM state, spoofs and validates a transaction and
    # throws the state away every time (~4-14 ms a call). The views below run the message
    # directly against one state of the pending block (same block context: timestamp,
    # prevrandao), kept until the chain moves, so storage reads are cached between calls.

    def _view_state(self) -> Any:
        chain = self.tester.backend.chain
        header = chain.header  # the pending block's header
        key = (header.parent_hash, header.timestamp, header.mix_hash)
        if self._state_key != key:
            self._state = chain.get_vm(at_header=header).state
            self._state_key = key
            self._code = self._state.get_code(self._address_bytes)
        return self._state

    def _execute(self, sender: str, data: bytes, value: int = 0) -> tuple[bool, bytes]:
        """Run a message on the pending state and undo it: (success, output or revert data)."""
        state = self._view_state()
        origin = to_canonical_address(sender)
        context = state.get_transaction_context_class()(gas_price=0, origin=origin)
        message = Message(gas=SIMULATION_GAS, to=self._address_bytes, sender=origin, value=value, data=data, code=self._code)
        snapshot = state.snapshot()
        try:
            computation = state.computation_class.apply_message(state, message, context)
        finally:
            state.revert(snapshot)
        if computation.is_success:
            return True, bytes(computation.output)
        error = computation.error
        data_out = bytes(error.args[0]) if isinstance(error, Revert) and error.args else b""
        return False, data_out

    def storage_root(self) -> bytes:
        """Storage root of the contract at the latest block (changes iff its storage changed)."""
        return bytes(self._view_state()._account_db._get_storage_root(self._address_bytes))

    def call(self, fn: str, *args: Any, sender: str | None = None) -> Any:
        ok, raw = self._execute(sender or self.caller, self.encode_call(fn, *args))
        if not ok:
            raise AssertionError(f"view {fn}{args} reverted: {self.decode_error(raw)}")
        values = decode(self.functions[fn]["outputs"], raw)
        values = tuple(_normalize(v) for v in values)
        return values[0] if len(values) == 1 else values

    def try_call(self, fn: str, *args: Any, sender: str | None = None) -> tuple[bool, Any]:
        """(True, decoded outputs) or (False, (error name, args))."""
        ok, raw = self._execute(sender or self.caller, self.encode_call(fn, *args))
        if not ok:
            return False, self.decode_error(raw)
        values = tuple(_normalize(v) for v in decode(self.functions[fn]["outputs"], raw))
        return True, values[0] if len(values) == 1 else values

    def transact(self, sender: str, fn: str, *args: Any, value: int = 0, send_reverts: bool = True) -> Outcome:
        """Simulate on the pending block, then send with an explicit gas limit; both must agree.

        With `send_reverts=False` a call whose simulation reverts is not sent: the transaction
        would run the same code on the same state and block context and revert too (with the
        same error, or out of gas under its smaller limit), changing nothing but the sender's
        nonce and the clock.
        """
        calldata = self.encode_call(fn, *args)
        gas = self.gas_limits.get(fn, DEFAULT_GAS)
        timestamp = self.now()
        error: tuple[str, tuple[Any, ...]] | None = None
        simulated_ok, raw = self._execute(sender, calldata, value)
        if not simulated_ok:
            error = self.decode_error(raw)
            if not send_reverts:
                return Outcome(ok=False, error=error, tx_hash=None, timestamp=timestamp, logs=[], gas_used=0, gas_price=0)
        tx = {"from": to_checksum_address(sender), "to": self.address, "data": "0x" + calldata.hex(), "value": value, "gas": gas}
        tx_hash = self.tester.send_transaction(tx)
        ok, logs, gas_used = self._last_receipt()
        assert ok == simulated_ok, (
            f"{fn}: the simulated call and the transaction disagree (simulated {simulated_ok} {error}, transaction {ok}, gas used {gas_used} of {gas})"
        )
        return Outcome(ok=ok, error=error, tx_hash=tx_hash, timestamp=timestamp, logs=logs, gas_used=gas_used, gas_price=-1)

    def _last_receipt(self) -> tuple[bool, list[dict[str, Any]], int]:
        """Status, logs and gas of the transaction just mined (auto-mining: alone in the latest
        block). Read straight from py-evm: eth-tester's receipt recovers the sender's address from
        the signature, which costs more than the transaction."""
        chain = self.tester.backend.chain
        block = chain.get_canonical_block_by_number(chain.get_canonical_head().block_number)
        (receipt,) = block.get_receipts(chain.chaindb)
        logs = [{"address": log.address, "topics": [t.to_bytes(32, "big") for t in log.topics], "data": log.data} for log in receipt.logs]
        return receipt.state_root == b"\x01", logs, int(receipt.gas_used)

    def gas_price_of(self, tx_hash: bytes) -> int:
        return int(self.tester.get_transaction_receipt(tx_hash)["effective_gas_price"])


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _normalize(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    if isinstance(value, (tuple, list)):
        return tuple(_normalize(v) for v in value)
    return value


# --------------------------------------------------------------------------------------- checks


@dataclass
class Scope:
    """Which records to compare; None: all of them."""

    accounts: set[str] | None = None  # credit(account)
    tasks: set[int] | None = None  # getModel, revealedUpdates / utilities of the last two rounds
    participants: set[tuple[int, str]] | None = None  # participant(task, account)
    rounds: set[int] | None = None  # getRound of the task's current round


EVERYTHING = Scope()


def check_contract_against_model(chain: ContractDriver, market: M.Market, accounts: list[str], scope: Scope = EVERYTHING) -> None:
    """Every invariant of design.md §3 / docs/protocol.md, contract vs model, at the pending block.

    Money (contract balance, total credit, every task balance, per-task conservation) is always
    checked; `scope` says which records (credits, tasks, participants, current rounds) are
    compared too (see MarketplaceMachine.contract_matches_model for what it may leave out).
    """
    balance = chain.balance(chain.address)
    total_credit = chain.call("totalCredit")
    assert total_credit == market.total_credit, f"totalCredit {total_credit} != model {market.total_credit}"
    task_balances = {mid: chain.call("taskBalance", mid) for mid in market.tasks}
    assert balance == sum(task_balances.values()) + total_credit, (
        f"contract holds {balance} wei but tasks hold {sum(task_balances.values())} and credits {total_credit}"
    )
    assert balance == market.contract_balance, f"contract balance {balance} != model {market.contract_balance}"
    for mid, task in market.tasks.items():
        assert task_balances[mid] == task.balance, f"taskBalance({mid}) {task_balances[mid]} != model {task.balance}"
        assert task.deposited == task.credited_out + task_balances[mid], f"task {mid} created or lost wei"
        carry = chain.call("trainerCarry", mid)
        assert carry == task.trainer_carry, f"trainerCarry({mid}) {carry} != model {task.trainer_carry}"
        # No slashed wei reaches the buyer: it is credited at most its escrow and the licence fees.
        assert task.credits.get(task.owner, 0) <= task.owner_deposited + task.license_income, f"task {mid}'s buyer gained slashed wei"
        if task.status == M.Status.SETTLED:
            assert task_balances[mid] == 0, f"task {mid} is {task.status.name} but holds {task_balances[mid]} wei"
        if task.status == M.Status.CANCELLED:  # only the fees of licensees that never joined, until reclaimed
            assert task_balances[mid] == task.license_held, f"task {mid} is cancelled but holds {task_balances[mid]} wei"
    _check_records(chain, market, accounts, task_balances, scope)
    _check_rounds(chain, market, scope.rounds)


def _check_records(chain: ContractDriver, market: M.Market, accounts: list[str], task_balances: dict[int, int], scope: Scope) -> None:
    if scope.tasks is None:
        assert chain.call("modelCount") == len(market.tasks)
    for account in accounts:
        if scope.accounts is not None and account not in scope.accounts:
            continue
        got = chain.call("credit", account)
        assert got == market.credit_of(account), f"credit({account}) {got} != model {market.credit_of(account)}"
    for mid, task in market.tasks.items():
        for account, part in task.participants.items():
            if scope.participants is not None and (mid, account) not in scope.participants:
                continue
            role, stake_remaining, earned, slashed, licensed = chain.call("participant", mid, account)
            assert role == int(part.role), f"task {mid} {account} role {role} != model {part.role!r}"
            assert licensed == part.licensed, f"task {mid} {account} licensed {licensed} != model {part.licensed}"
            assert slashed == part.slashed, f"task {mid} {account} slashed {slashed} != model {part.slashed}"
            # the record keeps its values after settlement / cancellation (credited by then)
            assert stake_remaining == part.stake_remaining, f"task {mid} {account} stakeRemaining {stake_remaining} != model {part.stake_remaining}"
            assert earned == part.earned, f"task {mid} {account} earned {earned} != model {part.earned}"
        if scope.tasks is not None and mid not in scope.tasks:
            continue
        params, state = chain.call("getModel", mid)
        assert params == _normalize(task.params.as_tuple()), f"task {mid} params {params} != model {task.params}"
        got = dict(zip(STATE_FIELDS, state, strict=True))
        expected = (
            task.owner,
            int(task.status),
            task.current_round,
            task.rounds_closed,
            task.reward,
            task.escrow,
            task.stakes_held,
            task.accrued,
            task.license_income,
            task.global_digest,
            len(task.trainers),
            len(task.validators),
            task.aggregator_joined,
            task.license_held,
            task.start_deadline,
            task.end_requested,
        )
        for name, e in zip(STATE_FIELDS, expected, strict=True):
            assert got[name] == e, f"task {mid} {name}: contract {got[name]!r} != model {e!r}"
        assert got["escrow"] + got["stakesHeld"] + got["accrued"] + got["licenseHeld"] == task_balances[mid]
        assert list(chain.call("trainers", mid)) == task.trainers, f"task {mid} trainer seats"
        assert list(chain.call("validators", mid)) == task.validators, f"task {mid} validator seats"
        # per-update data of the current and the previous round (kept in two parity buffers)
        for number in (task.current_round - 1, task.current_round):
            rnd = task.rounds.get(number)
            if rnd is None:
                continue
            trainers, digests, samples = chain.call("revealedUpdates", mid, number)
            assert list(zip(trainers, digests, samples)) == [(r.trainer, r.update_digest, r.num_samples) for r in rnd.reveals], (
                f"task {mid} round {number} revealedUpdates {list(zip(trainers, digests, samples))} != model {rnd.reveals}"
            )
            utilities = chain.call("utilities", mid, number)
            assert list(utilities) == rnd.utilities(), f"task {mid} round {number} utilities {utilities} != model {rnd.utilities()}"


def _check_rounds(chain: ContractDriver, market: M.Market, tasks: set[int] | None) -> None:
    now = chain.now()
    for mid, task in market.tasks.items():
        if task.status != M.Status.TRAINING or (tasks is not None and mid not in tasks):
            continue
        rnd = task.round()
        assert rnd is not None
        view = chain.call("getRound", mid, task.current_round)
        (
            number,
            phase,
            deadline,
            committee,
            commits,
            reveals,
            score_commits,
            scores_submitted,
            vote_commits,
            proposed,
            proposed_digest,
            proposed_metric,
            confirmations,
            rejections,
            closed,
        ) = view
        assert number == rnd.number
        assert list(committee) == rnd.committee, f"task {mid} round {rnd.number} committee {committee} != model {rnd.committee}"
        if task.elected:
            _check_members_did_not_train(chain, mid, rnd.number, committee)
        assert closed == rnd.closed, f"task {mid} round {rnd.number} closed {closed} != model {rnd.closed}"
        assert (commits, reveals, score_commits, scores_submitted, vote_commits, confirmations, rejections) == (
            len(rnd.commitments),
            len(rnd.reveals),
            len(rnd.scores) if rnd.proposed else len(rnd.score_commits),
            len(rnd.scores),
            len(rnd.vote_commits) if rnd.proposed else 0,
            len(rnd.votes),
            rnd.rejections,
        ), f"task {mid} round {rnd.number} counters"
        assert proposed == rnd.proposed
        if rnd.proposed:
            assert (proposed_digest, proposed_metric) == (rnd.proposed_digest, rnd.proposed_metric)
        model_phase, model_deadline = market.phase_at(task, rnd, now)
        assert (phase, deadline) == (int(model_phase), model_deadline), (
            f"task {mid} round {rnd.number} at t={now}: contract phase {M.Phase(phase).name} deadline {deadline}, "
            f"model {model_phase.name} deadline {model_deadline}"
        )


def _check_members_did_not_train(chain: ContractDriver, mid: int, number: int, committee: list[str]) -> None:
    """An elected task's sitting member never has a committed update in the round it scores."""
    for member in committee:
        assert not chain.call("hasCommitted", mid, number, member), f"task {mid} round {number}: member {member} committed an update"


def check_every_committee(chain: ContractDriver, market: M.Market) -> None:
    """Every round's committee on chain (getRound) is the model's; in an elected task none of its
    members committed an update in that round."""
    for mid, task in market.tasks.items():
        for number, rnd in sorted(task.rounds.items()):
            committee = list(chain.call("getRound", mid, number)[3])
            assert committee == rnd.committee, f"task {mid} round {number}: getRound committee {committee} != model {rnd.committee}"
            if task.elected:
                _check_members_did_not_train(chain, mid, number, committee)


# --------------------------------------------------------------------------------------- strategies

SHARES = st.one_of(
    st.just((7000, 2000, 1000)),
    st.sampled_from([(10000, 0, 0), (0, 10000, 0), (0, 0, 10000), (3333, 3333, 3334)]),
    st.tuples(st.integers(0, 10000), st.integers(0, 10000)).map(lambda ab: (min(ab), max(ab) - min(ab), 10000 - max(ab))),
)
BPS_VALUES = st.one_of(st.sampled_from([0, 1, 1000, 2500, 5000, 9999, 10000]), st.integers(0, 10000))
WEI = st.one_of(st.sampled_from([1, 2, 3, 7, 10, 999, 10**23]), st.integers(1, 10**18))
STAKE = st.one_of(st.just(0), WEI, WEI, WEI)
"""Stakes: the protocol does not forbid a zero stake (then nothing can be slashed)."""
THRESHOLDS = st.one_of(st.sampled_from([M.INT64_MIN, -1_000_000, -1, 0]), st.integers(-(10**6), 0))
"""Poison thresholds: the contract refuses one above 0 (PoisonThresholdPositive)."""
LATE_BPS = st.one_of(st.sampled_from([0, 1, 1000, 2500, 5000]), st.integers(0, M.MAX_LATE_SLASH_BPS))
PACES = {"relaxed": st.integers(12, 40), "mixed": st.integers(1, 40), "tight": st.integers(1, 3)}
"""Phase windows of a task: relaxed (everyone can act in time), mixed, tight (stragglers galore)."""
DIGEST = st.binary(min_size=32, max_size=32).map(lambda b: b[:31] + bytes([b[31] | 1]))
"""A non-zero 32-byte digest (the contract refuses zero spec / model digests)."""
SCORE = st.one_of(
    st.integers(-2_000_000, 2_000_000),
    st.integers(1, 1_000_000),
    st.sampled_from([0, 1, -1, M.INT64_MIN, M.INT64_MAX, M.INT64_MAX - 1, M.INT64_MIN + 1]),
)


@st.composite
def task_params(draw: Any, aggregator: str) -> M.Params:
    # one task in six is big: up to 9 trainers, so reveal entries (3 a word) and scores (4 a
    # word) span several packed storage words
    big = draw(st.integers(0, 5)) == 0
    min_trainers = draw(st.integers(4, 7)) if big else draw(st.integers(1, 3))
    windows = PACES[draw(st.sampled_from(["relaxed"] * 4 + ["mixed", "tight"]))]
    committee = draw(st.sampled_from([1, 2, 3])) if big else draw(st.sampled_from([1, 1, 2, 3, 3, 4]))
    # one task in four elects its committee from its trainers (maxValidators 0): at least
    # 2 * committeeSize trainers, so a whole next committee sits outside every committee
    # (docs/protocol.md, "Elected committees")
    elected = draw(st.integers(0, 3), label="elected") == 0
    if elected and not big:
        committee = draw(st.sampled_from([1, 2, 2, 3]), label="elected-committee")
        min_trainers = 2 * committee + draw(st.integers(0, 1), label="elected-spare")
    elif elected:
        min_trainers = max(min_trainers, 2 * committee)
    trainer_share, validator_share, aggregator_share = draw(SHARES)
    return M.Params(
        spec_digest=draw(DIGEST),
        initial_model_digest=draw(DIGEST),
        aggregator=aggregator,
        rounds=draw(st.integers(1, 4)),
        min_trainers=min_trainers,
        max_trainers=min_trainers + draw(st.integers(0, 1 if elected and not big else 2)),
        committee_size=committee,
        max_validators=0 if elected else committee + draw(st.integers(0, 1 if big else 3)),
        commit_window=draw(windows),
        reveal_window=draw(windows),
        score_window=draw(windows),
        publish_window=draw(windows),
        confirm_window=draw(windows),
        license_fee=draw(st.one_of(st.just(0), WEI)),
        trainer_stake=draw(STAKE),
        validator_stake=draw(STAKE),
        aggregator_stake=draw(STAKE),
        late_slash_bps=draw(LATE_BPS),
        bad_slash_bps=draw(BPS_VALUES),
        trainer_share_bps=trainer_share,
        validator_share_bps=validator_share,
        aggregator_share_bps=aggregator_share,
        poison_threshold=draw(THRESHOLDS),
        start_window=draw(st.one_of(st.integers(1, 60), st.integers(200, 2000))),
        max_samples=draw(st.sampled_from([1000, 10**6, 2**64 - 1, 2**64 - 1])),
        agreement_tolerance_bps=draw(st.one_of(st.just(10_000), st.sampled_from([1, 5000, M.MAX_TOLERANCE_BPS]), st.integers(1, M.MAX_TOLERANCE_BPS))),
    )


INVALID_MUTATIONS: dict[str, Callable[[M.Params], None]] = {
    "rounds0": lambda p: setattr(p, "rounds", 0),
    "rounds_max": lambda p: setattr(p, "rounds", M.MAX_ROUNDS + 1),
    "min_trainers0": lambda p: setattr(p, "min_trainers", 0),
    "max_lt_min": lambda p: setattr(p, "max_trainers", p.min_trainers - 1),
    "max_trainers_cap": lambda p: setattr(p, "max_trainers", M.MAX_TRAINERS + 1),
    "committee0": lambda p: setattr(p, "committee_size", 0),
    "committee_cap": lambda p: (setattr(p, "committee_size", M.MAX_COMMITTEE + 1), setattr(p, "max_validators", M.MAX_COMMITTEE + 1)),
    "max_validators_lt": lambda p: setattr(p, "max_validators", p.committee_size - 1),
    "max_validators_cap": lambda p: setattr(p, "max_validators", M.MAX_VALIDATORS + 1),
    "elected_min_trainers": lambda p: (setattr(p, "max_validators", 0), setattr(p, "min_trainers", p.committee_size)),
    "elected_max_trainers": lambda p: (setattr(p, "max_validators", 0), setattr(p, "max_trainers", M.MAX_ELECTED_TRAINERS + 1)),
    "window0": lambda p: setattr(p, "score_window", 0),
    "window_cap": lambda p: setattr(p, "confirm_window", M.MAX_WINDOW + 1),
    "late_bps": lambda p: setattr(p, "late_slash_bps", 10001),
    "late_bps_cap": lambda p: setattr(p, "late_slash_bps", M.MAX_LATE_SLASH_BPS + 1),
    "poison_positive": lambda p: setattr(p, "poison_threshold", 1),
    "bad_bps": lambda p: setattr(p, "bad_slash_bps", 10001),
    "shares": lambda p: setattr(p, "aggregator_share_bps", p.aggregator_share_bps + 1),
    "spec_zero": lambda p: setattr(p, "spec_digest", bytes(32)),
    "initial_zero": lambda p: setattr(p, "initial_model_digest", bytes(32)),
    "aggregator_zero": lambda p: setattr(p, "aggregator", ZERO_ADDRESS),
    "stake_huge": lambda p: setattr(p, "validator_stake", M.MAX_STAKE + 1),
    "start_window0": lambda p: setattr(p, "start_window", 0),
    "max_samples0": lambda p: setattr(p, "max_samples", 0),
    "start_window_cap": lambda p: setattr(p, "start_window", M.MAX_WINDOW + 1),
    "tolerance0": lambda p: setattr(p, "agreement_tolerance_bps", 0),
    "tolerance_cap": lambda p: setattr(p, "agreement_tolerance_bps", M.MAX_TOLERANCE_BPS + 1),
}

# --------------------------------------------------------------------------------------- the machine

ACTIONS: list[tuple[str, int, str]] = [
    # (method, weight, needs): needs "training" (a task is training), "finished" (a task can be
    # finalized or settled), "room" (fewer than 4 tasks) or "" (always)
    ("play_phase", 8, "training"),
    ("play_round", 4, "training"),
    ("warp", 4, ""),
    ("settle_and_withdraw", 2, "finished"),
    ("staff_task", 1, ""),
    ("post_task", 1, "room"),
    ("top_up", 1, ""),
    ("buy_license", 1, ""),
    ("join", 2, ""),
    ("start", 1, ""),
    ("cancel", 1, ""),
    ("leave", 1, ""),
    ("commit", 2, ""),
    ("reveal", 2, ""),
    ("score_commit", 1, ""),
    ("score_reveal", 1, ""),
    ("publish", 1, ""),
    ("vote_commit", 1, ""),
    ("vote_reveal", 1, ""),
    ("close_round", 1, ""),
    ("finalize", 1, ""),
    ("generate_payments", 1, ""),
    ("withdraw", 1, ""),
]

_DEBUG = bool(os.environ.get("FEDMARKET_HYPOTHESIS_DEBUG"))
"""FEDMARKET_HYPOTHESIS_DEBUG=1 prints every call and each sequence's end state (with -s)."""

_ENV: dict[str, Any] = {}
"""Set by the test function: driver, snapshot id and accounts (hypothesis builds a machine per sequence)."""

_STATS: dict[str, int] = {
    "sequences": 0,
    "steps": 0,
    "unchanged_steps": 0,
    "calls": 0,
    "sent": 0,
    "reverts": 0,
    "rounds_closed": 0,
    "settled": 0,
    "rejected_proposals": 0,
    "slashes": 0,
    "poison_slashes": 0,
    "disagreed_slashes": 0,
    "refused_updates": 0,
    "third_rounds": 0,
    "elected_rounds": 0,
    "withdrawals": 0,
}


class MarketplaceMachine(RuleBasedStateMachine):
    """Random action sequences; contract and model must agree after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.chain: ContractDriver = _ENV["chain"]
        self.chain.tester.revert_to_snapshot(_ENV["snapshot"])
        self.accounts: list[str] = [a.lower() for a in _ENV["accounts"]]
        self.owners = self.accounts[:3]
        self.model = M.Market()
        # (task, round, trainer) -> (digest, numSamples, salt) the trainer will reveal
        self.secrets: dict[tuple[int, int, str], tuple[bytes, int, bytes]] = {}
        # (task, round, member) -> (scores, salt) / (ok, salt) the member will reveal
        self.score_secrets: dict[tuple[int, int, str], tuple[list[int], bytes]] = {}
        self.vote_secrets: dict[tuple[int, int, str], tuple[bool, bytes]] = {}
        # (task, round) -> each update's "true" value, near which honest members score
        self.truths: dict[tuple[int, int], list[int]] = {}
        self.last_outcome: Outcome | None = None
        self.reverts_seen = 0
        self.model_version = 0  # bumped whenever a call succeeds (the model changed)
        self.checked_fingerprint: tuple[bytes, int, int] | None = None
        # records the model changed since the last check
        self.dirty_tasks: set[int] = set()
        self.dirty_participants: set[tuple[int, str]] = set()
        self.dirty_accounts: set[str] = set()
        self.checked_phases: dict[int, tuple[M.Phase, int]] = {}
        self.rotation = 0
        _STATS["sequences"] += 1

    # ------------------------------------------------------------ the one place calls are made

    def act(self, sender: str, fn: str, args: tuple[Any, ...], apply: Callable[[M.Market, int], Any], value: int = 0) -> bool:
        """Send `fn(*args)` from `sender`; the model (a copy) predicts the outcome; they must agree."""
        now = self.chain.now()
        trial = self.model.copy()
        trial.prevrandao = self.chain.prevrandao()
        try:
            apply(trial, now)
            expected: list[M.Err] | None = None
        except M.ModelRevert as revert:
            expected = revert.errors
        # Expected reverts are only simulated, except every SEND_REVERT_EVERY-th, which is sent too.
        self.reverts_seen += expected is not None
        send = expected is None or self.reverts_seen % SEND_REVERT_EVERY == 0
        outcome = self.chain.transact(sender, fn, *args, value=value, send_reverts=send)
        self.last_outcome = outcome
        _STATS["calls"] += 1
        _STATS["sent"] += outcome.tx_hash is not None
        label = f"{fn}{_short(args)} from {sender[:8]} value={value} at t={now}"
        if expected is None:
            assert outcome.ok, f"{label}: contract reverted {outcome.error} but the model expected success"
            note(f"ok     {label}")
            if _DEBUG:
                print(f"ok     {label}")
            before = self.model
            self.model = trial
            self.model_version += 1
            for mid, task in trial.tasks.items():
                old = before.tasks.get(mid)
                if old != task:
                    self.dirty_tasks.add(mid)
                    self.dirty_participants |= {(mid, a) for a, part in task.participants.items() if old is None or old.participants.get(a) != part}
            self.dirty_accounts |= {a for a in set(before.credits) | set(trial.credits) if before.credit_of(a) != trial.credit_of(a)}
            self.model.check_self()
            self._check_events(before, fn, args, outcome)
            _check_owner_takes_nothing(before, trial, sender, fn)
            return True
        _STATS["reverts"] += 1
        assert not outcome.ok, f"{label}: contract succeeded but the model expected a revert with one of {expected}"
        assert outcome.error is not None
        name, eargs = outcome.error
        assert any(e.matches(name, eargs) for e in expected), f"{label}: contract reverted {name}{eargs}, model expected one of {expected}"
        note(f"revert {label}: {name}")
        if _DEBUG:
            print(f"revert {label}: {name}")
        return False

    def _check_events(self, before: M.Market, fn: str, args: tuple[Any, ...], outcome: Outcome) -> None:
        """Settlement events of the transaction agree with the model (rounds closed, payments)."""
        events = self.chain.decode_logs(outcome.logs)
        for mid, task in self.model.tasks.items():
            old = before.tasks.get(mid)
            closed_before = old.rounds_closed if old else 0
            for number in range(closed_before + 1, task.rounds_closed + 1):
                _STATS["rounds_closed"] += 1
                rnd = task.rounds[number]
                closes = [v for n, v in events if n == "RoundClosed" and v["modelId"] == mid and v["round"] == number]
                assert len(closes) == 1, f"{fn}: expected one RoundClosed({mid}, {number}), got {closes}"
                ev = closes[0]
                assert (ev["budget"], ev["returnedToBuyer"], ev["accepted"], ev["globalModelDigest"]) == (
                    rnd.budget,
                    rnd.returned_to_buyer,
                    rnd.accepted,
                    rnd.global_digest_after,
                ), f"RoundClosed({mid}, {number}) {ev} != model budget={rnd.budget} returned={rnd.returned_to_buyer} accepted={rnd.accepted}"
                _STATS["rejected_proposals"] += rnd.proposed and not rnd.accepted
                _STATS["slashes"] += sum(1 for _, _, amount in rnd.slashes if amount)
                _STATS["poison_slashes"] += sum(1 for _, r, amount in rnd.slashes if amount and r == M.SlashReason.POISON)
                _STATS["disagreed_slashes"] += sum(1 for _, r, amount in rnd.slashes if amount and r == M.SlashReason.DISAGREED)
                _STATS["refused_updates"] += sum(rnd.refused())
                _STATS["third_rounds"] += number >= 3
                _STATS["elected_rounds"] += task.elected
                if task.elected:
                    _check_members_did_not_train(self.chain, mid, number, rnd.committee)
                slashes = [
                    (v["participant"], v["reason"], v["amount"])
                    for n, v in events
                    if n == "Slashed" and v["modelId"] == mid and v["round"] == number and v["amount"] > 0
                ]
                model_slashes = [(a, int(r), amt) for a, r, amt in rnd.slashes if amt > 0]
                assert slashes == model_slashes, f"Slashed events of ({mid}, {number}) {slashes} != model {model_slashes}"
                rewards: dict[tuple[str, M.Role], int] = {}
                for n, v in events:
                    if n == "RewardAccrued" and v["modelId"] == mid and v["round"] == number:
                        key = (v["participant"], M.Role(v["role"]))
                        rewards[key] = rewards.get(key, 0) + v["amount"]
                rewards = {a: x for a, x in rewards.items() if x}
                assert rewards == {a: x for a, x in rnd.rewards.items() if x}, f"RewardAccrued events of ({mid}, {number}) {rewards} != model {rnd.rewards}"
            opened_before = old.current_round if old else 0
            for number in range(opened_before + 1, task.current_round + 1):
                self._check_opened(mid, task, number, events)
            if old is not None and old.status == M.Status.FINALIZED and task.status == M.Status.SETTLED:
                _STATS["settled"] += 1
                paid: dict[str, int] = {}
                for n, v in events:
                    if n in ("ContributionPayment", "ValidationPayment", "OrchestrationPayment") and v["modelId"] == mid:
                        who = v.get("trainer") or v.get("validator") or v.get("aggregator")
                        paid[who] = paid.get(who, 0) + v["earned"] + v["stakeReturned"]
                    if n == "ModelBuyerReturnPayment" and v["modelId"] == mid:
                        paid[v["owner"]] = paid.get(v["owner"], 0) + v["amount"]
                expected_paid: dict[str, int] = {}
                for account, part in old.participants.items():
                    if part.role != M.Role.NONE:
                        expected_paid[account] = expected_paid.get(account, 0) + part.earned + part.stake_remaining
                expected_paid[old.owner] = expected_paid.get(old.owner, 0) + old.escrow + old.buyer_accrued
                assert paid == expected_paid, f"payment events of task {mid} {paid} != model {expected_paid}"

    def _check_opened(self, mid: int, task: M.Task, number: int, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Round `number` of task `mid` opened in this transaction: its committee (RoundStarted,
        getRound) is the model's. In an elected task a committee never sits twice running: at
        least committeeSize trainers sit outside it (docs/protocol.md, "Elected committees")."""
        rnd = task.rounds[number]
        started = [tuple(v["committee"]) for n, v in events if n == "RoundStarted" and v["modelId"] == mid and v["round"] == number]
        assert started == [tuple(rnd.committee)], f"RoundStarted({mid}, {number}) committee {started} != model {rnd.committee}"
        committee = list(self.chain.call("getRound", mid, number)[3])
        assert committee == rnd.committee, f"task {mid} round {number}: getRound committee {committee} != model {rnd.committee}"
        if not task.elected or number == 1:
            return
        previous = list(self.chain.call("getRound", mid, number - 1)[3])
        assert previous == task.rounds[number - 1].committee
        size = task.params.committee_size
        outside = [t for t in task.trainers if t not in previous]
        again = set(committee) & set(previous)
        assert len(committee) == size and set(committee) <= set(task.trainers), f"task {mid} round {number}: committee {committee}"
        assert len(outside) >= size, f"task {mid} round {number}: only {len(outside)} trainers outside a committee of {size}"
        assert not again, f"task {mid}: members {sorted(again)} sit in rounds {number - 1} and {number} with {len(outside)} trainers outside"

    # ------------------------------------------------------------ choosing

    def _actor(self, data: st.DataObject, preferred: list[str], label: str = "actor") -> str:
        """Mostly one of `preferred` (the right role), sometimes anyone."""
        if preferred and data.draw(st.integers(0, 9), label=f"{label}-right") < 8:
            return data.draw(st.sampled_from(sorted(preferred)), label=label)
        return data.draw(st.sampled_from(self.accounts), label=label)

    def _task_id(self, data: st.DataObject, statuses: tuple[M.Status, ...] | None = None) -> int:
        ids = [mid for mid, t in self.model.tasks.items() if statuses is None or t.status in statuses]
        if not ids or data.draw(st.integers(0, 19), label="any-task") == 0:
            ids = list(self.model.tasks) + [len(self.model.tasks) + 1]
        return data.draw(st.sampled_from(ids), label="task")

    def _round_arg(self, data: st.DataObject, mid: int) -> int:
        task = self.model.tasks.get(mid)
        current = task.current_round if task else 1
        if data.draw(st.integers(0, 9), label="round-right") < 9:
            return current
        return data.draw(st.sampled_from([max(current - 1, 0), current + 1, 0]), label="round")

    def _training(self) -> list[int]:
        return [mid for mid, t in self.model.tasks.items() if t.status == M.Status.TRAINING]

    # ------------------------------------------------------------ set-up rules

    def _post(self, owner: str, params: M.Params, value: int) -> None:
        self.act(owner, "newModel", (params.as_tuple(),), lambda m, now: m.new_model(owner, params, value, now), value=value)

    @initialize(data=st.data(), n_tasks=st.integers(2, 3))
    def post_tasks(self, data: st.DataObject, n_tasks: int) -> None:
        """Two or three tasks by different owners over the same accounts; most staffed and started."""
        for i in range(n_tasks):
            owner = self.owners[i % len(self.owners)]
            aggregator = data.draw(st.sampled_from([a for a in self.accounts if a != owner]), label="aggregator")
            params = data.draw(task_params(to_checksum_address(aggregator)), label="params")
            value = data.draw(WEI, label="escrow")
            self._post(owner, params, value)
        staffed = [mid for mid in list(self.model.tasks) if data.draw(st.integers(0, 3), label="staff") > 0]
        for mid in staffed:
            self._staff(data, mid, start=False)
        for mid in staffed:
            if data.draw(st.integers(0, 5), label="start") > 0:
                self._start(data, mid)

    def post_task(self, data: st.DataObject) -> None:
        owner = data.draw(st.sampled_from(self.accounts), label="owner")
        aggregator = data.draw(st.sampled_from([a for a in self.accounts if a != owner]), label="aggregator")
        params = data.draw(task_params(to_checksum_address(aggregator)), label="params")
        mutation = data.draw(st.sampled_from(["none"] * 4 + sorted(INVALID_MUTATIONS) + ["aggregator_owner"]), label="mutation")
        if mutation == "aggregator_owner":
            params.aggregator = to_checksum_address(owner)
        elif mutation != "none":
            INVALID_MUTATIONS[mutation](params)
        value = data.draw(st.one_of(st.just(0), WEI), label="escrow")
        self._post(owner, params, value)

    def top_up(self, data: st.DataObject) -> None:
        mid = self._task_id(data, (M.Status.OPEN,))
        task = self.model.tasks.get(mid)
        sender = self._actor(data, [task.owner] if task else [])
        value = data.draw(st.one_of(st.just(0), WEI), label="value")
        self.act(sender, "payForModel", (mid,), lambda m, now: m.pay_for_model(sender, mid, value, now), value=value)

    def buy_license(self, data: st.DataObject) -> None:
        mid = self._task_id(data, (M.Status.OPEN, M.Status.TRAINING))
        task = self.model.tasks.get(mid)
        unlicensed = [a for a in self.accounts if task and a != task.owner and not task.participant(a).licensed]
        sender = self._actor(data, unlicensed)
        fee = task.params.license_fee if task else 0
        wrong = sorted({v for v in (0, fee + 1, fee - 1) if v >= 0 and v != fee})
        value = fee if data.draw(st.integers(0, 9), label="fee-right") < 8 else data.draw(st.sampled_from(wrong), label="wrong-fee")
        self.act(sender, "buyLicense", (mid,), lambda m, now: m.buy_license(sender, mid, value, now), value=value)

    def join(self, data: st.DataObject) -> None:
        role = data.draw(st.sampled_from([M.Role.TRAINER, M.Role.TRAINER, M.Role.VALIDATOR, M.Role.AGGREGATOR]), label="role")
        mid = self._task_id(data, (M.Status.OPEN,))
        task = self.model.tasks.get(mid)
        self._join(data, mid, task, role)

    def _join(self, data: st.DataObject, mid: int, task: M.Task | None, role: M.Role) -> None:
        if task is None:
            preferred: list[str] = []
            stake = 1
        elif role == M.Role.TRAINER:
            preferred = [a for a, p in task.participants.items() if p.licensed and p.role == M.Role.NONE]
            stake = task.params.trainer_stake
        elif role == M.Role.VALIDATOR:
            preferred = [a for a in self.accounts if a != task.owner and task.role_of(a) == M.Role.NONE and a != task.params.aggregator.lower()]
            stake = task.params.validator_stake
        else:
            preferred = [task.params.aggregator.lower()]
            stake = task.params.aggregator_stake
        sender = self._actor(data, preferred)
        wrong = sorted({v for v in (0, stake + 1, stake - 1) if v >= 0 and v != stake})
        value = stake if data.draw(st.integers(0, 9), label="stake-right") < 9 else data.draw(st.sampled_from(wrong), label="wrong-stake")
        fn = {M.Role.TRAINER: "joinAsTrainer", M.Role.VALIDATOR: "joinAsValidator", M.Role.AGGREGATOR: "joinAsAggregator"}[role]
        method = {M.Role.TRAINER: M.Market.join_as_trainer, M.Role.VALIDATOR: M.Market.join_as_validator, M.Role.AGGREGATOR: M.Market.join_as_aggregator}[role]
        self.act(sender, fn, (mid,), lambda m, now: method(m, sender, mid, value, now), value=value)

    def staff_task(self, data: st.DataObject) -> None:
        """Macro: licences and joins until an Open task can start (then usually start it)."""
        self._staff(data, self._task_id(data, (M.Status.OPEN,)))

    def _staff(self, data: st.DataObject, mid: int, start: bool = True) -> None:
        task = self.model.tasks.get(mid)
        if task is None or task.status != M.Status.OPEN:
            return
        p = task.params
        want_trainers = data.draw(st.integers(p.min_trainers, p.max_trainers), label="trainers")
        # an elected task (maxValidators 0) has no validator seats: its trainers serve
        want_validators = data.draw(st.integers(p.committee_size, p.max_validators), label="validators") if p.max_validators else 0
        free = [a for a in self.accounts if a != task.owner and a != p.aggregator.lower() and task.role_of(a) == M.Role.NONE]
        free = data.draw(st.permutations(free), label="order")
        for account in free:
            if len(self.model.tasks[mid].trainers) >= want_trainers:
                break
            if not self.model.tasks[mid].participant(account).licensed:
                self.act(account, "buyLicense", (mid,), lambda m, now, a=account: m.buy_license(a, mid, p.license_fee, now), value=p.license_fee)
            self.act(account, "joinAsTrainer", (mid,), lambda m, now, a=account: m.join_as_trainer(a, mid, p.trainer_stake, now), value=p.trainer_stake)
        for account in free:
            current = self.model.tasks[mid]
            if len(current.validators) >= want_validators:
                break
            if current.role_of(account) != M.Role.NONE:
                continue
            self.act(account, "joinAsValidator", (mid,), lambda m, now, a=account: m.join_as_validator(a, mid, p.validator_stake, now), value=p.validator_stake)
        if not self.model.tasks[mid].aggregator_joined:
            agg = p.aggregator.lower()
            self.act(agg, "joinAsAggregator", (mid,), lambda m, now: m.join_as_aggregator(agg, mid, p.aggregator_stake, now), value=p.aggregator_stake)
        if start and data.draw(st.integers(0, 3), label="start") > 0:
            self._start(data, mid)

    def _start(self, data: st.DataObject, mid: int) -> None:
        task = self.model.tasks.get(mid)
        sender = self._actor(data, [task.owner, task.params.aggregator.lower()] if task else [])
        randao = self.chain.prevrandao()
        self.act(sender, "startTraining", (mid,), lambda m, now: m.start_training(sender, mid, now, randao))

    def start(self, data: st.DataObject) -> None:
        self._start(data, self._task_id(data, (M.Status.OPEN,)))

    def leave(self, data: st.DataObject) -> None:
        """A participant or licensee leaves an Open task, or reclaims a fee from a cancelled one."""
        mid = self._task_id(data, (M.Status.OPEN, M.Status.CANCELLED))
        task = self.model.tasks.get(mid)
        leavers = [a for a, p in task.participants.items() if p.role != M.Role.NONE or p.licensed] if task else []
        sender = self._actor(data, leavers)
        self.act(sender, "leaveModel", (mid,), lambda m, now: m.leave_model(sender, mid, now))

    def cancel(self, data: st.DataObject) -> None:
        mid = self._task_id(data, (M.Status.OPEN,))
        task = self.model.tasks.get(mid)
        sender = self._actor(data, [task.owner] if task else [])
        self.act(sender, "cancelModel", (mid,), lambda m, now: m.cancel_model(sender, mid, now))

    # ------------------------------------------------------------ round rules

    def _commit(self, data: st.DataObject, mid: int, sender: str, round_: int, kind: str) -> None:
        digest = data.draw(st.binary(min_size=32, max_size=32), label="digest")
        copied = [s[0] for (t, r, a), s in self.secrets.items() if (t, r) == (mid, round_) and a != sender]
        if copied and data.draw(st.integers(0, 4), label="copy") == 0:  # another seat's update (refused at reveal)
            digest = data.draw(st.sampled_from(copied), label="copied")
        samples = data.draw(st.one_of(st.integers(1, 10**6), st.just(0), st.just(2**64 - 1)), label="samples")
        salt = data.draw(st.binary(min_size=32, max_size=32), label="salt")
        secret = (digest, samples, salt)
        if kind == "honest":
            commitment = M.commitment_of(mid, round_, digest, samples, salt, sender)
        elif kind == "replay":
            task = self.model.tasks.get(mid)
            rnd = task.round() if task else None
            others = [(a, c) for a, c in (rnd.commitments.items() if rnd else []) if a != sender]
            if others:
                other, commitment = data.draw(st.sampled_from(others), label="victim")
                secret = self.secrets.get((mid, round_, other), secret)  # reveal will replay the victim's values
            else:
                commitment = M.commitment_of(mid, round_, digest, samples, salt, self.accounts[0])
        elif kind == "stale":  # bound to the previous round, or to another task
            if round_ > 1:
                commitment = M.commitment_of(mid, round_ - 1, digest, samples, salt, sender)
            else:
                commitment = M.commitment_of(mid + 1, round_, digest, samples, salt, sender)
        else:
            commitment = data.draw(st.binary(min_size=32, max_size=32), label="commitment")
        model_key = (mid, round_, sender)

        def apply(m: M.Market, now: int) -> None:
            m.commit_update(sender, mid, round_, commitment, now)

        if self.act(sender, "commitUpdate", (mid, round_, commitment), apply):
            self.secrets[model_key] = secret

    def commit(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["honest"] * 6 + ["replay", "stale", "random"]), label="kind")
        mid = self._task_id(data, (M.Status.TRAINING,))
        task = self.model.tasks.get(mid)
        rnd = task.round() if task else None
        preferred = [t for t in task.trainers if rnd and t not in rnd.commitments and t not in task.sitting(rnd)] if task else []
        if task is not None and task.elected and rnd is not None and data.draw(st.integers(0, 3), label="member-trains") == 0:
            preferred = rnd.committee  # a sitting member tries to train the round it scores: CommitteeMemberCannotTrain
        sender = self._actor(data, preferred)
        self._commit(data, mid, sender, self._round_arg(data, mid), kind)

    def _reveal(self, data: st.DataObject, mid: int, sender: str, round_: int, kind: str) -> None:
        secret = self.secrets.get((mid, round_, sender))
        if secret is None:
            secret = (data.draw(st.binary(min_size=32, max_size=32)), 1, b"\x00" * 32)
        digest, samples, salt = secret
        if kind == "tamper_samples":
            samples = (samples + 1) % 2**64
        elif kind == "tamper_digest":
            digest = bytes([digest[0] ^ 1]) + digest[1:]
        elif kind == "tamper_salt":
            salt = bytes([salt[0] ^ 1]) + salt[1:]
        elif kind == "zero_samples":
            samples = 0
        self.act(sender, "revealUpdate", (mid, round_, digest, samples, salt), lambda m, now: m.reveal_update(sender, mid, round_, digest, samples, salt, now))

    def reveal(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["own"] * 6 + ["tamper_samples", "tamper_digest", "tamper_salt", "zero_samples"]), label="kind")
        mid = self._task_id(data, (M.Status.TRAINING,))
        task = self.model.tasks.get(mid)
        rnd = task.round() if task else None
        preferred = [t for t in (rnd.commitments if rnd else {}) if not rnd.revealed_by(t)] if rnd else []
        sender = self._actor(data, preferred)
        self._reveal(data, mid, sender, self._round_arg(data, mid), kind)

    def _scores(self, data: st.DataObject, n: int, threshold: int) -> list[int]:
        """One score per revealed update: mostly useful (positive), some harmful, some extreme,
        some right at the task's poison threshold (strictly below it is poison)."""
        edges = [v for v in (threshold - 1, threshold, threshold + 1) if M.INT64_MIN <= v <= M.INT64_MAX]
        value = st.one_of(
            st.integers(1, 1_000_000),
            st.integers(1, 1_000_000),
            st.integers(1, 1_000_000),
            st.integers(-2_000_000, -1),
            SCORE,
            st.sampled_from(edges),
        )
        return data.draw(st.lists(value, min_size=n, max_size=n), label="scores")

    def _honest_scores(self, data: st.DataObject, mid: int, round_: int, n: int, threshold: int) -> list[int]:
        """Near the round's "true" values (drawn once per round): honest members agree within a
        few per cent, so the agreement pay has weights to share; sometimes a random vector."""
        truth = self.truths.get((mid, round_))
        if truth is None or len(truth) != n:
            task = self.model.tasks.get(mid)
            if task is not None and task.elected and data.draw(st.integers(0, 2), label="coarse-truth") == 0:
                # few distinct values below 1,000 (no noise): tied utilities, which the election
                # breaks by trainer seat
                truth = data.draw(st.lists(st.sampled_from([0, 7, 999]), min_size=n, max_size=n), label="truth")
            else:
                truth = self._scores(data, n, threshold)
            self.truths[(mid, round_)] = truth
        if data.draw(st.integers(0, 4), label="random-scores") == 0:
            return self._scores(data, n, threshold)
        noise = data.draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n), label="noise")
        return [max(M.INT64_MIN, min(M.INT64_MAX, t + t // 1000 * e)) for t, e in zip(truth, noise)]

    def _score_commit(self, data: st.DataObject, mid: int, sender: str, round_: int, kind: str = "honest") -> None:
        task = self.model.tasks.get(mid)
        rnd = task.round() if task else None
        n = len(rnd.reveals) if rnd else 1
        if kind == "wrong_count":
            n = data.draw(st.sampled_from([n + 1, max(n - 1, 0)]), label="count")
        scores = self._honest_scores(data, mid, round_, n, task.params.poison_threshold if task else 0)
        salt = data.draw(st.binary(min_size=32, max_size=32), label="score-salt")
        if kind == "copy":  # another member's commitment (its reveal cannot match: the member is bound)
            others = [(k, v) for k, v in self.score_secrets.items() if k[:2] == (mid, round_) and k[2] != sender]
            if others:
                (_, _, other), (scores, salt) = data.draw(st.sampled_from(others), label="copied")
                commitment = M.score_commitment_of(mid, round_, other, scores, salt)
            else:
                commitment = M.score_commitment_of(mid, round_, sender, scores, salt)
        elif kind == "random":
            commitment = data.draw(st.binary(min_size=32, max_size=32), label="commitment")
        else:
            commitment = M.score_commitment_of(mid, round_, sender, scores, salt)
        if self.act(sender, "commitScores", (mid, round_, commitment), lambda m, now: m.commit_scores(sender, mid, round_, commitment, now)):
            self.score_secrets[(mid, round_, sender)] = (scores, salt)

    def _score_reveal(self, data: st.DataObject, mid: int, sender: str, round_: int, kind: str = "own") -> None:
        scores, salt = self.score_secrets.get((mid, round_, sender), ([0], b"\x00" * 32))
        if kind == "tamper" and scores:
            i = data.draw(st.integers(0, len(scores) - 1), label="tampered")
            scores = [*scores[:i], max(M.INT64_MIN, min(M.INT64_MAX, scores[i] + 1)), *scores[i + 1 :]]
        elif kind == "tamper_salt":
            salt = bytes([salt[0] ^ 1]) + salt[1:]
        self.act(sender, "revealScores", (mid, round_, scores, salt), lambda m, now: m.reveal_scores(sender, mid, round_, scores, salt, now))

    def score_commit(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["honest"] * 6 + ["wrong_count", "copy", "random"]), label="kind")
        mid = self._task_id(data, (M.Status.TRAINING,))
        task = self.model.tasks.get(mid)
        rnd = task.round() if task else None
        preferred = [v for v in rnd.committee if v not in rnd.score_commits] if rnd else []
        sender = self._actor(data, preferred)
        self._score_commit(data, mid, sender, self._round_arg(data, mid), kind)

    def score_reveal(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["own"] * 6 + ["tamper", "tamper_salt"]), label="kind")
        mid = self._task_id(data, (M.Status.TRAINING,))
        task = self.model.tasks.get(mid)
        rnd = task.round() if task else None
        preferred = [v for v in rnd.score_commits if v not in rnd.scores] if rnd else []
        sender = self._actor(data, preferred)
        self._score_reveal(data, mid, sender, self._round_arg(data, mid), kind)

    def _publish(self, data: st.DataObject, mid: int, sender: str, round_: int) -> None:
        digest = data.draw(st.binary(min_size=32, max_size=32), label="model-digest")
        metric = data.draw(st.integers(M.INT64_MIN, M.INT64_MAX), label="metric")
        self.act(sender, "publishGlobalModel", (mid, round_, digest, metric), lambda m, now: m.publish_global_model(sender, mid, round_, digest, metric, now))

    def publish(self, data: st.DataObject) -> None:
        mid = self._task_id(data, (M.Status.TRAINING,))
        task = self.model.tasks.get(mid)
        sender = self._actor(data, [task.params.aggregator.lower()] if task else [])
        self._publish(data, mid, sender, self._round_arg(data, mid))

    def _vote_commit(self, data: st.DataObject, mid: int, sender: str, round_: int, kind: str = "honest") -> None:
        ok = data.draw(st.integers(0, 3), label="ok") > 0
        salt = data.draw(st.binary(min_size=32, max_size=32), label="vote-salt")
        member = sender
        if kind == "replay":  # another member's vote commitment: its reveal cannot match
            others = [k[2] for k in self.vote_secrets if k[:2] == (mid, round_) and k[2] != sender]
            if others:
                member = data.draw(st.sampled_from(sorted(others)), label="victim")
                ok, salt = self.vote_secrets[(mid, round_, member)]
        commitment = M.vote_commitment_of(mid, round_, member, ok, salt)
        if self.act(sender, "commitVote", (mid, round_, commitment), lambda m, now: m.commit_vote(sender, mid, round_, commitment, now)):
            self.vote_secrets[(mid, round_, sender)] = (ok, salt)

    def _vote_reveal(self, data: st.DataObject, mid: int, sender: str, round_: int, kind: str = "own") -> None:
        ok, salt = self.vote_secrets.get((mid, round_, sender), (True, b"\x00" * 32))
        if kind == "flip":
            ok = not ok
        self.act(sender, "revealVote", (mid, round_, ok, salt), lambda m, now: m.reveal_vote(sender, mid, round_, ok, salt, now))

    def vote_commit(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["honest"] * 6 + ["replay"]), label="kind")
        mid = self._task_id(data, (M.Status.TRAINING,))
        task = self.model.tasks.get(mid)
        rnd = task.round() if task else None
        preferred = [v for v in rnd.committee if v not in rnd.vote_commits] if rnd else []
        sender = self._actor(data, preferred)
        self._vote_commit(data, mid, sender, self._round_arg(data, mid), kind)

    def vote_reveal(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["own"] * 6 + ["flip"]), label="kind")
        mid = self._task_id(data, (M.Status.TRAINING,))
        task = self.model.tasks.get(mid)
        rnd = task.round() if task else None
        preferred = [v for v in rnd.vote_commits if v not in rnd.votes] if rnd else []
        sender = self._actor(data, preferred)
        self._vote_reveal(data, mid, sender, self._round_arg(data, mid), kind)

    def close_round(self, data: st.DataObject) -> None:
        mid = self._task_id(data, (M.Status.TRAINING,))
        sender = data.draw(st.sampled_from(self.accounts), label="closer")
        self.act(sender, "closeRound", (mid,), lambda m, now: m.close_round(sender, mid, now))

    def _play_phase(self, data: st.DataObject, mid: int | None = None) -> None:
        """Macro: everyone the current phase waits for acts (each may stay silent), honestly;
        then, sometimes, the clock jumps past that phase's deadline."""
        if mid is None:
            mid = data.draw(st.sampled_from(self._training()), label="task")
        task = self.model.tasks[mid]
        rnd = task.round()
        assert rnd is not None
        if rnd.closed:
            return
        phase, _ = self.model.phase_at(task, rnd, self.chain.now())
        r = rnd.number
        if phase == M.Phase.COMMIT:
            sitting = task.sitting(rnd)
            if sitting and data.draw(st.integers(0, 9), label="member-trains") == 0:
                self._commit(data, mid, data.draw(st.sampled_from(sitting), label="member"), r, "honest")  # refused
            for trainer in [t for t in task.trainers if t not in rnd.commitments and t not in sitting]:
                if data.draw(st.integers(0, 9), label="acts") < 8:
                    self._commit(data, mid, trainer, r, "honest")
        elif phase == M.Phase.REVEAL:
            for trainer in [t for t in rnd.commitments if not rnd.revealed_by(t)]:
                if data.draw(st.integers(0, 9), label="acts") < 8:
                    self._reveal(data, mid, trainer, r, "own")
        elif phase == M.Phase.SCORE_COMMIT:
            for member in [v for v in rnd.committee if v not in rnd.score_commits]:
                if data.draw(st.integers(0, 9), label="acts") < 8:
                    self._score_commit(data, mid, member, r)
        elif phase == M.Phase.SCORE_REVEAL:
            for member in [v for v in rnd.score_commits if v not in rnd.scores]:
                if data.draw(st.integers(0, 9), label="acts") < 8:
                    self._score_reveal(data, mid, member, r)
        elif phase == M.Phase.PUBLISH:
            if data.draw(st.integers(0, 9), label="acts") < 8:
                self._publish(data, mid, task.params.aggregator.lower(), r)
        elif phase == M.Phase.VOTE_COMMIT:
            for member in [v for v in rnd.committee if v not in rnd.vote_commits]:
                if data.draw(st.integers(0, 9), label="acts") < 8:
                    self._vote_commit(data, mid, member, r)
        elif phase == M.Phase.VOTE_REVEAL:
            for member in [v for v in rnd.vote_commits if v not in rnd.votes]:
                if data.draw(st.integers(0, 9), label="acts") < 8:
                    self._vote_reveal(data, mid, member, r)
        elif phase == M.Phase.DUE:
            sender = data.draw(st.sampled_from(self.accounts), label="closer")
            self.act(sender, "closeRound", (mid,), lambda m, now: m.close_round(sender, mid, now))
        # Someone stayed silent and the phase still waits: sometimes the clock runs out on them.
        if self.model.tasks[mid].status == M.Status.TRAINING and self.model.tasks[mid].current_round == r:
            still, deadline = self.model.current_phase(mid, self.chain.now())
            if still == phase and phase != M.Phase.DUE and data.draw(st.integers(0, 1), label="then-wait") == 0:
                note(f"warp past the {phase.name} deadline of task {mid}")
                self.chain.warp_to(max(deadline + 1, self.chain.now()))

    def play_phase(self, data: st.DataObject) -> None:
        self._play_phase(data)

    def play_round(self, data: st.DataObject) -> None:
        """Macro: phases are played (with silences and deadline jumps) until a round closes."""
        mid = data.draw(st.sampled_from(self._training()), label="task")
        closed = self.model.tasks[mid].rounds_closed
        for _ in range(11):
            task = self.model.tasks[mid]
            if task.status != M.Status.TRAINING or task.rounds_closed > closed or task.all_rounds_closed():
                break
            self._play_phase(data, mid)

    def settle_and_withdraw(self, data: st.DataObject) -> None:
        """Macro: a finished task is finalized and settled (by anyone), and its payees withdraw."""
        done = [mid for mid, t in self.model.tasks.items() if t.status == M.Status.FINALIZED or (t.status == M.Status.TRAINING and t.all_rounds_closed())]
        mid = data.draw(st.sampled_from(done), label="task")
        if self.model.tasks[mid].status == M.Status.TRAINING:
            sender = data.draw(st.sampled_from(self.accounts), label="finalizer")
            self.act(sender, "finalizeContract", (mid,), lambda m, now: m.finalize_contract(sender, mid, now))
        sender = data.draw(st.sampled_from(self.accounts), label="settler")
        self.act(sender, "generateTrainingPayments", (mid,), lambda m, now: m.generate_training_payments(sender, mid, now))
        for account in sorted(self.model.tasks[mid].credits):
            if account == ZERO_ADDRESS:
                continue  # the burned carry: nobody holds the zero address's key
            if self.model.credit_of(account) > 0 and data.draw(st.integers(0, 2), label="withdraws") > 0:
                self._withdraw(account)

    # ------------------------------------------------------------ time

    def warp(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["deadline", "deadline", "deadline", "small", "small", "long", "start"]), label="kind")
        now = self.chain.now()
        starts = [t.start_deadline for t in self.model.tasks.values() if t.status == M.Status.OPEN and t.start_deadline >= now]
        if kind == "start" and starts:
            target = data.draw(st.sampled_from(starts), label="start-deadline") + data.draw(st.integers(0, 1), label="around")
        elif kind == "start":
            return
        elif kind == "small":
            target = now + data.draw(st.integers(1, 3), label="seconds")
        elif kind == "long":
            target = now + data.draw(st.integers(30, 200), label="seconds")
        else:
            deadlines = [self.model.current_phase(mid, now)[1] for mid in self._training()]
            deadlines = [d for d in deadlines if d >= now]
            if not deadlines:
                return
            target = data.draw(st.sampled_from(deadlines), label="deadline") + data.draw(st.integers(-1, 1), label="around")
            target = max(target, now)
        note(f"warp {kind} to t={target} (+{target - now} s)")
        if _DEBUG:
            print(f"warp {kind} to t={target} (+{target - now} s)")
        self.chain.warp_to(target)

    # ------------------------------------------------------------ the end

    def finalize(self, data: st.DataObject) -> None:
        mid = self._task_id(data, (M.Status.TRAINING,))
        task = self.model.tasks.get(mid)
        if task is not None and not task.all_rounds_closed() and data.draw(st.integers(0, 2), label="early") > 0:
            sender = data.draw(st.sampled_from([a for a in self.accounts if a != task.owner]), label="outsider")
        else:
            sender = self._actor(data, [task.owner] if task else [])
        self.act(sender, "finalizeContract", (mid,), lambda m, now: m.finalize_contract(sender, mid, now))

    def generate_payments(self, data: st.DataObject) -> None:
        mid = self._task_id(data, (M.Status.FINALIZED,))
        sender = data.draw(st.sampled_from(self.accounts), label="caller")
        self.act(sender, "generateTrainingPayments", (mid,), lambda m, now: m.generate_training_payments(sender, mid, now))

    def withdraw(self, data: st.DataObject) -> None:
        creditors = [a for a in self.accounts if self.model.credit_of(a) > 0]
        self._withdraw(self._actor(data, creditors))

    def _withdraw(self, sender: str) -> None:
        before = self.chain.balance(sender)
        amount = self.model.credit_of(sender)
        if self.act(sender, "withdraw", (), lambda m, now: m.withdraw(sender, now)):
            assert self.last_outcome is not None and self.last_outcome.tx_hash is not None
            gas_cost = self.last_outcome.gas_used * self.chain.gas_price_of(self.last_outcome.tx_hash)
            received = self.chain.balance(sender) - before + gas_cost
            assert received == amount, f"withdraw paid {received} wei, model credit was {amount}"
            _STATS["withdrawals"] += 1
            events = [v for n, v in self.chain.decode_logs(self.last_outcome.logs) if n == "Withdrawal"]
            assert [(e["account"], e["amount"]) for e in events] == [(sender, amount)]

    # ------------------------------------------------------------ the one rule

    def _available(self) -> list[str]:
        """The actions that make sense now, each repeated by its weight."""
        training = bool(self._training())
        finished = any(t.status == M.Status.FINALIZED or (t.status == M.Status.TRAINING and t.all_rounds_closed()) for t in self.model.tasks.values())
        out: list[str] = []
        for name, weight, needs in ACTIONS:
            if needs == "training" and not training:
                continue
            if needs == "finished" and not finished:
                continue
            if needs == "room" and len(self.model.tasks) >= 4:
                continue
            out += [name] * weight
        return out

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        """One action, drawn with weights: progress (the macros, time) about half the time, so
        that sequences reach settlements, slashes and late rounds; probes by right and wrong
        actors the rest. (Hypothesis picks among rules uniformly and disables random rules per
        sequence, which starved progress when every action was a rule of its own.)"""
        action = data.draw(st.sampled_from(self._available()), label="action")
        note(f"-- {action}")
        if _DEBUG:
            print(f"-- {action}")
        getattr(self, action)(data)

    # ------------------------------------------------------------ invariants

    @invariant()
    def contract_matches_model(self) -> None:
        _STATS["steps"] += 1
        # Every view is a pure function of the contract's storage and balance and the block
        # context; the model's predictions of the model's state and the clock. Unchanged
        # (storage, model, clock): nothing to compare again. Only the clock moved: money and
        # the rounds' phases. Otherwise: everything.
        # What a step may change is what the model says changed: those records are compared,
        # plus, in turn, one whole task and a few accounts (so a write into the wrong record
        # shows up within a few steps; the complete comparison also ends every sequence). The
        # current round's phase depends on the clock: compared whenever the model's phase or
        # deadline moved, and for the task in turn.
        storage, now = self.chain.storage_root(), self.chain.now()
        if self.checked_fingerprint == (storage, self.model_version, now):
            _STATS["unchanged_steps"] += 1
            return
        if self.checked_fingerprint is None:
            scope = EVERYTHING
        elif self.checked_fingerprint[:2] == (storage, self.model_version):
            # only the clock moved: storage-only views cannot have changed
            self.rotation += 1
            ids = sorted(self.model.tasks)
            turn = ids[self.rotation % len(ids)] if ids else 0
            scope = Scope(
                accounts=set(),
                tasks=set(),
                participants=set(),
                rounds={mid for mid in ids if self.model.current_phase(mid, now) != self.checked_phases.get(mid)} | {turn},
            )
        else:
            self.rotation += 1
            ids = sorted(self.model.tasks)
            turn = ids[self.rotation % len(ids)] if ids else 0
            accounts = {self.accounts[(3 * self.rotation + k) % len(self.accounts)] for k in range(3)}
            phases = {mid: self.model.current_phase(mid, now) for mid in ids}
            scope = Scope(
                accounts=self.dirty_accounts | accounts,
                tasks=self.dirty_tasks | {turn},
                participants=self.dirty_participants | {(turn, a) for a in (self.model.tasks[turn].participants if ids else {})},
                rounds={mid for mid in ids if phases[mid] != self.checked_phases.get(mid)} | self.dirty_tasks | {turn},
            )
        check_contract_against_model(self.chain, self.model, self.accounts, scope)
        self.checked_phases = {mid: self.model.current_phase(mid, now) for mid in self.model.tasks}
        self.dirty_tasks, self.dirty_participants, self.dirty_accounts = set(), set(), set()
        self.checked_fingerprint = (storage, self.model_version, now)

    def teardown(self) -> None:
        """The complete comparison once more at the end of the sequence (not when a step failed:
        hypothesis calls teardown while that failure propagates)."""
        if sys.exc_info()[0] is not None:
            return
        check_contract_against_model(self.chain, self.model, self.accounts)
        check_every_committee(self.chain, self.model)
        if _DEBUG:
            print(
                "END",
                [
                    (t.status.name, t.params.rounds, t.rounds_closed, len(t.trainers), len(t.validators), t.params.committee_size)
                    for t in self.model.tasks.values()
                ],
            )


OWNER_ACTIONS = frozenset({"newModel", "payForModel", "cancelModel", "startTraining", "finalizeContract", "generateTrainingPayments"})


def _trainer_wealth(task: M.Task, trainer: str) -> int:
    part = task.participant(trainer)
    return part.earned + part.stake_remaining + task.credits.get(trainer, 0)


def _check_owner_takes_nothing(before: M.Market, after: M.Market, sender: str, fn: str) -> None:
    """No owner action moves a trainer's credited or escrowed wei (earned, stake, credits) away, and
    none ends a task whose open round has a commit before that round settles."""
    if fn not in OWNER_ACTIONS:
        return
    for mid, old in before.tasks.items():
        if old.owner != sender:
            continue
        new = after.tasks[mid]
        for trainer in old.trainers:
            assert _trainer_wealth(new, trainer) >= _trainer_wealth(old, trainer), f"{fn} by the owner took wei of {trainer}"
        rnd = old.round()
        if old.status == M.Status.TRAINING and new.status == M.Status.FINALIZED and rnd is not None and not rnd.closed:
            assert not rnd.commitments, f"{fn}: the owner ended task {mid} with committed round {rnd.number} unsettled"


def _short(args: tuple[Any, ...]) -> str:
    def one(a: Any) -> str:
        if isinstance(a, bytes):
            return "0x" + a[:4].hex() + ".."
        if isinstance(a, tuple):
            return "(params)"
        return repr(a)

    return "(" + ", ".join(one(a) for a in args) + ")"


# --------------------------------------------------------------------------------------- the test


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a part takes ~5 min on a quiet core; a busy CI machine runs 2-4x slower
@pytest.mark.parametrize("part", range(PARTS))
def test_marketplace_matches_reference_model(w3: Any, accounts: list[str], market: Any, part: int) -> None:
    """Random action sequences: contract == model and every invariant holds after every step (this
    item runs one of PARTS shares of the profile's sequences)."""
    from fedmarket.chain.deploy import MARKETPLACE_GAS_LIMITS

    tester = w3.provider.ethereum_tester
    chain = ContractDriver(w3, market.address, market.abi, MARKETPLACE_GAS_LIMITS)
    # Chain time far past the wall clock: each block is exactly its parent + 1 s, so deadlines are
    # hit to the second however slowly the test runs. The snapshot is an empty block.
    tester.time_travel(chain.now() + FAR_FUTURE_S)
    _ENV.update(chain=chain, snapshot=tester.take_snapshot(), accounts=list(accounts[1:13]))
    for key in _STATS:
        _STATS[key] = 0
    started = time.monotonic()
    run_state_machine_as_test(MarketplaceMachine, settings=marketplace_settings(PARTS))
    elapsed = time.monotonic() - started
    sequences = max(_STATS["sequences"], 1)
    summary = (
        f"part {part + 1} of {PARTS}: {_STATS['sequences']} sequences, {_STATS['steps']} steps ({_STATS['steps'] / sequences:.1f} per sequence; "
        f"{_STATS['unchanged_steps']} left chain, model and clock unchanged), {_STATS['calls']} calls "
        f"({_STATS['reverts']} expected reverts; {_STATS['sent']} sent as transactions), "
        f"{_STATS['rounds_closed']} rounds closed ({_STATS['third_rounds']} third or later, "
        f"{_STATS['rejected_proposals']} proposals rejected, {_STATS['slashes']} slashes of which "
        f"{_STATS['poison_slashes']} poison, {_STATS['disagreed_slashes']} disagreed; {_STATS['refused_updates']} duplicate updates refused; "
        f"{_STATS['elected_rounds']} of elected-committee tasks), "
        f"{_STATS['settled']} tasks settled, {_STATS['withdrawals']} withdrawals, "
        f"{elapsed:.0f} s"
    )
    print(summary)
    if os.environ.get("FEDMARKET_HYPOTHESIS_STATS"):
        with Path(os.environ["FEDMARKET_HYPOTHESIS_STATS"]).open("a") as stats:
            stats.write(summary + "\n")
    assert _STATS["sent"] > 0
