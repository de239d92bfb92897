"""The Marketplace contract's types as Python records, and the values that go into them.

Enums mirroring the Solidity ones (`Status`, `Phase`, `Role`, `SlashReason`; str() gives the
Solidity member name), the structs as frozen records decoded from ABI tuples (`ModelParams`,
`ModelState`, `RoundView`, `ParticipantView`, ...), `TxResult` (a mined transaction and its
events), and the helpers for values the contract takes: `as_digest` (bytes32 from raw bytes,
0x-hex or a CIDv0), `commitment` / `new_salt` (the commit-reveal hash, computed locally) and
`format_eth`. `fedmarket.chain.client` re-exports all of it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum
from typing import Any, NamedTuple

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from fedmarket.chain.events import Event
from fedmarket.errors import FedmarketError
from fedmarket.storage.cid import cid_to_digest, digest_to_cid

WEI_PER_ETH = 10**18

# ----------------------------------------------------------------------------- enums


class SolidityEnum(IntEnum):
    """An IntEnum mirroring a Solidity enum; str() gives the Solidity member name (e.g. "Reveal")."""

    def __str__(self) -> str:
        return self.name.capitalize()


class Status(SolidityEnum):
    NONE = 0
    OPEN = 1
    TRAINING = 2
    FINALIZED = 3
    SETTLED = 4
    CANCELLED = 5


class Phase(SolidityEnum):
    NONE = 0
    COMMIT = 1
    REVEAL = 2
    SCORE = 3
    PUBLISH = 4
    CONFIRM = 5
    DUE = 6


class Role(SolidityEnum):
    NONE = 0
    TRAINER = 1
    VALIDATOR = 2
    AGGREGATOR = 3


class SlashReason(SolidityEnum):
    LATE = 0
    POISON = 1
    REJECTED = 2


SOLIDITY_ENUMS: dict[str, type[SolidityEnum]] = {"Status": Status, "Phase": Phase, "Role": Role, "SlashReason": SlashReason}
"""Solidity enum name -> its Python mirror (how decoded revert arguments get their enum type)."""

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
