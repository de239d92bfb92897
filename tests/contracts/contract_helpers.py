"""Fixtures for the contract tests: a fresh embedded chain per test, named actors, a deployed
Marketplace and helpers to post tasks, send transactions, expect custom-error reverts and move
chain time.

Fixture names are a stable interface (tests/contracts/test_invariants.py and test_isolation.py use
them too): w3, accounts, actors, market, make_params, post_task, ready_task, tx, expect_revert,
call_error, events, advance, set_time, now, flow, session_chain.

One chain serves the session: `w3` reverts it to the snapshot taken right after the Marketplace
was deployed, so every test starts from a fresh deployment (same address every time).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from fedmarket.chain.abi import abi_type
from fedmarket.chain.deploy import MARKETPLACE_GAS_LIMITS, deploy_marketplace
from fedmarket.chain.embedded import latest_timestamp, new_embedded_web3, set_next_timestamp
from fedmarket.chain.protocol import DEFAULT_AGREEMENT_TOLERANCE_BPS, score_commitment, vote_commitment
from fedmarket.chain.timecontrol import advance_time

# ------------------------------------------------------------------------------ defaults

WINDOW = 100
FAR_FUTURE_S = 10**8
"""The session chain's clock starts this far past the wall clock (see session_chain)."""
"""Every phase window of the default task, in seconds."""

START_WINDOW = 10_000
"""The default task's start window (s): past it anyone may cancel an unstarted task."""

DEFAULT_REWARD = 1_000_003
"""Default escrow (wei): odd on purpose, so that budget and share rounding shows up."""

DEFAULT_PARAMS: dict[str, Any] = {
    "specDigest": keccak(text="spec"),
    "initialModelDigest": keccak(text="initial model"),
    "aggregator": None,  # filled with actors.aggregator
    "rounds": 2,
    "minTrainers": 3,
    "maxTrainers": 20,
    "committeeSize": 3,
    "maxValidators": 6,
    "commitWindow": WINDOW,
    "revealWindow": WINDOW,
    "scoreWindow": WINDOW,
    "publishWindow": WINDOW,
    "confirmWindow": WINDOW,
    "licenseFee": 1_000,
    "trainerStake": 10_000,
    "validatorStake": 20_000,
    "aggregatorStake": 30_000,
    "lateSlashBps": 1_000,
    "badSlashBps": 5_000,
    "trainerShareBps": 7_000,
    "validatorShareBps": 2_000,
    "aggregatorShareBps": 1_000,
    "poisonThreshold": -500_000,
    "startWindow": START_WINDOW,
    "maxSamples": 1_000_000,
    "agreementToleranceBps": DEFAULT_AGREEMENT_TOLERANCE_BPS,
}

# enum values (IMarketplace)
STATUS = {name: i for i, name in enumerate(["None", "Open", "Training", "Finalized", "Settled", "Cancelled"])}
PHASE = {name: i for i, name in enumerate(["None", "Commit", "Reveal", "ScoreCommit", "ScoreReveal", "Publish", "VoteCommit", "VoteReveal", "Due"])}
ROLE = {name: i for i, name in enumerate(["None", "Trainer", "Validator", "Aggregator"])}
SLASH = {name: i for i, name in enumerate(["Late", "Poison", "Rejected", "Disagreed"])}


@dataclass(frozen=True)
class Actors:
    """Dev accounts by role: owner (buyer), aggregator, 6 validators, 20 trainers, 2 outsiders."""

    owner: str
    aggregator: str
    validators: list[str]
    trainers: list[str]
    outsiders: list[str]
    deployer: str


class Reverted(AssertionError):
    pass


# ------------------------------------------------------------------------------ chain


def _actors(accounts: list[str]) -> Actors:
    return Actors(
        owner=accounts[0],
        aggregator=accounts[1],
        validators=accounts[2:8],
        trainers=accounts[8:28],
        outsiders=accounts[28:30],
        deployer=accounts[29],
    )


@dataclass
class SessionChain:
    """One embedded chain for the session with the Marketplace deployed; every test starts from
    the snapshot taken right after the deployment (reverting costs ~20 ms, a fresh chain and
    deployment ~100 ms, a ready task ~1 s: ready tasks are cached as snapshots too)."""

    w3: Web3
    market: Any
    base: int
    base_block: int
    ready: dict[Any, tuple[int, int]]

    def reset(self) -> None:
        self.w3.provider.ethereum_tester.revert_to_snapshot(self.base)

    def pristine(self) -> bool:
        return self.w3.eth.block_number == self.base_block

    def snapshot(self) -> int:
        """Snapshot the chain after mining an empty block. eth-tester reverts by re-importing the
        snapshot block, and py-evm executes transactions with prevrandao 0 but seals the block
        with a random mixHash: a block holding startTraining (which reads prevrandao) would not
        re-import. An empty block always does."""
        tester = self.w3.provider.ethereum_tester
        tester.mine_blocks(1)
        return tester.take_snapshot()


@pytest.fixture(scope="session")
def session_chain() -> SessionChain:
    w3 = new_embedded_web3()
    # Chain time far past the wall clock: every block is then exactly its parent + 1 s, so a
    # snapshot reused minutes later (ready_task's) still has its deadlines ahead of it.
    set_next_timestamp(w3, latest_timestamp(w3) + FAR_FUTURE_S)
    w3.provider.ethereum_tester.mine_blocks(1)
    market = deploy_marketplace(w3, _actors(list(w3.eth.accounts)).deployer)
    tester = w3.provider.ethereum_tester
    return SessionChain(w3, market, tester.take_snapshot(), w3.eth.block_number, {})


@pytest.fixture
def w3(session_chain: SessionChain) -> Web3:
    """The embedded chain (30 funded dev accounts, auto-mining), reset to a fresh Marketplace
    deployment for every test."""
    session_chain.reset()
    return session_chain.w3


@pytest.fixture
def accounts(w3: Web3) -> list[str]:
    return list(w3.eth.accounts)


@pytest.fixture
def actors(accounts: list[str]) -> Actors:
    return _actors(accounts)


@pytest.fixture
def market(w3: Web3, session_chain: SessionChain):
    """The Marketplace as freshly deployed on `w3` (no task yet)."""
    return session_chain.market


@pytest.fixture
def now(w3: Web3) -> Callable[[], int]:
    """now() -> the latest block's timestamp. The next transaction runs at now() + 1."""
    return lambda: latest_timestamp(w3)


@pytest.fixture
def advance(w3: Web3) -> Callable[[int], int]:
    """advance(seconds) mines a block `seconds` later; the next transaction runs one second after it."""
    return lambda seconds: advance_time(w3, seconds)


@pytest.fixture
def set_time(w3: Web3) -> Callable[[int], None]:
    """set_time(ts): the next transaction's block carries timestamp `ts`."""
    return lambda timestamp: set_next_timestamp(w3, timestamp)


# ------------------------------------------------------------------------------ transactions


def _gas_for(call: Any) -> int:
    return MARKETPLACE_GAS_LIMITS.get(call.fn_name, 8_000_000)


@pytest.fixture
def tx(w3: Web3) -> Callable[..., Any]:
    """tx(market.functions.f(args), sender, value=0, gas=None) -> receipt (explicit gas, no estimation)."""

    def send(call: Any, sender: str, value: int = 0, gas: int | None = None) -> Any:
        receipt = _transact(w3, call, sender, value, gas)
        if receipt["status"] != 1:
            raise Reverted(f"{call.fn_name} reverted: {_replay_error(call, sender, value)}")
        return receipt

    return send


def _transact(w3: Web3, call: Any, sender: str, value: int, gas: int | None = None) -> Any:
    """Send with explicit gas; a revert either raises (eth-tester, some paths) or mines status 0."""
    tx_hash = call.transact({"from": sender, "value": value, "gas": gas or _gas_for(call)})
    return w3.eth.get_transaction_receipt(tx_hash)


def _replay_error(call: Any, sender: str, value: int, *contracts: Any) -> tuple[str, tuple[Any, ...]] | str:
    """Re-run a failed transaction as an eth_call on the block it failed in (a failed transaction
    changes no contract state, and the call sees that block's timestamp) to get its revert data."""
    try:
        call.call({"from": sender, "value": value}, block_identifier="latest")
    except (TransactionFailed, ContractLogicError) as exc:
        try:
            return decode_error(call.w3.eth.contract(address=call.address, abi=call.contract_abi), exc, *contracts)
        except Reverted as unknown:
            return str(unknown)
    return "(the replay did not revert)"


def _error_table(contract: Any) -> dict[bytes, tuple[str, list[str]]]:
    table = {}
    for item in contract.abi:
        if item.get("type") != "error":
            continue
        types = [abi_type(i) for i in item["inputs"]]
        selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
        table[selector] = (item["name"], types)
    return table


def _revert_data(exc: Exception) -> bytes:
    """The raw revert data of an eth-tester TransactionFailed or a web3 ContractCustomError."""
    if isinstance(exc, (ContractCustomError, ContractLogicError)) and getattr(exc, "data", None):
        data = exc.data
        return bytes.fromhex(data[2:] if isinstance(data, str) and data.startswith("0x") else str(data))
    message = exc.args[0] if exc.args else ""
    if isinstance(message, Exception):
        message = message.args[0]
    if isinstance(message, bytes):
        return message
    text = str(message)
    prefix = "execution reverted: "
    if text.startswith(prefix):
        text = text[len(prefix) :]
    if text.startswith(("b'", 'b"')):
        return ast.literal_eval(text)  # eth-tester renders the revert data as a bytes repr
    raise Reverted(f"not a custom-error revert: {text!r}")


def decode_error(contract: Any, exc: Exception, *more: Any) -> tuple[str, tuple[Any, ...]]:
    """(error name, decoded args) of a custom-error revert of `contract` (or of `more` contracts:
    an error bubbled up through a forwarding contract)."""
    data = _revert_data(exc)
    table = {}
    for c in (*more, contract):
        table.update(_error_table(c))
    if data[:4] not in table:
        raise Reverted(f"unknown revert data {data.hex()}")
    name, types = table[data[:4]]
    return name, tuple(abi_decode(types, data[4:]))


def _normalise(value: Any) -> Any:
    if isinstance(value, str) and Web3.is_address(value):
        return value.lower()
    if isinstance(value, (list, tuple)):
        return tuple(_normalise(v) for v in value)
    return value


@pytest.fixture
def expect_revert(market: Any) -> Callable[..., tuple[Any, ...]]:
    """expect_revert(call, sender, "ErrorName", *args, value=0): the transaction reverts with that
    custom error (and those args, if given; addresses compare case-insensitively). Returns the args."""

    def check(call: Any, sender: str, error: str, *args: Any, value: int = 0) -> tuple[Any, ...]:
        try:
            receipt = _transact(market.w3, call, sender, value)
        except (TransactionFailed, ContractLogicError) as exc:
            name, got = decode_error(market, exc)
        else:
            if receipt["status"] == 1:
                raise Reverted(f"{call.fn_name} did not revert (expected {error})")
            replayed = _replay_error(call, sender, value, market)
            if isinstance(replayed, str):
                raise Reverted(f"{call.fn_name} reverted without a custom error: {replayed}")
            name, got = replayed
        assert name == error, f"{call.fn_name} reverted {name}{got}, expected {error}"
        if args:
            assert _normalise(got) == _normalise(args), f"{error} args {got} != {args}"
        return got

    return check


@pytest.fixture
def call_error(market: Any) -> Callable[..., tuple[str, tuple[Any, ...]]]:
    """call_error(call, sender) -> (error name, args) of a reverting view / eth_call."""

    def run(call: Any, sender: str | None = None, value: int = 0) -> tuple[str, tuple[Any, ...]]:
        try:
            call.call({"from": sender, "value": value} if sender else {})
        except (TransactionFailed, ContractLogicError) as exc:
            return decode_error(market, exc)
        raise Reverted(f"{call.fn_name} did not revert")

    return run


@pytest.fixture
def events(market: Any) -> Callable[[Any, str], list[dict[str, Any]]]:
    """events(receipt, "EventName") -> the decoded args of every such event in the receipt."""

    def decode(receipt: Any, name: str) -> list[dict[str, Any]]:
        from web3.logs import DISCARD

        return [dict(e["args"]) for e in getattr(market.events, name)().process_receipt(receipt, errors=DISCARD)]

    return decode


# ------------------------------------------------------------------------------ tasks


def params_tuple(market: Any, **overrides: Any) -> tuple[Any, ...]:
    """The ModelParams tuple (ABI order) of the default task with `overrides` (ABI field names;
    `aggregator` among them)."""
    components = next(i for i in market.abi if i.get("name") == "newModel")["inputs"][0]["components"]
    order = [c["name"] for c in components]
    unknown = set(overrides) - set(order)
    if unknown:
        raise KeyError(f"unknown ModelParams fields {sorted(unknown)}")
    values = {**DEFAULT_PARAMS, **overrides}
    return tuple(values[name] for name in order)


@pytest.fixture
def make_params(actors: Actors, market: Any) -> Callable[..., tuple[Any, ...]]:
    """make_params(**overrides) -> the ModelParams tuple (ABI order) of the default task."""
    return lambda **overrides: params_tuple(market, **{"aggregator": actors.aggregator, **overrides})


@pytest.fixture
def post_task(market: Any, actors: Actors, tx: Callable[..., Any], make_params: Callable[..., Any]) -> Callable[..., int]:
    """post_task(owner=actors.owner, value=DEFAULT_REWARD, **param_overrides) -> modelId."""

    def post(owner: str | None = None, value: int = DEFAULT_REWARD, **overrides: Any) -> int:
        params = make_params(**overrides)
        receipt = tx(market.functions.newModel(params), owner or actors.owner, value=value)
        from web3.logs import DISCARD

        (created,) = market.events.ModelCreated().process_receipt(receipt, errors=DISCARD)
        return int(created["args"]["modelId"])

    return post


@pytest.fixture
def ready_task(market: Any, actors: Actors, tx: Callable[..., Any], post_task: Callable[..., int], session_chain: SessionChain) -> Callable[..., int]:
    """ready_task(n_trainers=3, n_validators=3, start=True, owner=None, value=DEFAULT_REWARD,
    **param_overrides) -> modelId: posted, licences bought, trainers / validators / the
    aggregator joined (actors.trainers[:n], actors.validators[:n]), and training started (round 1
    in Commit) when `start`."""

    def ready(n_trainers: int = 3, n_validators: int = 3, start: bool = True, owner: str | None = None, value: int = DEFAULT_REWARD, **overrides: Any) -> int:
        key = (n_trainers, n_validators, start, owner, value, tuple(sorted(overrides.items())))
        if session_chain.pristine():
            if key in session_chain.ready:
                snapshot, model_id = session_chain.ready[key]
                session_chain.w3.provider.ethereum_tester.revert_to_snapshot(snapshot)
                return model_id
            model_id = _ready(n_trainers, n_validators, start, owner, value, **overrides)
            session_chain.ready[key] = (session_chain.snapshot(), model_id)
            return model_id
        return _ready(n_trainers, n_validators, start, owner, value, **overrides)

    def _ready(n_trainers: int, n_validators: int, start: bool, owner: str | None, value: int, **overrides: Any) -> int:
        overrides.setdefault("minTrainers", min(n_trainers, DEFAULT_PARAMS["minTrainers"]) or 1)
        overrides.setdefault("committeeSize", min(n_validators, DEFAULT_PARAMS["committeeSize"]) or 1)
        model_id = post_task(owner=owner, value=value, **overrides)
        params, _ = market.functions.getModel(model_id).call()
        fee, t_stake, v_stake, a_stake = params[13], params[14], params[15], params[16]
        for trainer in actors.trainers[:n_trainers]:
            tx(market.functions.buyLicense(model_id), trainer, value=fee)
            tx(market.functions.joinAsTrainer(model_id), trainer, value=t_stake)
        for validator in actors.validators[:n_validators]:
            tx(market.functions.joinAsValidator(model_id), validator, value=v_stake)
        tx(market.functions.joinAsAggregator(model_id), actors.aggregator, value=a_stake)
        if start:
            tx(market.functions.startTraining(model_id), owner or actors.owner)
        return model_id

    return ready


# ------------------------------------------------------------------------------ rounds


def update_digest(trainer: str, round_: int, tag: str = "") -> bytes:
    """A deterministic stand-in for a trainer's update CID digest."""
    return keccak(text=f"update:{trainer.lower()}:{round_}:{tag}")


def salt_of(trainer: str, round_: int) -> bytes:
    return keccak(text=f"salt:{trainer.lower()}:{round_}")


def commitment_of(model_id: int, round_: int, digest: bytes, samples: int, salt: bytes, trainer: str) -> bytes:
    from eth_abi import encode

    return keccak(encode(["uint256", "uint32", "bytes32", "uint64", "bytes32", "address"], [model_id, round_, digest, samples, salt, trainer]))


ROUND_FIELDS = [
    "round",
    "phase",
    "phaseDeadline",
    "committee",
    "commits",
    "reveals",
    "scoreCommits",
    "scoresSubmitted",
    "voteCommits",
    "proposed",
    "proposedDigest",
    "proposedMetric",
    "confirmations",
    "rejections",
    "closed",
]
PARTICIPANT_FIELDS = ["role", "stakeRemaining", "earned", "slashed", "licensed"]
STATE_FIELDS = [
    "owner",
    "status",
    "currentRound",
    "roundsClosed",
    "reward",
    "escrow",
    "stakesHeld",
    "accrued",
    "licenseIncome",
    "globalModelDigest",
    "trainerCount",
    "validatorCount",
    "aggregatorJoined",
    "licenseHeld",
    "startDeadline",
    "endRequested",
]


class Flow:
    """Round actions with deterministic update digests and salts, and decoded views."""

    def __init__(self, w3: Web3, market: Any, actors: Actors, tx: Callable[..., Any]):
        self.w3, self.market, self.actors, self.tx = w3, market, actors, tx
        self.f = market.functions

    # views
    def round(self, model_id: int, round_: int | None = None) -> dict[str, Any]:
        if round_ is None:
            round_ = self.state(model_id)["currentRound"]
        return dict(zip(ROUND_FIELDS, self.f.getRound(model_id, round_).call()))

    def state(self, model_id: int) -> dict[str, Any]:
        return dict(zip(STATE_FIELDS, self.f.getModel(model_id).call()[1]))

    def params(self, model_id: int) -> tuple[Any, ...]:
        return self.f.getModel(model_id).call()[0]

    def participant(self, model_id: int, account: str) -> dict[str, Any]:
        return dict(zip(PARTICIPANT_FIELDS, self.f.participant(model_id, account).call()))

    def committee(self, model_id: int, round_: int) -> list[str]:
        return list(self.round(model_id, round_)["committee"])

    def phase(self, model_id: int) -> int:
        return self.round(model_id)["phase"]

    # actions
    def commitment(self, model_id: int, round_: int, trainer: str, samples: int = 100, tag: str = "") -> bytes:
        """keccak256(abi.encode(modelId, round, updateDigest, numSamples, salt, trainer)), computed
        here (test_commitment_of_matches_abi_encoding checks commitmentOf agrees)."""
        return commitment_of(model_id, round_, update_digest(trainer, round_, tag), samples, salt_of(trainer, round_), trainer)

    def commit(self, model_id: int, round_: int, trainer: str, samples: int = 100, tag: str = "") -> Any:
        return self.tx(self.f.commitUpdate(model_id, round_, self.commitment(model_id, round_, trainer, samples, tag)), trainer)

    def reveal(self, model_id: int, round_: int, trainer: str, samples: int = 100, tag: str = "") -> Any:
        return self.tx(self.f.revealUpdate(model_id, round_, update_digest(trainer, round_, tag), samples, salt_of(trainer, round_)), trainer)

    def member_salt(self, model_id: int, round_: int, member: str, kind: str) -> bytes:
        return keccak(text=f"{kind}-salt:{model_id}:{round_}:{member.lower()}")

    def commit_scores(self, model_id: int, round_: int, member: str, scores: list[int]) -> Any:
        """commitScores with the commitment of `scores` and this member's deterministic salt."""
        salt = self.member_salt(model_id, round_, member, "score")
        return self.tx(self.f.commitScores(model_id, round_, score_commitment(model_id, round_, member, scores, salt)), member)

    def reveal_scores(self, model_id: int, round_: int, member: str, scores: list[int]) -> Any:
        return self.tx(self.f.revealScores(model_id, round_, scores, self.member_salt(model_id, round_, member, "score")), member)

    def commit_vote(self, model_id: int, round_: int, member: str, ok: bool = True) -> Any:
        salt = self.member_salt(model_id, round_, member, "vote")
        return self.tx(self.f.commitVote(model_id, round_, vote_commitment(model_id, round_, member, ok, salt)), member)

    def reveal_vote(self, model_id: int, round_: int, member: str, ok: bool = True) -> Any:
        return self.tx(self.f.revealVote(model_id, round_, ok, self.member_salt(model_id, round_, member, "vote")), member)

    def _past_phase(self, model_id: int, round_: int, phase: str) -> None:
        """If round `round_` is still in `phase` (its window open because someone did not act),
        move the chain past that phase's deadline."""
        view = self.round(model_id, round_)
        if view["phase"] == PHASE[phase]:
            set_next_timestamp(self.w3, view["phaseDeadline"] + 1)
            self.w3.provider.ethereum_tester.mine_blocks(1)

    def score(self, model_id: int, round_: int, by_member: dict[str, list[int]]) -> Any:
        """Every member in `by_member` commits its scores, then (past ScoreCommit, the chain moved
        to its deadline when a member did not commit) reveals them. Returns the last reveal's receipt."""
        for member, scores in by_member.items():
            self.commit_scores(model_id, round_, member, scores)
        self._past_phase(model_id, round_, "ScoreCommit")
        receipt = None
        for member, scores in by_member.items():
            receipt = self.reveal_scores(model_id, round_, member, scores)
        return receipt

    def publish(self, model_id: int, round_: int, digest: bytes | None = None, metric: int = 900_000) -> Any:
        digest = digest or keccak(text=f"global:{model_id}:{round_}")
        return self.tx(self.f.publishGlobalModel(model_id, round_, digest, metric), self.actors.aggregator)

    def vote(self, model_id: int, round_: int, by_member: dict[str, bool]) -> Any:
        """Every member in `by_member` commits its vote, then (past VoteCommit, the chain moved to
        its deadline when a member did not commit) reveals it. Returns the last reveal's receipt
        (which settles the round when every member that committed revealed)."""
        for member, ok in by_member.items():
            self.commit_vote(model_id, round_, member, ok)
        self._past_phase(model_id, round_, "VoteCommit")
        receipt = None
        for member, ok in by_member.items():
            receipt = self.reveal_vote(model_id, round_, member, ok)
        return receipt

    def to_phase(self, model_id: int, round_: int, trainers: list[str], phase: str, scores: list[int] | None = None) -> None:
        """Drive round `round_` from Commit to the start of `phase` with everyone acting
        (trainers commit and reveal; every member scores `scores`, default 1_000_000 each;
        the aggregator publishes)."""
        order = ["Reveal", "ScoreCommit", "Publish", "VoteCommit"]
        target = order.index(phase)
        for trainer in trainers:
            self.commit(model_id, round_, trainer)
        if target == 0:
            return
        for trainer in trainers:
            self.reveal(model_id, round_, trainer)
        if target == 1:
            return
        committee = self.committee(model_id, round_)
        self.score(model_id, round_, {m: scores if scores is not None else [1_000_000] * len(trainers) for m in committee})
        if target == 2:
            return
        self.publish(model_id, round_)

    def play_round(self, model_id: int, round_: int, trainers: list[str], scores: list[int] | None = None, ok: bool = True) -> Any:
        """Everyone acts; returns the receipt of the last vote reveal (which closes the round)."""
        self.to_phase(model_id, round_, trainers, "VoteCommit", scores)
        return self.vote(model_id, round_, dict.fromkeys(self.committee(model_id, round_), ok))


@pytest.fixture
def flow(w3: Web3, market: Any, actors: Actors, tx: Callable[..., Any]) -> Flow:
    """Round actions and decoded views (see Flow)."""
    return Flow(w3, market, actors, tx)
