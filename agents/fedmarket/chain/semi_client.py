"""A typed client over the SemiMarket contract (contracts/SemiMarket.sol, docs/semi.md).

    market = deploy_semi_market(w3, deployer)                 # or SemiMarketClient(w3, address)
    task_id = market.with_account(buyer).post_task(SemiParams(...), escrow_wei).task_id
    client = market.with_account(account); client.join_task(task_id)
    client.record_round(task_id, 1, model_digest, downloads=[UploadRef(2, 1)], scores=[ScoreEntry(2, 1, loss_micro(0.41))])

The seed paper's upload / download / score records are the contract's events; `records()` reads
them back as `SemiRecord`s and `verify_chain` recomputes every hash (keccak256 of the parent's
hash and the record's ABI-encoded fields, exactly as the contract hashes them). Views, sending
and revert decoding are the Marketplace client's (`MarketClient` over this ABI): a fixed gas
limit per function on the embedded chain (SEMI_GAS_LIMITS), an estimate plus margin on a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from fedmarket.chain.abi import Event
from fedmarket.chain.client import MarketClient
from fedmarket.chain.compile import load_artifact
from fedmarket.chain.deploy import deploy_contract, write_address_book
from fedmarket.chain.embedded import embedded_logs
from fedmarket.chain.records import TxResult
from fedmarket.chain.rpc import rpc_errors
from fedmarket.chain.transactions import Sender, sender_address
from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

SEMI_MARKET = "SemiMarket"
MICRO = 1_000_000  # losses go on chain in micro-units
MAX_LOSS_MICRO = 2**32 - 1
MAX_SCORE = 255
UPLOAD, DOWNLOAD, SCORE = 0, 1, 2
RECORD_TYPES = {UPLOAD: "upload", DOWNLOAD: "download", SCORE: "score"}
RECORD_EVENTS = {"UploadRecord": UPLOAD, "DownloadRecord": DOWNLOAD, "ScoreRecord": SCORE}
ZERO_HASH = b"\0" * 32

SEMI_GAS_LIMITS: dict[str, int] = {
    # Upper bounds at the caps (31 clients: 30 downloads and 30 scores in one round, every score
    # counted; 31 authors judged in one settlement); tests/contracts/test_semi_market.py measures them.
    "postTask": 400_000,
    "fundTask": 80_000,
    "joinTask": 200_000,
    "startTask": 150_000,
    "cancelTask": 1_500_000,
    "recordRound": 2_000_000,
    "settleEpoch": 3_000_000,
    "withdraw": 80_000,
}


class SemiStatus(IntEnum):
    NONE = 0
    OPEN = 1
    RUNNING = 2
    SETTLED = 3
    CANCELLED = 4


@dataclass(frozen=True)
class SemiParams:
    """What a buyer sets when posting a semi task (the contract's SemiParams, snake_case)."""

    spec_digest: bytes
    initial_model_digest: bytes
    client_stake: int
    license_fee: int = 0
    min_clients: int = 2
    max_clients: int = 31
    epochs: int = 1
    epoch_length: int = 60
    rounds: int = 1
    loss_cap: int = 5 * MICRO
    pass_score: int = 1
    min_scorers: int = 1
    late_slash_bps: int = 1_000
    start_window: int = 3_600

    def to_abi(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> SemiParams:
        items = [bytes(v) if isinstance(v, (bytes, bytearray)) else int(v) for v in values]
        return cls(*items)


@dataclass(frozen=True)
class SemiTaskState:
    owner: str
    status: SemiStatus
    client_count: int
    epochs_settled: int
    start_time: int
    start_deadline: int
    record_count: int
    uploads: int
    downloads: int
    scores: int
    reward: int
    escrow: int
    stakes_held: int
    fees_held: int
    slash_carry: int
    head: bytes

    @classmethod
    def from_abi(cls, v: Sequence[Any]) -> SemiTaskState:
        return cls(to_checksum_address(v[0]), SemiStatus(v[1]), *(int(x) for x in v[2:15]), bytes(v[15]))


@dataclass(frozen=True)
class SemiTask:
    params: SemiParams
    state: SemiTaskState


@dataclass(frozen=True)
class ClientInfo:
    account: str
    rounds: int
    last_upload_epoch: int
    stake: int


@dataclass(frozen=True)
class UploadRef:
    """An upload named by its author's client index and the author's round."""

    author: int
    round: int


@dataclass(frozen=True)
class ScoreEntry:
    author: int
    round: int
    loss: int  # micro-units (loss_micro)


@dataclass(frozen=True)
class SemiRecord:
    """One on-chain record: the seed paper's header (id, timestamp, type, client), content, hashes."""

    id: int
    timestamp: int
    type: str
    client: str
    content: dict[str, Any]
    parent_hash: bytes
    hash: bytes

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "parent_hash": "0x" + self.parent_hash.hex(), "hash": "0x" + self.hash.hex()}


def loss_micro(loss: float) -> int:
    """A float loss as the contract takes it: micro-units, rounded, clamped to uint32."""
    if loss != loss or loss < 0:
        raise FedmarketError(f"a loss must be a non-negative number, got {loss}")
    return min(MAX_LOSS_MICRO, int(round(loss * MICRO)))


def bounded_score(loss: int, loss_cap: int) -> int:
    """The contract's boundedScore: 1 + floor(254 * (cap - min(loss, cap)) / cap)."""
    capped = min(loss, loss_cap)
    return 1 + (MAX_SCORE - 1) * (loss_cap - capped) // loss_cap


def record_hash(parent: bytes, id: int, timestamp: int, type: int, client: str, content: Sequence[tuple[str, Any]]) -> bytes:
    """keccak256(abi.encode(parent, id, timestamp, type, client, content...)), as the contract hashes."""
    types = ["bytes32", "uint64", "uint64", "uint8", "address", *(t for t, _ in content)]
    return keccak(abi_encode(types, [parent, id, timestamp, type, client, *(v for _, v in content)]))


def _content_fields(type: int, c: dict[str, Any]) -> list[tuple[str, Any]]:
    if type == UPLOAD:
        return [("uint32", c["round"]), ("bytes32", c["model_digest"])]
    if type == DOWNLOAD:
        return [("uint16", c["author"]), ("uint32", c["round"])]
    return [("uint16", c["author"]), ("uint32", c["round"]), ("uint32", c["loss"])]


def record_of(event: Event) -> SemiRecord:
    a = event.args
    kind = RECORD_EVENTS[event.name]
    if kind == UPLOAD:
        content: dict[str, Any] = {"round": int(a["round"]), "model_digest": bytes(a["modelDigest"])}
    else:
        content = {"author": int(a["author"]), "round": int(a["round"])}
        if kind == SCORE:
            content.update(loss=int(a["loss"]), score=int(a["score"]), counted=bool(a["counted"]))
    return SemiRecord(int(a["id"]), int(a["timestamp"]), RECORD_TYPES[kind], a["client"], content, bytes(a["parentHash"]), bytes(a["hash"]))


def verify_chain(records: Sequence[SemiRecord], head: bytes | None = None) -> bool:
    """Ids run 0, 1, ...; every record names its parent's hash and its hash recomputes; the last
    hash is `head` (the contract's) when given."""
    parent = ZERO_HASH
    for expected_id, r in enumerate(records):
        kind = {v: k for k, v in RECORD_TYPES.items()}[r.type]
        if r.id != expected_id or r.parent_hash != parent:
            return False
        if record_hash(parent, r.id, r.timestamp, kind, r.client, _content_fields(kind, r.content)) != r.hash:
            return False
        parent = r.hash
    return head is None or parent == head


def deploy_semi_market(w3: Web3, deployer: Sender, *, record: bool = False) -> SemiMarketClient:
    """Deploy a SemiMarket; with `record`, also enter it into the chain's address book."""
    contract = deploy_contract(w3, SEMI_MARKET, deployer)
    receipt = contract.deployment_receipt  # type: ignore[attr-defined]
    if record:
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        write_address_book(w3.eth.chain_id, SEMI_MARKET, contract.address, tx, receipt["blockNumber"], deployer=sender_address(deployer))
    market = SemiMarketClient(w3, contract.address, check_code=False)
    market.deployment_block = int(receipt["blockNumber"])
    return market


class SemiMarketClient:
    """The SemiMarket at `address`, sending as `account` (a LocalAccount or an unlocked address)."""

    def __init__(self, w3: Web3, address: str, account: LocalAccount | None = None, *, check_code: bool = True) -> None:
        # The Marketplace client's plumbing (views memoised per block, the one sender, revert
        # decoding, fixed gas limits on the embedded chain) over this contract's ABI.
        self._rpc = MarketClient(w3, address, account, abi=load_artifact(SEMI_MARKET).abi, gas_limits=SEMI_GAS_LIMITS, check_code=check_code)
        self.w3 = w3
        self.address = self._rpc.address
        self.events = self._rpc.events
        self.deployment_block = 0

    @property
    def account(self) -> LocalAccount | None:
        return self._rpc.account

    def with_account(self, account: LocalAccount | str) -> SemiMarketClient:
        """The same contract, sending as `account` (a LocalAccount, or an unlocked dev address)."""
        other = object.__new__(SemiMarketClient)
        other.__dict__.update(self.__dict__)
        other._rpc = self._rpc.with_account(account)  # type: ignore[arg-type]
        return other

    # ---------------------------------------------------------------- transactions

    def post_task(self, params: SemiParams, escrow_wei: int) -> TxResult:
        """postTask: the sender becomes the task's owner; `.model_id` is unused, see `task_id_of`."""
        return self._transact("postTask", [params.to_abi()], value=escrow_wei)

    def fund_task(self, task_id: int, amount_wei: int) -> TxResult:
        return self._transact("fundTask", [task_id], value=amount_wei)

    def join_task(self, task_id: int, value_wei: int | None = None) -> TxResult:
        """joinTask with exactly stake + licence fee (read from the task when not given)."""
        if value_wei is None:
            p = self.get_task(task_id).params
            value_wei = p.client_stake + p.license_fee
        return self._transact("joinTask", [task_id], value=value_wei)

    def start_task(self, task_id: int) -> TxResult:
        return self._transact("startTask", [task_id])

    def cancel_task(self, task_id: int) -> TxResult:
        return self._transact("cancelTask", [task_id])

    def record_round(self, task_id: int, round: int, model_digest: bytes, downloads: Sequence[UploadRef] = (), scores: Sequence[ScoreEntry] = ()) -> TxResult:
        """recordRound: the sender's upload of `round`, its downloads and its scores, in one transaction."""
        d = [(u.author, u.round) for u in downloads]
        s = [(e.author, e.round, e.loss) for e in scores]
        return self._transact("recordRound", [task_id, round, bytes(model_digest), d, s])

    def settle_epoch(self, task_id: int) -> TxResult:
        return self._transact("settleEpoch", [task_id])

    def withdraw(self) -> TxResult:
        return self._transact("withdraw", [])

    # ---------------------------------------------------------------- views

    def task_count(self) -> int:
        return int(self._call("taskCount"))

    def get_task(self, task_id: int) -> SemiTask:
        params, state = self._call("getTask", task_id)
        return SemiTask(SemiParams.from_abi(params), SemiTaskState.from_abi(state))

    def clients(self, task_id: int) -> list[ClientInfo]:
        return [ClientInfo(to_checksum_address(a), int(r), int(e), int(s)) for a, r, e, s in self._call("clientsOf", task_id)]

    def score_book(self, task_id: int, epoch: int, author: int) -> tuple[list[int], bool]:
        scores, uploaded = self._call("scoreBook", task_id, epoch, author)
        return [int(x) for x in scores], bool(uploaded)

    def task_balance(self, task_id: int) -> int:
        return int(self._call("taskBalance", task_id))

    def credit(self, account: str) -> int:
        return int(self._call("credit", to_checksum_address(account)))

    def total_credit(self) -> int:
        return int(self._call("totalCredit"))

    def bounded_score(self, loss: int, loss_cap: int) -> int:
        return int(self._call("boundedScore", loss, loss_cap))

    def logs(self, from_block: int | None = None) -> list[Event]:
        """Every event of this contract from `from_block` (default: its deployment) to the head."""
        start = self.deployment_block if from_block is None else from_block
        with rpc_errors(self.w3):
            end = int(self.w3.eth.block_number)
            raw = embedded_logs(self.w3, self.address, start, end)
            if raw is None:
                raw = self.w3.eth.get_logs({"address": self.address, "fromBlock": start, "toBlock": end})
        return [e for e in (self.events.decode(log) for log in raw) if e is not None]

    def records(self, task_id: int, from_block: int | None = None) -> list[SemiRecord]:
        """The task's upload / download / score records, in id order."""
        found = [record_of(e) for e in self.logs(from_block) if e.name in RECORD_EVENTS and int(e.args["taskId"]) == task_id]
        return sorted(found, key=lambda r: r.id)

    # ---------------------------------------------------------------- plumbing

    def _call(self, function: str, *args: Any) -> Any:
        return self._rpc._call(function, *args)

    def _transact(self, function: str, args: list[Any], *, value: int = 0) -> TxResult:
        return self._rpc._transact(function, args, value=value)


def task_id_of(result: TxResult) -> int:
    """The new task's id from postTask's SemiTaskPosted event."""
    return int(result.event("SemiTaskPosted").args["taskId"])
