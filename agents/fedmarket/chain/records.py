"""The Marketplace contract's structs as Python records, and the values that go into them.

The structs as frozen records decoded from ABI tuples (`ModelParams`, `ModelState`, `RoundView`,
`ParticipantView`, ...), `TxResult` (a mined transaction and its events), and the commit-reveal
values computed locally (`commitment`, `new_salt`). The enums, `as_digest` and `format_eth` live in
`fedmarket.chain.abi` and are re-exported here; `fedmarket.chain.client` re-exports all of it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from fedmarket.chain import protocol
from fedmarket.chain.abi import SOLIDITY_ENUMS, Event, Phase, Role, SlashReason, SolidityEnum, Status, as_digest, format_eth
from fedmarket.chain.protocol import (
    DEFAULT_AGGREGATOR_SHARE_BPS,
    DEFAULT_AGREEMENT_TOLERANCE_BPS,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_POISON_THRESHOLD,
    DEFAULT_START_WINDOW_S,
    DEFAULT_TRAINER_SHARE_BPS,
    DEFAULT_VALIDATOR_SHARE_BPS,
    WEI_PER_ETH,
)
from fedmarket.errors import FedmarketError
from fedmarket.storage.cid import digest_to_cid

__all__ = [
    # re-exported from fedmarket.chain.abi / fedmarket.chain.protocol
    "SOLIDITY_ENUMS",
    "WEI_PER_ETH",
    "Event",
    "Phase",
    "Role",
    "SlashReason",
    "SolidityEnum",
    "Status",
    "as_digest",
    "format_eth",
    # this module
    "Confirmation",
    "ModelInfo",
    "ModelParams",
    "ModelState",
    "ParticipantView",
    "RevealedUpdate",
    "RoundView",
    "Scores",
    "TxResult",
    "commitment",
    "new_salt",
    "score_commitment",
    "vote_commitment",
]

DEFAULT_STAKE_WEI = WEI_PER_ETH // 100
"""0.01 ETH: ModelParams' default trainer, validator and aggregator stake."""

# ----------------------------------------------------------------------------- commit-reveal


def commitment(model_id: int, round: int, update_digest: bytes | str, num_samples: int, salt: bytes, trainer: str) -> bytes:
    """keccak256(abi.encode(modelId, round, updateDigest, numSamples, salt, trainer)), computed
    locally; equal to the contract's `commitmentOf` (docs/protocol.md, Commitment)."""
    encoded = abi_encode(
        ["uint256", "uint32", "bytes32", "uint64", "bytes32", "address"],
        [int(model_id), int(round), as_digest(update_digest), int(num_samples), _salt(salt), to_checksum_address(trainer)],
    )
    return keccak(encoded)


def score_commitment(model_id: int, round: int, validator: str, scores: Sequence[int], salt: bytes) -> bytes:
    """keccak256(abi.encode(modelId, round, validator, scores, salt)), computed locally: what
    commitScores takes and revealScores opens (docs/protocol.md). `scores` as they will be
    revealed (int64 micro-units, one per revealed update in reveal order; not yet clamped).
    chain.protocol's encoding, with the salt's length and the address checked first."""
    return protocol.score_commitment(int(model_id), int(round), to_checksum_address(validator), [int(s) for s in scores], _salt(salt))


def vote_commitment(model_id: int, round: int, validator: str, ok: bool, salt: bytes) -> bytes:
    """keccak256(abi.encode(modelId, round, validator, ok, salt)), computed locally: what
    commitVote takes and revealVote opens (chain.protocol's encoding, the salt checked first)."""
    return protocol.vote_commitment(int(model_id), int(round), to_checksum_address(validator), bool(ok), _salt(salt))


def _salt(salt: bytes) -> bytes:
    if len(salt) != 32:
        raise FedmarketError(f"a salt is 32 bytes, not {len(salt)}")
    return bytes(salt)


def new_salt() -> bytes:
    """32 random bytes for a commitment (keep them until the reveal)."""
    return os.urandom(32)


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True, kw_only=True)
class ModelParams:
    """What a buyer sets when posting a task (the Solidity struct ModelParams, field for field).

        Only the two digests and the aggregator have no default; the defaults are a small healthy task:
        3 rounds, 2..20 trainers, a committee of 3 out of up to 9 validators, 10-minute windows (a phase
        ends as soon as everyone acted), no licence fee, 0.01 ETH stakes, 10 % late / 50 % bad slash, the
        7000/2000/1000 bps trainer/validator/aggregator split, poison below a utility of -0.1, and a
        week to start (past it anyone may cancel the task), at most 10^9 samples claimed per update, and
    an agreement tolerance of 10000 bps (a validator is paid by how close its scores are to the
    round's medians; at a mean distance of the tolerance or more it earns nothing and is slashed).
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
    trainer_stake: int = DEFAULT_STAKE_WEI
    validator_stake: int = DEFAULT_STAKE_WEI
    aggregator_stake: int = DEFAULT_STAKE_WEI
    late_slash_bps: int = 1_000
    bad_slash_bps: int = 5_000
    trainer_share_bps: int = DEFAULT_TRAINER_SHARE_BPS
    validator_share_bps: int = DEFAULT_VALIDATOR_SHARE_BPS
    aggregator_share_bps: int = DEFAULT_AGGREGATOR_SHARE_BPS
    poison_threshold: int = DEFAULT_POISON_THRESHOLD
    start_window: int = DEFAULT_START_WINDOW_S
    max_samples: int = DEFAULT_MAX_SAMPLES
    agreement_tolerance_bps: int = DEFAULT_AGREEMENT_TOLERANCE_BPS

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
    license_held: int = 0  # licence fees the task holds until startTraining
    start_deadline: int = 0  # past it anyone may cancel the task (if it has not started)
    end_requested: bool = False  # the owner's early finalize waits for the open round to settle

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
    """One round as seen now (phase and deadline derived from the latest block's time). The
    proposal (`proposed_digest`, `proposed_metric`) is kept on chain for the current and the
    previous round only: an older round reports `proposed` with digest and metric 0 (its
    GlobalModelProposed event holds them)."""

    round: int
    phase: Phase
    phase_deadline: int
    committee: tuple[str, ...]
    commits: int
    reveals: int
    score_commits: int  # members whose score commitment is in
    scores_submitted: int  # members that revealed their scores
    vote_commits: int  # members whose vote commitment is in
    proposed: bool
    proposed_digest: bytes
    proposed_metric: int
    confirmations: int  # ok + reject votes revealed
    rejections: int
    closed: bool

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> RoundView:
        v = list(values)
        v[1] = Phase(v[1])
        v[3] = tuple(to_checksum_address(a) for a in v[3])
        return cls(*v)


@dataclass(frozen=True)
class AgentView:
    """`agent_view`: what one step of an agent reads, in one call (the Solidity struct AgentView):
    the task's state, its current round as seen now, and the account's role and duties done in it."""

    status: Status
    current_round: int
    rounds_closed: int
    trainer_count: int
    validator_count: int
    global_model_digest: bytes
    phase: Phase
    phase_deadline: int
    closed: bool
    proposed: bool
    proposed_digest: bytes
    proposed_metric: int
    role: Role
    licensed: bool
    on_committee: bool
    committed: bool
    revealed: bool
    score_committed: bool  # a committee member's score commitment is in (from ScoreCommit on)
    scored: bool  # ... and its scores are revealed
    vote_committed: bool  # its vote commitment is in
    voted: bool  # ... and its vote is revealed

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> AgentView:
        v = list(values)
        v[0], v[6], v[12] = Status(v[0]), Phase(v[6]), Role(v[12])
        v[5], v[10] = bytes(v[5]), bytes(v[10])
        return cls(*v)

    @property
    def global_model_cid(self) -> str:
        return digest_to_cid(self.global_model_digest)


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
