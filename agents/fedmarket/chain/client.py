"""A typed client over the Marketplace contract: one Python method per contract function.

    w3 = connect(None)                                  # embedded chain; or connect("http://127.0.0.1:8545")
    market = open_market(w3, account=buyer)             # address from deploy/deployments/<chainId>.json
    result = market.new_model(ModelParams(spec_digest=..., initial_model_digest=..., aggregator=...), escrow_wei)
    model_id = result.model_id
    trainer = market.with_account(trainer_account)
    trainer.buy_license(model_id); trainer.join_as_trainer(model_id)

Transactions are signed locally with an eth_account LocalAccount (the same code path on the
embedded chain, anvil and any node): build, check the balance covers value + gas, sign,
`send_raw_transaction`, wait for the receipt, and return a `TxResult` with the decoded events.
Gas: on the embedded chain a fixed limit per function (`fedmarket.chain.deploy.MARKETPLACE_GAS_LIMITS`,
upper bounds within the protocol's caps; estimation would run every transaction twice); on a node,
`eth_estimateGas` plus a margin, which also surfaces a revert before anything is sent.

A revert becomes a `ContractRevert` subclass named after the contract's custom error
(`WrongPhase`, `UnknownModel`, ...) carrying the error's fields and a one-line message, e.g.
"task 3 round 2 is in its Reveal phase; commitUpdate needs Commit".
"""

from __future__ import annotations

import ast
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from fedmarket.chain.events import Event, EventDecoder
from fedmarket.errors import FedmarketError
from fedmarket.storage.cid import cid_to_digest, digest_to_cid

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.contract import Contract

DEFAULT_RPC_URL = "http://127.0.0.1:8545"
"""Where `fedmarket chain start` serves anvil, and what --rpc means when given without a value."""

EMBEDDED = "embedded"
"""`connect(EMBEDDED)` (or None): a fresh in-process chain."""

RECEIPT_POLL_S = 0.02
RECEIPT_TIMEOUT_S = 120.0
GAS_MARGIN = 1.25
"""Estimated gas is multiplied by this (plus GAS_MARGIN_FLAT) on nodes: state may move between estimate and mining."""
GAS_MARGIN_FLAT = 20_000
DEFAULT_TIP_WEI = 10**9
WEI_PER_ETH = 10**18

MAX_NONCE_RETRIES = 3

# ----------------------------------------------------------------------------- enums


class _SolidityEnum(IntEnum):
    """An IntEnum mirroring a Solidity enum; str() gives the Solidity member name (e.g. "Reveal")."""

    def __str__(self) -> str:
        return self.name.capitalize()


class Status(_SolidityEnum):
    NONE = 0
    OPEN = 1
    TRAINING = 2
    FINALIZED = 3
    SETTLED = 4
    CANCELLED = 5


class Phase(_SolidityEnum):
    NONE = 0
    COMMIT = 1
    REVEAL = 2
    SCORE = 3
    PUBLISH = 4
    CONFIRM = 5
    DUE = 6


class Role(_SolidityEnum):
    NONE = 0
    TRAINER = 1
    VALIDATOR = 2
    AGGREGATOR = 3


class SlashReason(_SolidityEnum):
    LATE = 0
    POISON = 1
    REJECTED = 2


_ENUMS: dict[str, type[_SolidityEnum]] = {"Status": Status, "Phase": Phase, "Role": Role, "SlashReason": SlashReason}

# ----------------------------------------------------------------------------- digests (CIDv0)
# The chain keeps only a CIDv0's 32-byte sha2-256 digest; the conversion has one home, storage.cid.

def as_digest(value: bytes | str) -> bytes:
    """A bytes32 from 32 raw bytes, a 0x-prefixed 64-hex-digit string or a CIDv0 `Qm...`."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 32:
            raise FedmarketError(f"a digest is 32 bytes, not {len(value)}")
        return bytes(value)
    if isinstance(value, str):
        if value.startswith(("0x", "0X")):
            try:
                raw = bytes.fromhex(value[2:])
            except ValueError as exc:
                raise FedmarketError(f"not a hex digest: {value!r}") from exc
            if len(raw) != 32:
                raise FedmarketError(f"a digest is 32 bytes, not {len(raw)}: {value!r}")
            return raw
        return cid_to_digest(value)
    raise FedmarketError(f"not a digest: {value!r}")


def commitment(model_id: int, round: int, update_digest: bytes | str, num_samples: int, salt: bytes, trainer: str) -> bytes:
    """keccak256(abi.encode(modelId, round, updateDigest, numSamples, salt, trainer)), computed
    locally; equal to the contract's `commitmentOf` (docs/protocol.md, Commitment)."""
    if len(salt) != 32:
        raise FedmarketError(f"a salt is 32 bytes, not {len(salt)}")
    encoded = abi_encode(
        ["uint256", "uint32", "bytes32", "uint64", "bytes32", "address"],
        [int(model_id), int(round), as_digest(update_digest), int(num_samples), bytes(salt), to_checksum_address(trainer)],
    )
    return keccak(encoded)


def new_salt() -> bytes:
    """32 random bytes for a commitment (keep them until the reveal)."""
    return os.urandom(32)


def format_eth(wei: int) -> str:
    """Wei as ether for people: "1.5 ETH", "0.000021 ETH", "0 ETH"."""
    if wei == 0:
        return "0 ETH"
    if abs(wei) < 10**9:
        return f"{wei} wei"
    whole, frac = divmod(abs(int(wei)), WEI_PER_ETH)
    text = f"{whole}.{frac:018d}".rstrip("0").rstrip(".")
    return f"{'-' if wei < 0 else ''}{text} ETH"


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True, kw_only=True)
class ModelParams:
    """What a buyer sets when posting a task (the Solidity struct ModelParams, field for field).

    Only the two digests and the aggregator have no default; the defaults are a small healthy task:
    3 rounds, 2..20 trainers, a committee of 3 out of up to 9 validators, 10-minute windows (a phase
    ends as soon as everyone acted), no licence fee, 0.01 ETH stakes, 10 % late / 50 % bad slash, the
    7000/2000/1000 bps trainer/validator/aggregator split, and poison below a utility of -0.1.
    Digests accept 32 bytes, 0x-hex or a CIDv0 (`Qm...`).
    """

    spec_digest: bytes
    initial_model_digest: bytes
    aggregator: str
    rounds: int = 3
    min_trainers: int = 2
    max_trainers: int = 20
    committee_size: int = 3
    max_validators: int = 9
    commit_window: int = 600
    reveal_window: int = 600
    score_window: int = 600
    publish_window: int = 600
    confirm_window: int = 600
    license_fee: int = 0
    trainer_stake: int = 10**16
    validator_stake: int = 10**16
    aggregator_stake: int = 10**16
    late_slash_bps: int = 1_000
    bad_slash_bps: int = 5_000
    trainer_share_bps: int = 7_000
    validator_share_bps: int = 2_000
    aggregator_share_bps: int = 1_000
    poison_threshold: int = -100_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec_digest", as_digest(self.spec_digest))
        object.__setattr__(self, "initial_model_digest", as_digest(self.initial_model_digest))
        object.__setattr__(self, "aggregator", to_checksum_address(self.aggregator))

    def to_abi(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> ModelParams:
        return cls(**{f.name: v for f, v in zip(fields(cls), values, strict=True)})

    def with_(self, **changes: Any) -> ModelParams:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @property
    def spec_cid(self) -> str:
        return digest_to_cid(self.spec_digest)

    @property
    def initial_model_cid(self) -> str:
        return digest_to_cid(self.initial_model_digest)


@dataclass(frozen=True)
class ModelState:
    """A task's mutable record (the Solidity struct ModelState)."""

    owner: str
    status: Status
    current_round: int
    rounds_closed: int
    reward: int
    escrow: int
    stakes_held: int
    accrued: int
    license_income: int
    global_model_digest: bytes
    trainer_count: int
    validator_count: int
    aggregator_joined: bool

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> ModelState:
        v = list(values)
        v[1] = Status(v[1])
        return cls(*v)

    @property
    def global_model_cid(self) -> str:
        return digest_to_cid(self.global_model_digest)


class ModelInfo(NamedTuple):
    """`get_model`: the task's parameters and state (unpacks as `params, state = ...`)."""

    params: ModelParams
    state: ModelState


@dataclass(frozen=True)
class RoundView:
    """One round as seen now (phase and deadline derived from the latest block's time)."""

    round: int
    phase: Phase
    phase_deadline: int
    committee: tuple[str, ...]
    commits: int
    reveals: int
    scores_submitted: int
    proposed: bool
    proposed_digest: bytes
    proposed_metric: int
    confirmations: int
    rejections: int
    closed: bool

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> RoundView:
        v = list(values)
        v[1] = Phase(v[1])
        v[3] = tuple(to_checksum_address(a) for a in v[3])
        return cls(*v)


@dataclass(frozen=True)
class ParticipantView:
    """A participant's standing in one task (the Solidity struct ParticipantView)."""

    role: Role
    stake_remaining: int
    earned: int
    slashed: int
    licensed: bool

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> ParticipantView:
        v = list(values)
        v[0] = Role(v[0])
        return cls(*v)


@dataclass(frozen=True)
class RevealedUpdate:
    """One entry of `revealed_updates`, in reveal order."""

    trainer: str
    update_digest: bytes
    num_samples: int

    @property
    def update_cid(self) -> str:
        return digest_to_cid(self.update_digest)


class Scores(NamedTuple):
    submitted: bool
    scores: list[int]


class Confirmation(NamedTuple):
    voted: bool
    ok: bool


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction and the market events its receipt holds."""

    function: str
    tx_hash: str
    gas_used: int
    block_number: int
    events: list[Event] = field(default_factory=list)

    def event(self, name: str) -> Event:
        """The first event called `name` (KeyError if there is none)."""
        for event in self.events:
            if event.name == name:
                return event
        raise KeyError(f"{self.function} emitted no {name} event (events: {[e.name for e in self.events]})")

    def events_named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    @property
    def model_id(self) -> int:
        """The modelId of the transaction's first event that names one (newModel: the new task's id)."""
        for event in self.events:
            if "modelId" in event.args:
                return int(event.args["modelId"])
        raise KeyError(f"{self.function} emitted no event with a modelId")


# ----------------------------------------------------------------------------- errors


class ChainUnreachable(FedmarketError):
    """The JSON-RPC node does not answer."""


class InsufficientFunds(FedmarketError):
    """The sending account cannot pay value + gas."""


class MarketNotDeployed(FedmarketError):
    """No Marketplace code at the address given or recorded."""


class TransactionFailed(FedmarketError):
    """A transaction failed without a decodable reason (out of gas, dropped, timed out)."""


class ContractRevert(FedmarketError):
    """The contract rejected a call. `name` is the Solidity error (e.g. "WrongPhase"), `fields` its
    arguments by name (enums as Status/Phase/Role), `function` the contract function called."""

    def __init__(self, name: str, fields: dict[str, Any], function: str | None = None, *, tx_hash: str | None = None, data: bytes = b"") -> None:
        self.name = name
        self.fields = fields
        self.function = function or "the call"
        self.tx_hash = tx_hash
        self.data = data
        super().__init__(self.describe())

    def describe(self) -> str:
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.fields.items())
        return f"{self.function} reverted with {self.name}({args})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_revert, (type(self), self.name, self.fields, self.function, self.tx_hash, self.data))

    def __getattr__(self, item: str) -> Any:
        # e.g. exc.modelId, exc.actual: the error's fields as attributes.
        try:
            return self.__dict__["fields"][item]
        except KeyError:
            raise AttributeError(item) from None


def _rebuild_revert(cls: type[ContractRevert], name: str, fields: dict[str, Any], function: str, tx_hash: str | None, data: bytes) -> ContractRevert:
    return cls(name, fields, function, tx_hash=tx_hash, data=data)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(int(timestamp), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(role: Any) -> str:
    return f"{str(role).lower()}s"


class UnknownModel(ContractRevert):
    def describe(self) -> str:
        return f"unknown task {self.fields['modelId']}"


class InvalidParams(ContractRevert):
    def describe(self) -> str:
        return f"invalid task parameters: {self.fields['reason']}"


class ZeroEscrow(ContractRevert):
    def describe(self) -> str:
        return f"{self.function} needs a reward escrow > 0 wei (send value with it)"


def _amount(wei: int) -> str:
    text = format_eth(wei)
    return text if text.endswith(" wei") or wei == 0 else f"{text} ({wei} wei)"


class WrongAmount(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{self.function} needs exactly {_amount(f['expected'])}; sent {_amount(f['sent'])}"


class NotOwner(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['caller']} is not the owner of task {f['modelId']}; only the owner may call {self.function}"


class NotOwnerOrAggregator(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['caller']} is neither the owner nor the aggregator of task {f['modelId']}; {self.function} is theirs"


class NotAggregator(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['caller']} is not the aggregator of task {f['modelId']}"


class NotTrainer(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['caller']} is not a trainer of task {f['modelId']}"


class NotCommitteeMember(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['caller']} is not on the committee of task {f['modelId']} round {f['round']}"


class WrongStatus(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"task {f['modelId']} is {f['actual']}; {self.function} needs it {f['expected']}"


class WrongPhase(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        if f["actual"] == Phase.NONE:
            return f"task {f['modelId']} round {f['round']} is not running; {self.function} needs its {f['expected']} phase"
        return f"task {f['modelId']} round {f['round']} is in its {f['actual']} phase; {self.function} needs {f['expected']}"


class WrongRound(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"task {f['modelId']} is in round {f['expected']}, not round {f['given']}"


class AlreadyLicensed(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['caller']} already holds a licence for task {f['modelId']}"


class NoLicense(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['caller']} has no licence for task {f['modelId']}: buy one first (buyLicense)"


class OwnerCannotParticipate(ContractRevert):
    def describe(self) -> str:
        return f"the owner of task {self.fields['modelId']} cannot take part in it ({self.function})"


class AlreadyJoined(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['caller']} already joined task {f['modelId']} as {str(f['role']).lower()}"


class RoleFull(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"task {f['modelId']} is full: it takes at most {f['cap']} {_plural(f['role'])}"


class NotEnoughParticipants(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        aggregator = "joined" if f["aggregatorJoined"] else "not joined"
        return f"task {f['modelId']} cannot start yet: {f['trainers']} trainers, {f['validators']} validators, aggregator {aggregator}"


class AlreadyCommitted(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['trainer']} already committed in task {f['modelId']} round {f['round']}"


class NotCommitted(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['trainer']} did not commit in task {f['modelId']} round {f['round']}: nothing to reveal"


class AlreadyRevealed(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['trainer']} already revealed in task {f['modelId']} round {f['round']}"


class CommitmentMismatch(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"the reveal of {f['trainer']} does not match its commitment in task {f['modelId']} round {f['round']} (other CID, sample count or salt)"


class ZeroSamples(ContractRevert):
    def describe(self) -> str:
        return f"{self.function} needs numSamples > 0"


class AlreadyScored(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['validator']} already scored task {f['modelId']} round {f['round']}"


class WrongScoreCount(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{self.function} needs {f['expected']} scores, one per revealed update; got {f['given']}"


class AlreadyPublished(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"task {f['modelId']} round {f['round']} already has a proposed global model"


class AlreadyConfirmed(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['validator']} already voted on the proposal of task {f['modelId']} round {f['round']}"


class RoundNotDue(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"task {f['modelId']} round {f['round']} is not due: its {f['phase']} phase runs until {_when(f['deadline'])}"


class RoundDataPruned(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return (
            f"task {f['modelId']} round {f['round']} is pruned: {self.function} answers for the current round "
            f"({f['currentRound']}) and the one before; older rounds are in the UpdateRevealed / ScoresSubmitted events"
        )


class NothingToWithdraw(ContractRevert):
    def describe(self) -> str:
        return f"{self.fields['account']} has nothing to withdraw"


class TransferFailed(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"sending {format_eth(f['amount'])} to {f['account']} failed (the receiver rejected it)"


class AmountTooLarge(ContractRevert):
    def describe(self) -> str:
        return f"{self.function}: {self.fields['amount']} wei is more than the market's accounting holds"


class ReentrantCall(ContractRevert):
    def describe(self) -> str:
        return f"{self.function} was re-entered while running (refused)"


class RevertReason(ContractRevert):
    """A plain `require(..., "reason")` / `revert("reason")`: Error(string)."""

    def describe(self) -> str:
        return f"{self.function} reverted: {self.fields['reason']}"


_PANICS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x22: "bad storage byte array",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an invalid internal function",
}


class Panic(ContractRevert):
    """A Solidity panic: Panic(uint256) (a bug in the contract, never expected)."""

    def describe(self) -> str:
        code = int(self.fields["code"])
        return f"{self.function} panicked: {_PANICS.get(code, 'unknown panic')} (0x{code:02x})"


class UnknownRevert(ContractRevert):
    """Revert data that matches no error of the ABI (or no data at all)."""

    def describe(self) -> str:
        if not self.data:
            return f"{self.function} reverted without a reason"
        return f"{self.function} reverted with unknown error data 0x{self.data.hex()}"


ERROR_CLASSES: dict[str, type[ContractRevert]] = {
    cls.__name__: cls
    for cls in (
        UnknownModel, InvalidParams, ZeroEscrow, WrongAmount, NotOwner, NotOwnerOrAggregator, NotAggregator, NotTrainer,
        NotCommitteeMember, WrongStatus, WrongPhase, WrongRound, AlreadyLicensed, NoLicense, OwnerCannotParticipate,
        AlreadyJoined, RoleFull, NotEnoughParticipants, AlreadyCommitted, NotCommitted, AlreadyRevealed,
        CommitmentMismatch, ZeroSamples, AlreadyScored, WrongScoreCount, AlreadyPublished, AlreadyConfirmed,
        RoundNotDue, RoundDataPruned, NothingToWithdraw, TransferFailed, AmountTooLarge, ReentrantCall,
    )
}  # fmt: skip
"""Solidity error name -> exception class; an error of the ABI missing here becomes a plain ContractRevert."""

_ERROR_STRING_SELECTOR = keccak(b"Error(string)")[:4]
_PANIC_SELECTOR = keccak(b"Panic(uint256)")[:4]


def _abi_type(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + kind[len("tuple") :]
    return kind


def _enum_of(item: dict[str, Any]) -> type[_SolidityEnum] | None:
    internal = item.get("internalType", "")
    if internal.startswith("enum "):
        return _ENUMS.get(internal.rsplit(".", 1)[-1])
    return None


class ErrorDecoder:
    """Revert data -> ContractRevert, from the ABI's error entries (selector -> name and argument types)."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        for entry in abi:
            if entry.get("type") == "error":
                types = [_abi_type(i) for i in entry.get("inputs", [])]
                selector = keccak(f"{entry['name']}({','.join(types)})".encode())[:4]
                self._errors[selector] = {**entry, "_types": types}

    def decode(self, data: bytes, function: str | None = None, *, tx_hash: str | None = None) -> ContractRevert:
        selector, body = data[:4], data[4:]
        try:
            if selector == _ERROR_STRING_SELECTOR:
                (reason,) = abi_decode(["string"], body)
                return RevertReason("Error", {"reason": reason}, function, tx_hash=tx_hash, data=data)
            if selector == _PANIC_SELECTOR:
                (code,) = abi_decode(["uint256"], body)
                return Panic("Panic", {"code": code}, function, tx_hash=tx_hash, data=data)
            entry = self._errors.get(selector)
            if entry is not None:
                values = abi_decode(entry["_types"], body)
                named: dict[str, Any] = {}
                for item, value in zip(entry["inputs"], values, strict=True):
                    enum = _enum_of(item)
                    if enum is not None:
                        value = enum(value)
                    elif item["type"] == "address":
                        value = to_checksum_address(value)
                    named[item["name"]] = value
                cls = ERROR_CLASSES.get(entry["name"], ContractRevert)
                return cls(entry["name"], named, function, tx_hash=tx_hash, data=data)
        except Exception:  # noqa: BLE001 - malformed revert data: report it raw below
            pass
        return UnknownRevert("unknown", {}, function, tx_hash=tx_hash, data=data)


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by a web3 / eth-tester exception, or None if it carries none.

    web3 (a node): ContractCustomError / ContractLogicError / ContractPanicError with `.data` as hex.
    eth-tester: web3's provider re-raises TransactionFailed("execution reverted: <reason>") from the
    original TransactionFailed whose first argument is the raw bytes.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        data = getattr(current, "data", None)
        if isinstance(data, str) and data.startswith("0x"):
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                pass
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
        if type(current).__name__ == "TransactionFailed" and current.args:
            first = current.args[0]
            if isinstance(first, BaseException) and first.args:
                first = first.args[0]
            if isinstance(first, (bytes, bytearray)):
                return bytes(first)
            if isinstance(first, str) and first.startswith("execution reverted: b"):
                try:
                    value = ast.literal_eval(first[len("execution reverted: ") :])
                    if isinstance(value, bytes):
                        return value
                except (ValueError, SyntaxError):
                    pass
        current = current.__cause__ or current.__context__
    return None


def _is_revert(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(names & {"TransactionFailed", "ContractLogicError", "ContractCustomError", "ContractPanicError"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


# ----------------------------------------------------------------------------- connecting


def _is_connection_error(exc: BaseException) -> bool:
    import requests

    return any(isinstance(e, (requests.ConnectionError, requests.Timeout, ConnectionError)) for e in _chain(exc))


def _endpoint(w3: Web3) -> str:
    return str(getattr(w3.provider, "endpoint_uri", None) or "the embedded chain")


@contextmanager
def rpc_errors(w3: Web3) -> Iterator[None]:
    """Turn a refused / timed-out connection to the node into one ChainUnreachable line."""
    try:
        yield
    except FedmarketError:
        raise
    except Exception as exc:
        if _is_connection_error(exc):
            raise ChainUnreachable(f"cannot reach the Ethereum node at {_endpoint(w3)}: {_reason(exc)}") from exc
        raise


def _reason(exc: BaseException) -> str:
    text = " ".join(str(e) for e in _chain(exc))
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (is it running? `fedmarket chain start` starts one)"
    if "timed out" in text.lower():
        return "timed out"
    return type(exc).__name__


def connect(rpc: str | None = None, *, timeout: float = 30.0) -> Web3:
    """A Web3 for `rpc`: None or "embedded" -> a fresh embedded chain; http(s)://... -> that node.

    The node is asked for its chain id once, so an unreachable URL fails here with one clear line.
    """
    if rpc is None or rpc == EMBEDDED:
        from fedmarket.chain.embedded import new_embedded_web3

        return new_embedded_web3()
    if not rpc.startswith(("http://", "https://")):
        raise FedmarketError(f"unsupported RPC URL {rpc!r}: give http(s)://host:port (e.g. {DEFAULT_RPC_URL}) or 'embedded'")
    from web3 import HTTPProvider, Web3

    w3 = Web3(HTTPProvider(rpc, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))
    try:
        with rpc_errors(w3):
            w3.eth.chain_id
    except ChainUnreachable:
        raise
    except Exception as exc:
        raise ChainUnreachable(f"the node at {rpc} does not answer eth_chainId: {type(exc).__name__}: {exc}") from exc
    return w3


def load_market_abi() -> list[dict[str, Any]]:
    """The Marketplace ABI from the (cached) compile of contracts/."""
    from fedmarket.chain.compile import load_artifact

    return load_artifact("Marketplace").abi


def open_market(
    w3: Web3,
    address: str | None = None,
    account: LocalAccount | None = None,
    *,
    abi: list[dict[str, Any]] | None = None,
    address_book: Path | None = None,
) -> MarketClient:
    """The Marketplace at `address`, or at the address recorded in the chain's address book
    (deploy/deployments/<chainId>.json, or <address_book>/<chainId>.json). Raises
    MarketNotDeployed when nothing is recorded or no code is at the address."""
    if address is None:
        from fedmarket.chain.deploy import deployed_address

        with rpc_errors(w3):
            chain_id = int(w3.eth.chain_id)
        try:
            address = deployed_address(chain_id, directory=address_book)
        except MarketNotDeployed:
            raise
        except FedmarketError as exc:
            raise MarketNotDeployed(str(exc)) from exc
    return MarketClient(w3, address, account, abi=abi)


# ----------------------------------------------------------------------------- the client

_NONCE_LOCKS: dict[str, threading.Lock] = {}
_NONCE_LOCKS_GUARD = threading.Lock()


def _nonce_lock(address: str) -> threading.Lock:
    with _NONCE_LOCKS_GUARD:
        return _NONCE_LOCKS.setdefault(address, threading.Lock())


class MarketClient:
    """The Marketplace at `address`, seen by `w3`, sending as `account` (a LocalAccount).

    Views need no account. `with_account(other)` gives a client for another sender sharing the
    same contract object, ABI and decoders (cheap: use one per participant).
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        account: LocalAccount | None = None,
        *,
        abi: list[dict[str, Any]] | None = None,
        estimate_gas: bool | None = None,
        gas_limits: dict[str, int] | None = None,
        poll_latency: float = RECEIPT_POLL_S,
        timeout: float = RECEIPT_TIMEOUT_S,
        check_code: bool = True,
    ) -> None:
        from fedmarket.chain.deploy import MARKETPLACE_GAS_LIMITS
        from fedmarket.chain.embedded import is_embedded

        self.w3 = w3
        self.address = to_checksum_address(address)
        self.account = account
        self.abi = abi if abi is not None else load_market_abi()
        self.contract: Contract = w3.eth.contract(address=self.address, abi=self.abi)
        self.embedded = is_embedded(w3)
        self.estimate_gas = (not self.embedded) if estimate_gas is None else estimate_gas
        self.gas_limits = dict(MARKETPLACE_GAS_LIMITS if gas_limits is None else gas_limits)
        self.poll_latency = poll_latency
        self.timeout = timeout
        self.errors = ErrorDecoder(self.abi)
        self.events = EventDecoder(w3, self.abi)
        self._chain_id: int | None = None
        if check_code:
            with rpc_errors(w3):
                code = w3.eth.get_code(self.address)
            if len(code) == 0:
                raise MarketNotDeployed(
                    f"no contract at {self.address} on chain {self.chain_id} ({_endpoint(w3)}): "
                    "deploy one with `fedmarket deploy` (a stale address book after a chain restart?)"
                )

    def with_account(self, account: LocalAccount) -> MarketClient:
        """The same market, sending as `account`."""
        other = object.__new__(MarketClient)
        other.__dict__.update(self.__dict__)
        other.account = account
        return other

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            with rpc_errors(self.w3):
                self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    @property
    def sender(self) -> str:
        if self.account is None:
            raise FedmarketError("this market client has no account: open it with one (open_market(w3, account=...)) to send transactions")
        return self.account.address

    # ---------------------------------------------------------------- task set-up

    def new_model(self, params: ModelParams, escrow_wei: int) -> TxResult:
        """newModel: post a task escrowing `escrow_wei`; `.model_id` of the result is the new task's id."""
        return self._transact("newModel", [params.to_abi()], value=escrow_wei)

    def pay_for_model(self, model_id: int, amount_wei: int) -> TxResult:
        """payForModel: the owner tops the escrow up (while Open)."""
        return self._transact("payForModel", [model_id], value=amount_wei)

    def buy_license(self, model_id: int, fee_wei: int | None = None) -> TxResult:
        """buyLicense: pay the licence fee (read from the task when not given)."""
        fee = self.get_model(model_id).params.license_fee if fee_wei is None else fee_wei
        return self._transact("buyLicense", [model_id], value=fee)

    def join_as_trainer(self, model_id: int, stake_wei: int | None = None) -> TxResult:
        """joinAsTrainer: stake exactly the task's trainerStake (read from the task when not given)."""
        stake = self.get_model(model_id).params.trainer_stake if stake_wei is None else stake_wei
        return self._transact("joinAsTrainer", [model_id], value=stake)

    def join_as_validator(self, model_id: int, stake_wei: int | None = None) -> TxResult:
        """joinAsValidator: stake exactly the task's validatorStake (read from the task when not given)."""
        stake = self.get_model(model_id).params.validator_stake if stake_wei is None else stake_wei
        return self._transact("joinAsValidator", [model_id], value=stake)

    def join_as_aggregator(self, model_id: int, stake_wei: int | None = None) -> TxResult:
        """joinAsAggregator: stake exactly the task's aggregatorStake (read from the task when not given)."""
        stake = self.get_model(model_id).params.aggregator_stake if stake_wei is None else stake_wei
        return self._transact("joinAsAggregator", [model_id], value=stake)

    def start_training(self, model_id: int) -> TxResult:
        """startTraining: fix the reward and open round 1 (owner or aggregator)."""
        return self._transact("startTraining", [model_id])

    def cancel_model(self, model_id: int) -> TxResult:
        """cancelModel: the owner cancels before training; everything is credited back."""
        return self._transact("cancelModel", [model_id])

    # ---------------------------------------------------------------- rounds

    def commit_update(self, model_id: int, round: int, commitment: bytes) -> TxResult:
        """commitUpdate: commit to an update (see `commitment()` / `commitment_of`)."""
        return self._transact("commitUpdate", [model_id, round, bytes(commitment)])

    def reveal_update(self, model_id: int, round: int, update_digest: bytes | str, num_samples: int, salt: bytes) -> TxResult:
        """revealUpdate: reveal the committed update (digest or CIDv0, sample count, salt)."""
        return self._transact("revealUpdate", [model_id, round, as_digest(update_digest), num_samples, bytes(salt)])

    def submit_scores(self, model_id: int, round: int, scores: Sequence[int]) -> TxResult:
        """submitScores: one utility (micro-units) per revealed update, in reveal order."""
        return self._transact("submitScores", [model_id, round, [int(s) for s in scores]])

    def publish_global_model(self, model_id: int, round: int, model_digest: bytes | str, metric: int) -> TxResult:
        """publishGlobalModel: the aggregator proposes the round's global model (digest or CIDv0) and its metric."""
        return self._transact("publishGlobalModel", [model_id, round, as_digest(model_digest), int(metric)])

    def confirm_global_model(self, model_id: int, round: int, ok: bool) -> TxResult:
        """confirmGlobalModel: a committee member accepts (ok) or rejects the proposal."""
        return self._transact("confirmGlobalModel", [model_id, round, bool(ok)])

    def close_round(self, model_id: int) -> TxResult:
        """closeRound: settle the current round once it is Due (anyone)."""
        return self._transact("closeRound", [model_id])

    # ---------------------------------------------------------------- the end

    def finalize_contract(self, model_id: int) -> TxResult:
        """finalizeContract: end the task (anyone after the last round; the owner earlier)."""
        return self._transact("finalizeContract", [model_id])

    def generate_training_payments(self, model_id: int) -> TxResult:
        """generateTrainingPayments: credit every payee of a finalized task (anyone, once)."""
        return self._transact("generateTrainingPayments", [model_id])

    def withdraw(self) -> TxResult:
        """withdraw: pull the sender's whole credited balance."""
        return self._transact("withdraw", [])

    # ---------------------------------------------------------------- views

    def model_count(self) -> int:
        return int(self._call("modelCount"))

    def get_model(self, model_id: int) -> ModelInfo:
        params, state = self._call("getModel", model_id)
        return ModelInfo(ModelParams.from_abi(params), ModelState.from_abi(state))

    def get_round(self, model_id: int, round: int) -> RoundView:
        return RoundView.from_abi(self._call("getRound", model_id, round))

    def revealed_updates(self, model_id: int, round: int) -> list[RevealedUpdate]:
        trainers, digests, samples = self._call("revealedUpdates", model_id, round)
        return [RevealedUpdate(to_checksum_address(t), bytes(d), int(n)) for t, d, n in zip(trainers, digests, samples, strict=True)]

    def utilities(self, model_id: int, round: int) -> list[int]:
        return [int(u) for u in self._call("utilities", model_id, round)]

    def scores_of(self, model_id: int, round: int, validator: str) -> Scores:
        submitted, scores = self._call("scoresOf", model_id, round, to_checksum_address(validator))
        return Scores(bool(submitted), [int(s) for s in scores])

    def has_confirmed(self, model_id: int, round: int, validator: str) -> Confirmation:
        voted, ok = self._call("hasConfirmed", model_id, round, to_checksum_address(validator))
        return Confirmation(bool(voted), bool(ok))

    def commitment_of(self, model_id: int, round: int, update_digest: bytes | str, num_samples: int, salt: bytes, trainer: str) -> bytes:
        """The contract's commitmentOf (equal to the local `commitment()`)."""
        return bytes(self._call("commitmentOf", model_id, round, as_digest(update_digest), num_samples, bytes(salt), to_checksum_address(trainer)))

    def has_committed(self, model_id: int, round: int, trainer: str) -> bool:
        return bool(self._call("hasCommitted", model_id, round, to_checksum_address(trainer)))

    def has_revealed(self, model_id: int, round: int, trainer: str) -> bool:
        return bool(self._call("hasRevealed", model_id, round, to_checksum_address(trainer)))

    def trainers(self, model_id: int) -> list[str]:
        return [to_checksum_address(a) for a in self._call("trainers", model_id)]

    def validators(self, model_id: int) -> list[str]:
        return [to_checksum_address(a) for a in self._call("validators", model_id)]

    def participant(self, model_id: int, account: str) -> ParticipantView:
        return ParticipantView.from_abi(self._call("participant", model_id, to_checksum_address(account)))

    def task_balance(self, model_id: int) -> int:
        return int(self._call("taskBalance", model_id))

    def credit(self, account: str) -> int:
        return int(self._call("credit", to_checksum_address(account)))

    def total_credit(self) -> int:
        return int(self._call("totalCredit"))

    # ---------------------------------------------------------------- plumbing

    def _call(self, function: str, *args: Any) -> Any:
        with rpc_errors(self.w3):
            try:
                return getattr(self.contract.functions, function)(*args).call()
            except FedmarketError:
                raise
            except Exception as exc:
                data = revert_data(exc)
                if data is not None or _is_revert(exc):
                    raise self.errors.decode(data or b"", function) from None
                raise

    def _transact(self, function: str, args: list[Any], *, value: int = 0) -> TxResult:
        account = self.account
        if account is None:
            self.sender  # raises the clear error
            raise AssertionError  # pragma: no cover
        value = int(value)
        data = self.contract.encode_abi(function, args)
        with rpc_errors(self.w3):
            tx: dict[str, Any] = {"from": account.address, "to": self.address, "value": value, "data": data, "chainId": self.chain_id}
            tx["gas"] = self._gas_limit(function, tx)
            tx.update(self._fees())
            self._check_funds(function, account.address, value, tx["gas"] * tx["maxFeePerGas"])
            tx_hash = self._sign_and_send(function, account, tx)
            try:
                receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout, poll_latency=self.poll_latency)
            except Exception as exc:
                if type(exc).__name__ == "TimeExhausted":
                    raise TransactionFailed(f"{function} transaction 0x{tx_hash.hex()} was not mined within {self.timeout:.0f} s") from exc
                raise
            if receipt["status"] != 1:
                raise self._failure(function, tx, receipt)
        return TxResult(
            function=function,
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            gas_used=int(receipt["gasUsed"]),
            block_number=int(receipt["blockNumber"]),
            events=self.events.decode_receipt(receipt, self.address),
        )

    def _gas_limit(self, function: str, tx: dict[str, Any]) -> int:
        table = self.gas_limits.get(function)
        if not self.estimate_gas and table is not None:
            return table
        try:
            estimate = int(self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
        except FedmarketError:
            raise
        except Exception as exc:
            data = revert_data(exc)
            if data is not None or _is_revert(exc):
                raise self.errors.decode(data or b"", function) from None
            if _is_connection_error(exc) or table is None:
                raise
            return table
        return int(estimate * GAS_MARGIN) + GAS_MARGIN_FLAT

    def _fees(self) -> dict[str, int]:
        block = self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas") or 0)
        if self.embedded:
            tip = DEFAULT_TIP_WEI
        else:
            try:
                tip = int(self.w3.eth.max_priority_fee)
            except Exception:  # noqa: BLE001 - nodes without eth_maxPriorityFeePerGas
                tip = DEFAULT_TIP_WEI
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    def _check_funds(self, function: str, address: str, value: int, max_gas_cost: int) -> None:
        balance = int(self.w3.eth.get_balance(address))
        if balance >= value + max_gas_cost:
            return
        if value > 0:
            need = f"{format_eth(value)} + up to {format_eth(max_gas_cost)} gas"
        else:
            need = f"up to {format_eth(max_gas_cost)} gas"
        raise InsufficientFunds(f"not enough funds: {address} holds {format_eth(balance)}; {function} needs {need}")

    def _sign_and_send(self, function: str, account: LocalAccount, tx: dict[str, Any]) -> bytes:
        # Different accounts never share nonces, so processes with their own accounts need no
        # coordination; one account used from several threads is serialised here, and a nonce
        # taken by another process in the meantime is retried with a fresh one.
        with _nonce_lock(account.address):
            for attempt in range(MAX_NONCE_RETRIES + 1):
                tx["nonce"] = int(self.w3.eth.get_transaction_count(account.address, "pending"))
                signed = account.sign_transaction(tx)
                try:
                    return bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction))
                except Exception as exc:
                    text = " ".join(str(e) for e in _chain(exc)).lower()
                    if "insufficient funds" in text:
                        balance = int(self.w3.eth.get_balance(account.address))
                        raise InsufficientFunds(f"not enough funds: {account.address} holds {format_eth(balance)}; the node refused {function}: {exc}") from exc
                    nonce_trouble = any(s in text for s in ("nonce too low", "already known", "replacement transaction underpriced", "nonce is too low"))
                    if nonce_trouble and attempt < MAX_NONCE_RETRIES:
                        time.sleep(0.05 * (attempt + 1))
                        continue
                    data = revert_data(exc)
                    if data is not None or _is_revert(exc):
                        raise self.errors.decode(data or b"", function) from None
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _failure(self, function: str, tx: dict[str, Any], receipt: Any) -> FedmarketError:
        """Why a mined transaction failed: replay it as a call on the state it left (a reverted
        transaction changes nothing but the sender's nonce and balance) to read the revert data."""
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        gas_used = int(receipt["gasUsed"])
        if gas_used >= tx["gas"]:
            return TransactionFailed(f"{function} ran out of gas (limit {tx['gas']}) in transaction {tx_hash}")
        call = {k: tx[k] for k in ("from", "to", "value", "data", "gas")}
        try:
            self.w3.eth.call(call, int(receipt["blockNumber"]))  # type: ignore[arg-type]
        except Exception as exc:
            data = revert_data(exc)
            if data is not None or _is_revert(exc):
                return self.errors.decode(data or b"", function, tx_hash=tx_hash)
            if _is_connection_error(exc):
                return ChainUnreachable(f"cannot reach the Ethereum node at {_endpoint(self.w3)}: {_reason(exc)}")
        return TransactionFailed(f"{function} transaction {tx_hash} reverted (gas used {gas_used} of {tx['gas']})")
