"""A Python reference model of the whole fedmarket Marketplace, to the wei.

This is an executable copy of docs/protocol.md (and the interface contracts/IMarketplace.sol):
tasks, escrow, licences, stakes, phases derived lazily from stored state and the block timestamp,
committee selection (drawn among the validators, or elected among the trainers: maxValidators 0),
commit / reveal, median utilities, per-round settlement, slashes and their redistribution,
finalize, settlement, cancel, withdraw and credits. The property tests
(tests/contracts/test_invariants.py) drive the contract and this model with the same random calls
and compare them after every step.

Every public method takes the caller, the arguments, the value and `now` (the timestamp of the
block the transaction lands in). When the contract must revert, the method raises `ModelRevert`
with every custom error that truthfully describes a failed check (the protocol does not fix the
order of checks, so any of them is accepted) and leaves the model unchanged. Otherwise it applies
the call and returns its result.

The model knows nothing about the contract: it is written from the spec alone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import committee_model as CM
from eth_abi import encode
from eth_utils import keccak

# ------------------------------------------------------------------------------------ constants

MAX_TRAINERS = 64
MAX_VALIDATORS = 32
MAX_COMMITTEE = 9
MAX_ELECTED_TRAINERS = 32
"""Most trainers of an elected-committee task (maxValidators 0): its committee map has 32 bits."""
MAX_ROUNDS = 1000
MIN_WINDOW = 1
MAX_WINDOW = 30 * 24 * 3600
BPS = 10_000
MAX_LATE_SLASH_BPS = 5_000
MAX_STAKE = 2**128 - 1
"""The contract refuses stakes above type(uint128).max (StakeTooLarge)."""
MAX_HELD = 2**128 - 1
"""A task never holds more: a deposit that would take escrow + stakes + licence fees past it reverts AmountTooLarge."""
BURN = "0x0000000000000000000000000000000000000000"
"""The trainer carry left at settlement is credited here, where nobody can withdraw it."""
MAX_SCORE = 10**9
"""Scores are clamped to -MAX_SCORE..MAX_SCORE micro-units when stored."""
MAX_TOLERANCE_BPS = 20_000
"""agreementToleranceBps is 1..MAX_TOLERANCE_BPS (AgreementToleranceOutOfRange)."""
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

DEADLINE_INCLUSIVE = True
"""A phase with deadline D still accepts actions at `block.timestamp == D` and is over from D + 1.

The first version of docs/protocol.md left the deadline second open ("a phase that reaches its
deadline ends at the deadline"); the contract chose `<= D` and the page now says so. Flip this to
check that the property tests notice a disagreement (they do, within a few dozen sequences).
"""

ZERO_TOP_UP_ALLOWED = False
"""Whether `payForModel` with msg.value == 0 succeeds (a no-op) or reverts ZeroEscrow.

The interface only says "top the escrow up"; the model follows the contract's choice.
"""


class Status(IntEnum):
    NONE = 0
    OPEN = 1
    TRAINING = 2
    FINALIZED = 3
    SETTLED = 4
    CANCELLED = 5


class Phase(IntEnum):
    NONE = 0
    COMMIT = 1
    REVEAL = 2
    SCORE_COMMIT = 3
    SCORE_REVEAL = 4
    PUBLISH = 5
    VOTE_COMMIT = 6
    VOTE_REVEAL = 7
    DUE = 8


class Role(IntEnum):
    NONE = 0
    TRAINER = 1
    VALIDATOR = 2
    AGGREGATOR = 3


class SlashReason(IntEnum):
    LATE = 0
    POISON = 1
    REJECTED = 2
    DISAGREED = 3


# ------------------------------------------------------------------------------------ errors


class _Any:
    """Matches any value of an error argument (the spec leaves it open)."""

    def __repr__(self) -> str:
        return "ANY"

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


ANY: Any = _Any()


@dataclass(frozen=True)
class OneOf:
    """Matches any of several values of an error argument."""

    values: tuple[Any, ...]

    def __eq__(self, other: object) -> bool:
        return any(_arg_equal(v, other) for v in self.values)

    def __hash__(self) -> int:
        return 0


def _arg_equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, (_Any, OneOf)):
        return expected == actual
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.lower() == actual.lower()
    return bool(expected == actual)


@dataclass(frozen=True)
class Err:
    """An expected custom error: its name and arguments (ANY / OneOf where the spec is open)."""

    name: str
    args: tuple[Any, ...] | None = None  # None: any arguments

    def matches(self, name: str, args: tuple[Any, ...]) -> bool:
        if name != self.name:
            return False
        if self.args is None:
            return True
        if len(args) != len(self.args):
            return False
        return all(_arg_equal(e, a) for e, a in zip(self.args, args))


class ModelRevert(Exception):
    """The call must revert with one of `errors` (any one truthfully describes a failed check)."""

    def __init__(self, errors: list[Err]) -> None:
        super().__init__(", ".join(f"{e.name}{e.args if e.args is not None else '(...)'}" for e in errors))
        self.errors = errors


def _raise_if(errors: list[Err]) -> None:
    if errors:
        raise ModelRevert(errors)


# ------------------------------------------------------------------------------------ encodings


def commitment_of(model_id: int, round_: int, update_digest: bytes, num_samples: int, salt: bytes, trainer: str) -> bytes:
    """keccak256(abi.encode(modelId, round, updateDigest, numSamples, salt, trainer))."""
    return keccak(
        encode(
            ["uint256", "uint32", "bytes32", "uint64", "bytes32", "address"],
            [model_id, round_, update_digest, num_samples, salt, trainer],
        )
    )


def score_commitment_of(model_id: int, round_: int, member: str, scores: list[int], salt: bytes) -> bytes:
    """keccak256(abi.encode(modelId, round, member, int64[] scores, salt)) (docs/protocol.md)."""
    return keccak(encode(["uint256", "uint32", "address", "int64[]", "bytes32"], [model_id, round_, member, scores, salt]))


def vote_commitment_of(model_id: int, round_: int, member: str, ok: bool, salt: bytes) -> bytes:
    """keccak256(abi.encode(modelId, round, member, bool ok, salt)) (docs/protocol.md)."""
    return keccak(encode(["uint256", "uint32", "address", "bool", "bytes32"], [model_id, round_, member, ok, salt]))


def median(scores: list[int]) -> int:
    """The lower median (always a submitted score): s[(k - 1) // 2] of the sorted scores; [] -> 0."""
    if not scores:
        return 0
    return sorted(scores)[(len(scores) - 1) // 2]


def clamp_score(score: int) -> int:
    return max(-MAX_SCORE, min(MAX_SCORE, score))


def mul_div(a: int, b: int, c: int) -> int:
    return a * b // c


# ------------------------------------------------------------------------------------ state


@dataclass
class Params:
    """ModelParams, in the ABI's field order."""

    spec_digest: bytes = b"\x11" * 32
    initial_model_digest: bytes = b"\x22" * 32
    aggregator: str = "0x0000000000000000000000000000000000000000"
    rounds: int = 2
    min_trainers: int = 1
    max_trainers: int = 4
    committee_size: int = 1
    max_validators: int = 3
    commit_window: int = 10
    reveal_window: int = 10
    score_window: int = 10
    publish_window: int = 10
    confirm_window: int = 10
    license_fee: int = 0
    trainer_stake: int = 1000
    validator_stake: int = 1000
    aggregator_stake: int = 1000
    late_slash_bps: int = 1000
    bad_slash_bps: int = 5000
    trainer_share_bps: int = 7000
    validator_share_bps: int = 2000
    aggregator_share_bps: int = 1000
    poison_threshold: int = 0
    start_window: int = 1000
    max_samples: int = 2**64 - 1
    agreement_tolerance_bps: int = 10_000

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.spec_digest,
            self.initial_model_digest,
            self.aggregator,
            self.rounds,
            self.min_trainers,
            self.max_trainers,
            self.committee_size,
            self.max_validators,
            self.commit_window,
            self.reveal_window,
            self.score_window,
            self.publish_window,
            self.confirm_window,
            self.license_fee,
            self.trainer_stake,
            self.validator_stake,
            self.aggregator_stake,
            self.late_slash_bps,
            self.bad_slash_bps,
            self.trainer_share_bps,
            self.validator_share_bps,
            self.aggregator_share_bps,
            self.poison_threshold,
            self.start_window,
            self.max_samples,
            self.agreement_tolerance_bps,
        )

    def param_errors(self, owner: str) -> list[Err]:
        """The errors of the parameter rules this violates when `owner` posts it (empty: valid).

        docs/protocol.md lists the rules; the contract reverts with the first that fails in its
        order, so each violated rule is one acceptable error (a window or stake per field).
        """
        errors: list[Err] = []
        if self.spec_digest == bytes(32):
            errors.append(Err("ZeroSpecDigest", ()))
        if self.initial_model_digest == bytes(32):
            errors.append(Err("ZeroInitialModelDigest", ()))
        if int(self.aggregator, 16) == 0:
            errors.append(Err("ZeroAggregator", ()))
        if self.aggregator.lower() == owner.lower():
            errors.append(Err("AggregatorIsOwner", (self.aggregator,)))
        if not 1 <= self.rounds <= MAX_ROUNDS:
            errors.append(Err("RoundsOutOfRange", (self.rounds, MAX_ROUNDS)))
        if not 1 <= self.min_trainers <= self.max_trainers <= MAX_TRAINERS:
            errors.append(Err("TrainerBoundsOutOfRange", (self.min_trainers, self.max_trainers, MAX_TRAINERS)))
        if not 1 <= self.committee_size <= MAX_COMMITTEE:
            errors.append(Err("CommitteeSizeOutOfRange", (self.committee_size, MAX_COMMITTEE)))
        if self.max_validators == 0:
            # an elected committee (docs/protocol.md, "Elected committees"): one trainer besides the
            # committee every round, and at most 32 trainers (the committee map's bits)
            if self.min_trainers < 2 * self.committee_size or self.max_trainers > MAX_ELECTED_TRAINERS:
                errors.append(Err("ElectedTrainersOutOfRange", (self.min_trainers, self.max_trainers, self.committee_size, MAX_ELECTED_TRAINERS)))
        elif not self.committee_size <= self.max_validators <= MAX_VALIDATORS:
            errors.append(Err("MaxValidatorsOutOfRange", (self.max_validators, self.committee_size, MAX_VALIDATORS)))
        windows = (self.commit_window, self.reveal_window, self.score_window, self.publish_window, self.confirm_window)
        for phase, window in zip((Phase.COMMIT, Phase.REVEAL, Phase.SCORE_COMMIT, Phase.PUBLISH, Phase.VOTE_COMMIT), windows):
            if not MIN_WINDOW <= window <= MAX_WINDOW:
                errors.append(Err("WindowOutOfRange", (int(phase), window, MIN_WINDOW, MAX_WINDOW)))
        stakes = (self.trainer_stake, self.validator_stake, self.aggregator_stake)
        for role, stake in zip((Role.TRAINER, Role.VALIDATOR, Role.AGGREGATOR), stakes):
            if stake > MAX_STAKE:
                errors.append(Err("StakeTooLarge", (int(role), stake, MAX_STAKE)))
        if self.late_slash_bps > BPS or self.bad_slash_bps > BPS:
            errors.append(Err("SlashBpsTooLarge", (self.late_slash_bps, self.bad_slash_bps, BPS)))
        shares = (self.trainer_share_bps, self.validator_share_bps, self.aggregator_share_bps)
        if sum(shares) != BPS:
            errors.append(Err("SharesDoNotSum", (*shares, BPS)))
        if not MIN_WINDOW <= self.start_window <= MAX_WINDOW:  # phase None names the start window
            errors.append(Err("WindowOutOfRange", (int(Phase.NONE), self.start_window, MIN_WINDOW, MAX_WINDOW)))
        if self.max_samples == 0:
            errors.append(Err("ZeroMaxSamples", ()))
        if self.late_slash_bps > MAX_LATE_SLASH_BPS:
            errors.append(Err("LateSlashTooLarge", (self.late_slash_bps, MAX_LATE_SLASH_BPS)))
        if self.poison_threshold > 0:
            errors.append(Err("PoisonThresholdPositive", (self.poison_threshold,)))
        if not 1 <= self.agreement_tolerance_bps <= MAX_TOLERANCE_BPS:
            errors.append(Err("AgreementToleranceOutOfRange", (self.agreement_tolerance_bps, 1, MAX_TOLERANCE_BPS)))
        return errors


@dataclass
class ParticipantState:
    role: Role = Role.NONE
    stake: int = 0  # original stake
    stake_remaining: int = 0
    earned: int = 0
    slashed: int = 0
    licensed: bool = False


@dataclass
class Reveal:
    trainer: str
    update_digest: bytes
    num_samples: int
    seat: int = 0  # the trainer's seat when it revealed
    mix: int = 0  # the 40 bits it mixed into the next committee's seed (committee_model.reveal_mix)


@dataclass
class RoundState:
    number: int
    committee: list[str]  # in seat order: position j is the j-th
    committee_mask: int  # bit i: validator seat i (an elected task: trainer seat i) sits on the committee
    stage: Phase  # stored phase (the derived phase may be later: see Market.phase_at)
    deadline: int  # end of `stage` (0 when Due)
    commitments: dict[str, bytes] = field(default_factory=dict)
    reveals: list[Reveal] = field(default_factory=list)
    score_commits: dict[str, bytes] = field(default_factory=dict)  # committee member -> score commitment
    scores: dict[str, list[int]] = field(default_factory=dict)  # committee member -> revealed (clamped) scores
    proposed: bool = False
    proposed_digest: bytes = b"\x00" * 32
    proposed_metric: int = 0
    vote_commits: dict[str, bytes] = field(default_factory=dict)  # committee member -> vote commitment
    votes: dict[str, bool] = field(default_factory=dict)  # committee member -> revealed vote
    closed: bool = False
    # settlement record (set when the round closes)
    budget: int = 0
    returned_to_buyer: int = 0
    accepted: bool = False
    global_digest_after: bytes = b"\x00" * 32
    slashes: list[tuple[str, SlashReason, int]] = field(default_factory=list)  # (account, reason, amount), in order
    rewards: dict[tuple[str, Role], int] = field(default_factory=dict)  # (account, role it was paid in) -> amount

    def revealed_by(self, trainer: str) -> bool:
        return any(r.trainer == trainer for r in self.reveals)

    def scored_utilities(self) -> list[int]:
        """Lower median of the (clamped) revealed committee scores per revealed update, in reveal
        order; all 0 without a quorum (more than half of the committee revealed scores)."""
        if len(self.scores) * 2 <= len(self.committee):
            return [0] * len(self.reveals)
        return [median([s[i] for s in self.scores.values()]) for i in range(len(self.reveals))]

    def refused(self) -> list[bool]:
        """Per reveal: its digest equals an earlier reveal's (a duplicate, refused at settlement)."""
        seen: set[bytes] = set()
        out: list[bool] = []
        for r in self.reveals:
            out.append(r.update_digest in seen)
            seen.add(r.update_digest)
        return out

    def utilities(self) -> list[int]:
        """The utilities that pay and slash (the `utilities` view): as scored, but 0 for a
        refused duplicate."""
        return [0 if dup else x for x, dup in zip(self.scored_utilities(), self.refused())]

    @property
    def rejections(self) -> int:
        return sum(1 for ok in self.votes.values() if not ok)

    @property
    def approvals(self) -> int:
        return sum(1 for ok in self.votes.values() if ok)


@dataclass
class Task:
    model_id: int
    owner: str
    params: Params
    status: Status = Status.OPEN
    current_round: int = 0
    rounds_closed: int = 0
    reward: int = 0
    escrow: int = 0
    stakes_held: int = 0
    accrued: int = 0
    license_income: int = 0  # licence fees credited to the owner (at start)
    license_held: int = 0  # licence fees the task holds (before start; refundable)
    start_deadline: int = 0
    end_requested: bool = False
    elected: bool = False  # set at the start: the committee is elected from the trainers (maxValidators 0)
    global_digest: bytes = b"\x00" * 32
    trainers: list[str] = field(default_factory=list)
    validators: list[str] = field(default_factory=list)
    aggregator_joined: bool = False
    participants: dict[str, ParticipantState] = field(default_factory=dict)
    rounds: dict[int, RoundState] = field(default_factory=dict)
    buyer_accrued: int = 0  # part of `accrued` that returns to the buyer
    trainer_carry: int = 0  # part of `accrued`: slashes and trainer pools no trainer earned yet
    owner_deposited: int = 0  # the escrow the owner paid in (newModel, payForModel)
    # ledger of this task's money: what came in and what was credited out
    deposited: int = 0
    credited_out: int = 0
    credits: dict[str, int] = field(default_factory=dict)  # payee -> credited by this task

    @property
    def balance(self) -> int:
        return self.escrow + self.stakes_held + self.accrued + self.license_held

    def participant(self, account: str) -> ParticipantState:
        return self.participants.get(account.lower(), ParticipantState())

    def role_of(self, account: str) -> Role:
        return self.participant(account).role

    def round(self) -> RoundState | None:
        return self.rounds.get(self.current_round)

    def sitting(self, rnd: RoundState | None) -> list[str]:
        """The trainers that sit on `rnd`'s committee: an elected task's members (none otherwise)."""
        return rnd.committee if rnd is not None and self.elected else []

    @property
    def member_seats(self) -> list[str]:
        """The seats a committee map indexes: the validators', or an elected task's trainers'."""
        return self.trainers if self.elected else self.validators

    def all_rounds_closed(self) -> bool:
        return self.rounds_closed == self.params.rounds


# ------------------------------------------------------------------------------------ the market


class Market:
    """The whole contract: every task, every credit."""

    def __init__(self) -> None:
        self.tasks: dict[int, Task] = {}
        self.credits: dict[str, int] = {}
        self.withdrawn: dict[str, int] = {}
        self.total_withdrawn = 0
        self.prevrandao = 0
        """block.prevrandao of the block the next call lands in (the driver sets it per call)."""

    def copy(self) -> Market:
        return copy.deepcopy(self)

    # -------------------------------------------------------------- derived quantities

    @property
    def total_credit(self) -> int:
        return sum(self.credits.values())

    @property
    def contract_balance(self) -> int:
        return sum(t.balance for t in self.tasks.values()) + self.total_credit

    def credit_of(self, account: str) -> int:
        return self.credits.get(account.lower(), 0)

    def _credit(self, task: Task, account: str, amount: int) -> None:
        key = account.lower()
        self.credits[key] = self.credits.get(key, 0) + amount
        task.credited_out += amount
        task.credits[key] = task.credits.get(key, 0) + amount

    @staticmethod
    def _within(now: int, deadline: int) -> bool:
        return now <= deadline if DEADLINE_INCLUSIVE else now < deadline

    @staticmethod
    def _next_stage(task: Task, rnd: RoundState, stage: Phase, start: int) -> tuple[Phase, int]:
        """The phase after `stage` when it ends at `start`, skipping phases with nothing to do."""
        p = task.params
        if stage == Phase.COMMIT:
            return (Phase.REVEAL, start + p.reveal_window) if rnd.commitments else (Phase.DUE, 0)
        if stage == Phase.REVEAL:
            return (Phase.SCORE_COMMIT, start + p.score_window) if rnd.reveals else (Phase.DUE, 0)
        if stage == Phase.SCORE_COMMIT:
            return (Phase.SCORE_REVEAL, start + p.reveal_window) if rnd.score_commits else (Phase.DUE, 0)
        if stage == Phase.SCORE_REVEAL:
            # the medians as scored: a refused duplicate is only refused at settlement
            return (Phase.PUBLISH, start + p.publish_window) if any(u > 0 for u in rnd.scored_utilities()) else (Phase.DUE, 0)
        if stage == Phase.PUBLISH:
            return (Phase.VOTE_COMMIT, start + p.confirm_window) if rnd.proposed else (Phase.DUE, 0)
        if stage == Phase.VOTE_COMMIT:
            return (Phase.VOTE_REVEAL, start + p.reveal_window) if rnd.vote_commits else (Phase.DUE, 0)
        return (Phase.DUE, 0)

    def phase_at(self, task: Task, rnd: RoundState, now: int) -> tuple[Phase, int]:
        """The phase of `rnd` at `now` and its deadline (0 when Due), derived from stored state."""
        if rnd.closed:
            return (Phase.NONE, 0)
        stage, deadline = rnd.stage, rnd.deadline
        while stage != Phase.DUE and not self._within(now, deadline):
            stage, deadline = self._next_stage(task, rnd, stage, deadline)
        return stage, deadline

    def current_phase(self, model_id: int, now: int) -> tuple[Phase, int]:
        task = self.tasks.get(model_id)
        if task is None or task.status != Status.TRAINING:
            return (Phase.NONE, 0)
        rnd = task.round()
        assert rnd is not None
        return self.phase_at(task, rnd, now)

    def _settle_phase(self, task: Task, rnd: RoundState, now: int) -> Phase:
        """Store the derived phase (idempotent: the derivation from the new state is the same)."""
        rnd.stage, rnd.deadline = self.phase_at(task, rnd, now)
        return rnd.stage

    def _end_phase_early(self, task: Task, rnd: RoundState, now: int) -> None:
        rnd.stage, rnd.deadline = self._next_stage(task, rnd, rnd.stage, now)

    # -------------------------------------------------------------- common checks

    def _task(self, model_id: int, errors: list[Err]) -> Task | None:
        task = self.tasks.get(model_id)
        if task is None:
            errors.append(Err("UnknownModel", (model_id,)))
        return task

    @staticmethod
    def _status(task: Task, allowed: tuple[Status, ...], errors: list[Err]) -> bool:
        if task.status in allowed:
            return True
        expected = allowed[0] if len(allowed) == 1 else OneOf(tuple(int(s) for s in allowed))
        errors.append(Err("WrongStatus", (task.model_id, expected, int(task.status))))
        return False

    @staticmethod
    def _holdable(task: Task, amount: int, errors: list[Err]) -> None:
        """A deposit may not take what the task holds past MAX_HELD (2^128 - 1 wei)."""
        held = task.escrow + task.stakes_held + task.license_held + amount
        if held > MAX_HELD:
            errors.append(Err("AmountTooLarge", (held,)))

    # -------------------------------------------------------------- task set-up

    def new_model(self, caller: str, params: Params, value: int, now: int) -> int:
        errors: list[Err] = []
        if value == 0:
            errors.append(Err("ZeroEscrow", ()))
        errors += params.param_errors(caller)
        if value > MAX_HELD:
            errors.append(Err("AmountTooLarge", (value,)))
        _raise_if(errors)
        model_id = len(self.tasks) + 1
        task = Task(model_id=model_id, owner=caller.lower(), params=copy.deepcopy(params))
        task.escrow = value
        task.deposited = value
        task.owner_deposited = value
        task.start_deadline = now + params.start_window
        task.global_digest = params.initial_model_digest
        self.tasks[model_id] = task
        return model_id

    def pay_for_model(self, caller: str, model_id: int, value: int, now: int) -> None:
        errors: list[Err] = []
        task = self._task(model_id, errors)
        if task is not None:
            if caller.lower() != task.owner:
                errors.append(Err("NotOwner", (model_id, caller)))
            self._status(task, (Status.OPEN,), errors)
            if value == 0 and not ZERO_TOP_UP_ALLOWED:
                errors.append(Err("ZeroEscrow", ()))
            self._holdable(task, value, errors)
        _raise_if(errors)
        assert task is not None
        task.escrow += value
        task.deposited += value
        task.owner_deposited += value

    def buy_license(self, caller: str, model_id: int, value: int, now: int) -> None:
        errors: list[Err] = []
        task = self._task(model_id, errors)
        if task is not None:
            self._status(task, (Status.OPEN,), errors)
            if caller.lower() == task.owner:
                errors.append(Err("OwnerCannotParticipate", (model_id,)))
            if task.participant(caller).licensed:
                errors.append(Err("AlreadyLicensed", (model_id, caller)))
            if value != task.params.license_fee:
                errors.append(Err("WrongAmount", (task.params.license_fee, value)))
            self._holdable(task, value, errors)
        _raise_if(errors)
        assert task is not None
        p = task.participants.setdefault(caller.lower(), ParticipantState())
        p.licensed = True
        task.license_held += value  # held until start, refundable before
        task.deposited += value

    def _join(self, caller: str, model_id: int, value: int, role: Role) -> Task:
        errors: list[Err] = []
        task = self._task(model_id, errors)
        if task is None:
            raise ModelRevert(errors)
        p = task.params
        self._status(task, (Status.OPEN,), errors)
        me = task.participant(caller)
        if caller.lower() == task.owner:
            errors.append(Err("OwnerCannotParticipate", (model_id,)))
        if me.role != Role.NONE:
            errors.append(Err("AlreadyJoined", (model_id, caller, int(me.role))))
        if role == Role.TRAINER:
            stake = p.trainer_stake
            if not me.licensed:
                errors.append(Err("NoLicense", (model_id, caller)))
            if len(task.trainers) >= p.max_trainers:
                errors.append(Err("RoleFull", (model_id, int(Role.TRAINER), p.max_trainers)))
        elif role == Role.VALIDATOR:
            stake = p.validator_stake
            if len(task.validators) >= p.max_validators:
                errors.append(Err("RoleFull", (model_id, int(Role.VALIDATOR), p.max_validators)))
        else:
            stake = p.aggregator_stake
            if caller.lower() != p.aggregator.lower():
                errors.append(Err("NotAggregator", (model_id, caller)))
            if task.aggregator_joined:
                errors.append(Err("AlreadyJoined", (model_id, caller, int(Role.AGGREGATOR))))
        if value != stake:
            errors.append(Err("WrongAmount", (stake, value)))
        self._holdable(task, value, errors)
        _raise_if(errors)
        part = task.participants.setdefault(caller.lower(), ParticipantState())
        part.role = role
        part.stake = stake
        part.stake_remaining = stake
        task.stakes_held += stake
        task.deposited += stake
        if role == Role.TRAINER:
            task.trainers.append(caller.lower())
        elif role == Role.VALIDATOR:
            task.validators.append(caller.lower())
        else:
            task.aggregator_joined = True
        return task

    def join_as_trainer(self, caller: str, model_id: int, value: int, now: int) -> None:
        self._join(caller, model_id, value, Role.TRAINER)

    def join_as_validator(self, caller: str, model_id: int, value: int, now: int) -> None:
        self._join(caller, model_id, value, Role.VALIDATOR)

    def join_as_aggregator(self, caller: str, model_id: int, value: int, now: int) -> None:
        self._join(caller, model_id, value, Role.AGGREGATOR)

    def start_training(self, caller: str, model_id: int, now: int, prevrandao: int) -> None:
        errors: list[Err] = []
        task = self._task(model_id, errors)
        if task is not None:
            p = task.params
            if caller.lower() not in (task.owner, p.aggregator.lower()):
                errors.append(Err("NotOwnerOrAggregator", (model_id, caller)))
            if task.status == Status.OPEN and now > task.start_deadline:
                errors.append(Err("StartDeadlinePassed", (model_id, task.start_deadline)))
            if self._status(task, (Status.OPEN,), errors):
                # an elected task has no validators (its committee sits on trainer seats)
                short_of_validators = p.max_validators != 0 and len(task.validators) < p.committee_size
                if len(task.trainers) < p.min_trainers or short_of_validators or not task.aggregator_joined:
                    errors.append(Err("NotEnoughParticipants", (model_id, len(task.trainers), len(task.validators), task.aggregator_joined)))
        _raise_if(errors)
        assert task is not None
        task.status = Status.TRAINING
        task.reward = task.escrow
        self._credit(task, task.owner, task.license_held)
        task.license_income, task.license_held = task.license_held, 0
        task.elected = p.max_validators == 0
        # round 1's committee is drawn with the same seed among the seats it sits on
        self._open_round(task, 1, now, CM.draw(CM.first_seed(prevrandao, model_id), len(task.member_seats), p.committee_size, 0))

    def _open_round(self, task: Task, number: int, now: int, mask: int) -> None:
        committee = CM.members(task.member_seats, mask)
        task.rounds[number] = RoundState(number=number, committee=committee, committee_mask=mask, stage=Phase.COMMIT, deadline=now + task.params.commit_window)
        task.current_round = number

    def cancel_model(self, caller: str, model_id: int, now: int) -> None:
        errors: list[Err] = []
        task = self._task(model_id, errors)
        if task is not None:
            if caller.lower() != task.owner and now <= task.start_deadline:
                errors.append(Err("NotOwner", (model_id, caller)))
            self._status(task, (Status.OPEN,), errors)
        _raise_if(errors)
        assert task is not None
        self._credit(task, task.owner, task.escrow)
        task.escrow = 0
        for account, part in task.participants.items():
            if part.role != Role.NONE:
                self._credit(task, account, part.stake_remaining)
                task.stakes_held -= part.stake_remaining
        assert task.stakes_held == 0
        task.status = Status.CANCELLED

    def leave_model(self, caller: str, model_id: int, now: int) -> None:
        """Open: a participant's stake and a licensee's fee back (the last of its role takes its
        seat); Cancelled: a licensee reclaims its fee."""
        errors: list[Err] = []
        task = self._task(model_id, errors)
        if task is None:
            raise ModelRevert(errors)
        me = task.participant(caller)
        role = me.role if task.status == Status.OPEN else Role.NONE
        if task.status not in (Status.OPEN, Status.CANCELLED):
            errors.append(Err("WrongStatus", (model_id, int(Status.OPEN), int(task.status))))
        elif role == Role.NONE and not me.licensed:
            errors.append(Err("NothingToLeave", (model_id, caller)))
        _raise_if(errors)
        key = caller.lower()
        p = task.params
        stake = {Role.TRAINER: p.trainer_stake, Role.VALIDATOR: p.validator_stake, Role.AGGREGATOR: p.aggregator_stake}.get(role, 0)
        seats = {Role.TRAINER: task.trainers, Role.VALIDATOR: task.validators}.get(role)
        if seats is not None:
            index = seats.index(key)
            last = seats.pop()
            if index < len(seats):
                seats[index] = last
        if role == Role.AGGREGATOR:
            task.aggregator_joined = False
        fee = p.license_fee if me.licensed else 0
        if task.status == Status.OPEN:
            task.participants[key] = ParticipantState()
        else:
            task.participants[key].licensed = False
        task.stakes_held -= stake
        task.license_held -= fee
        self._credit(task, key, stake + fee)

    # -------------------------------------------------------------- rounds

    def _round_checks(self, caller: str, model_id: int, round_: int, now: int, phase: Phase, errors: list[Err]) -> tuple[Task | None, RoundState | None]:
        """Status, round and phase checks shared by the round functions (state not changed)."""
        task = self._task(model_id, errors)
        if task is None:
            return None, None
        if not self._status(task, (Status.TRAINING,), errors):
            return task, None
        if round_ != task.current_round:
            errors.append(Err("WrongRound", (model_id, task.current_round, round_)))
        rnd = task.round()
        assert rnd is not None
        actual, _ = self.phase_at(task, rnd, now)
        if actual != phase:
            errors.append(Err("WrongPhase", (model_id, OneOf((task.current_round, round_)), int(phase), int(actual))))
        return task, (rnd if round_ == task.current_round else None)

    def commit_update(self, caller: str, model_id: int, round_: int, commitment: bytes, now: int) -> None:
        errors: list[Err] = []
        task, rnd = self._round_checks(caller, model_id, round_, now, Phase.COMMIT, errors)
        if task is not None and task.role_of(caller) != Role.TRAINER:
            errors.append(Err("NotTrainer", (model_id, caller)))
        sitting = task.sitting(rnd) if task is not None else []
        if caller.lower() in sitting:  # an elected task's members score the round, they do not train it
            errors.append(Err("CommitteeMemberCannotTrain", (model_id, round_, caller)))
        if rnd is not None and caller.lower() in rnd.commitments:
            errors.append(Err("AlreadyCommitted", (model_id, round_, caller)))
        _raise_if(errors)
        assert task is not None and rnd is not None
        self._settle_phase(task, rnd, now)
        rnd.commitments[caller.lower()] = commitment
        if len(rnd.commitments) + len(sitting) == len(task.trainers):  # every trainer off the committee committed
            self._end_phase_early(task, rnd, now)

    def reveal_update(self, caller: str, model_id: int, round_: int, update_digest: bytes, num_samples: int, salt: bytes, now: int) -> int:
        errors: list[Err] = []
        task, rnd = self._round_checks(caller, model_id, round_, now, Phase.REVEAL, errors)
        if task is not None and task.role_of(caller) != Role.TRAINER:
            errors.append(Err("NotTrainer", (model_id, caller)))
        if rnd is not None:
            committed = rnd.commitments.get(caller.lower())
            if committed is None:
                errors.append(Err("NotCommitted", (model_id, round_, caller)))
            elif rnd.revealed_by(caller.lower()):
                errors.append(Err("AlreadyRevealed", (model_id, round_, caller)))
            elif committed != commitment_of(model_id, round_, update_digest, num_samples, salt, caller):
                errors.append(Err("CommitmentMismatch", (model_id, round_, caller)))
        if num_samples == 0:
            errors.append(Err("ZeroSamples", ()))
        if task is not None and num_samples > task.params.max_samples:
            errors.append(Err("TooManySamples", (num_samples, task.params.max_samples)))
        _raise_if(errors)
        assert task is not None and rnd is not None
        self._settle_phase(task, rnd, now)
        mix = CM.reveal_mix(rnd.commitments[caller.lower()], len(rnd.reveals), self.prevrandao)
        rnd.reveals.append(Reveal(caller.lower(), update_digest, num_samples, task.trainers.index(caller.lower()), mix))
        if len(rnd.reveals) == len(rnd.commitments):
            self._end_phase_early(task, rnd, now)
        return len(rnd.reveals) - 1

    def _committee_checks(self, caller: str, model_id: int, round_: int, now: int, phase: Phase, errors: list[Err]) -> tuple[Task | None, RoundState | None]:
        """The checks the four committee actions share: task, status, round, committee seat, phase."""
        task, rnd = self._round_checks(caller, model_id, round_, now, phase, errors)
        if rnd is not None:
            if caller.lower() not in rnd.committee:
                errors.append(Err("NotCommitteeMember", (model_id, round_, caller)))
        elif task is not None and task.status == Status.TRAINING:
            current = task.round()
            assert current is not None
            if caller.lower() not in current.committee:
                errors.append(Err("NotCommitteeMember", (model_id, OneOf((round_, task.current_round)), caller)))
        return task, rnd

    def commit_scores(self, caller: str, model_id: int, round_: int, commitment: bytes, now: int) -> None:
        errors: list[Err] = []
        task, rnd = self._committee_checks(caller, model_id, round_, now, Phase.SCORE_COMMIT, errors)
        if rnd is not None and caller.lower() in rnd.score_commits:
            errors.append(Err("ScoresAlreadyCommitted", (model_id, round_, caller)))
        _raise_if(errors)
        assert task is not None and rnd is not None
        self._settle_phase(task, rnd, now)
        rnd.score_commits[caller.lower()] = commitment
        if len(rnd.score_commits) == len(rnd.committee):
            self._end_phase_early(task, rnd, now)

    def reveal_scores(self, caller: str, model_id: int, round_: int, scores: list[int], salt: bytes, now: int) -> None:
        errors: list[Err] = []
        task, rnd = self._committee_checks(caller, model_id, round_, now, Phase.SCORE_REVEAL, errors)
        if rnd is not None and caller.lower() in rnd.committee:
            committed = rnd.score_commits.get(caller.lower())
            if caller.lower() in rnd.scores:
                errors.append(Err("AlreadyScored", (model_id, round_, caller)))
            elif committed is None:
                errors.append(Err("ScoresNotCommitted", (model_id, round_, caller)))
            else:
                if len(scores) != len(rnd.reveals):
                    errors.append(Err("WrongScoreCount", (len(rnd.reveals), len(scores))))
                if committed != score_commitment_of(model_id, round_, caller, scores, salt):
                    errors.append(Err("ScoreCommitmentMismatch", (model_id, round_, caller)))
        _raise_if(errors)
        assert task is not None and rnd is not None
        self._settle_phase(task, rnd, now)
        rnd.scores[caller.lower()] = [clamp_score(x) for x in scores]
        if len(rnd.scores) == len(rnd.score_commits):
            self._end_phase_early(task, rnd, now)

    def publish_global_model(self, caller: str, model_id: int, round_: int, digest: bytes, metric: int, now: int) -> None:
        errors: list[Err] = []
        task, rnd = self._round_checks(caller, model_id, round_, now, Phase.PUBLISH, errors)
        if task is not None and caller.lower() != task.params.aggregator.lower():
            errors.append(Err("NotAggregator", (model_id, caller)))
        if rnd is not None and rnd.proposed:
            errors.append(Err("AlreadyPublished", (model_id, round_)))
        _raise_if(errors)
        assert task is not None and rnd is not None
        self._settle_phase(task, rnd, now)
        rnd.proposed = True
        rnd.proposed_digest = digest
        rnd.proposed_metric = metric
        self._end_phase_early(task, rnd, now)

    def commit_vote(self, caller: str, model_id: int, round_: int, commitment: bytes, now: int) -> None:
        errors: list[Err] = []
        task, rnd = self._committee_checks(caller, model_id, round_, now, Phase.VOTE_COMMIT, errors)
        if rnd is not None and caller.lower() in rnd.vote_commits:
            errors.append(Err("VoteAlreadyCommitted", (model_id, round_, caller)))
        _raise_if(errors)
        assert task is not None and rnd is not None
        self._settle_phase(task, rnd, now)
        rnd.vote_commits[caller.lower()] = commitment
        if len(rnd.vote_commits) == len(rnd.committee):
            self._end_phase_early(task, rnd, now)

    def reveal_vote(self, caller: str, model_id: int, round_: int, ok: bool, salt: bytes, now: int) -> None:
        errors: list[Err] = []
        task, rnd = self._committee_checks(caller, model_id, round_, now, Phase.VOTE_REVEAL, errors)
        if rnd is not None and caller.lower() in rnd.committee:
            committed = rnd.vote_commits.get(caller.lower())
            if caller.lower() in rnd.votes:
                errors.append(Err("AlreadyConfirmed", (model_id, round_, caller)))
            elif committed is None:
                errors.append(Err("VoteNotCommitted", (model_id, round_, caller)))
            elif committed != vote_commitment_of(model_id, round_, caller, ok, salt):
                errors.append(Err("VoteCommitmentMismatch", (model_id, round_, caller)))
        _raise_if(errors)
        assert task is not None and rnd is not None
        self._settle_phase(task, rnd, now)
        rnd.votes[caller.lower()] = ok
        if len(rnd.votes) == len(rnd.vote_commits):  # every member that committed has revealed
            self._close_round(task, rnd, now)

    def close_round(self, caller: str, model_id: int, now: int) -> None:
        errors: list[Err] = []
        task = self._task(model_id, errors)
        if task is not None and self._status(task, (Status.TRAINING,), errors):
            rnd = task.round()
            assert rnd is not None
            phase, deadline = self.phase_at(task, rnd, now)
            if rnd.closed:
                # every round is closed: nothing is due (the spec names no error for this case)
                errors.append(Err("RoundNotDue", None))
                errors.append(Err("WrongPhase", None))
                errors.append(Err("WrongRound", None))
            elif phase != Phase.DUE:
                errors.append(Err("RoundNotDue", (model_id, task.current_round, int(phase), deadline)))
        _raise_if(errors)
        assert task is not None
        rnd = task.round()
        assert rnd is not None
        self._settle_phase(task, rnd, now)
        self._close_round(task, rnd, now)

    # -------------------------------------------------------------- settlement of a round

    @staticmethod
    def _agreement_weights(task: Task, rnd: RoundState, scored: list[int]) -> dict[str, int]:
        """Each member's agreement weight: for a member that revealed scores s, distance D =
        sum |s_k - u_k| from the medians u as scored, tolerance = sum |u_k| * bps // 10000, weight
        tolerance - D while D < tolerance, else 0; all 1 when every median is 0. Others weigh 0."""
        magnitude = sum(abs(u) for u in scored)
        tolerance = magnitude * task.params.agreement_tolerance_bps // BPS
        weights: dict[str, int] = {}
        for member in rnd.committee:
            scores = rnd.scores.get(member)
            if scores is None:
                weights[member] = 0
            elif magnitude == 0:
                weights[member] = 1
            else:
                distance = sum(abs(x - u) for x, u in zip(scores, scored))
                weights[member] = tolerance - distance if distance < tolerance else 0
        return weights

    def _close_round(self, task: Task, rnd: RoundState, now: int) -> None:
        p = task.params
        R, W = p.rounds, task.reward
        budget = W // R if rnd.number < R else W - (R - 1) * (W // R)
        task.escrow -= budget
        t_share = budget * p.trainer_share_bps // BPS
        v_share = budget * p.validator_share_bps // BPS
        a_share = budget - t_share - v_share
        to_buyer = 0
        rewards: dict[tuple[str, Role], int] = {}

        def earn(account: str, amount: int, role: Role) -> None:
            # an elected task's member is paid as a member (Role.Validator) into its trainer seat
            rewards[(account, role)] = rewards.get((account, role), 0) + amount
            task.participants[account].earned += amount

        # 1. trainers: the medians as scored, then every duplicate digest refused (utility 0)
        scored = rnd.scored_utilities()
        refused = rnd.refused()
        utilities = rnd.utilities()
        positive = sum(max(u, 0) for u in utilities)
        if positive > 0:
            paid = 0
            for rev, u in zip(rnd.reveals, utilities):
                amount = mul_div(t_share, max(u, 0), positive)
                if amount:
                    earn(rev.trainer, amount, Role.TRAINER)
                paid += amount
            to_buyer += t_share - paid
        elif not rnd.reveals:
            to_buyer += t_share
        # else: carried to the next rounds' trainers with the slashes (below), never to the buyer

        # 2. validators: an equal share each to the eligible members that agree with the medians as
        # scored; a Disagreed member's share goes to the trainer carry (docs/protocol.md, "Validator pay")
        weights = self._agreement_weights(task, rnd, scored)
        forfeited = 0
        if not rnd.reveals:
            to_buyer += v_share
        else:
            eligible = [m for m in rnd.committee if m in rnd.scores and (not rnd.proposed or m in rnd.votes)]
            if not eligible:
                to_buyer += v_share
            else:
                share = v_share // len(eligible)
                paid = 0
                for m in eligible:
                    if weights[m] == 0:
                        forfeited += share
                        continue
                    if share:
                        earn(m, share, Role.VALIDATOR)
                    paid += share
                to_buyer += v_share - paid - forfeited

        # 3. aggregator
        rejected = rnd.proposed and rnd.rejections * 2 > p.committee_size
        accepted = rnd.proposed and rnd.approvals * 2 > p.committee_size  # silence approves nothing
        aggregator = p.aggregator.lower()
        if accepted:
            if a_share:
                earn(aggregator, a_share, Role.AGGREGATOR)
            task.global_digest = rnd.proposed_digest
        else:
            to_buyer += a_share

        # 4. slashes, in the contract's order (it matters once a stake runs out)
        slashes: list[tuple[str, SlashReason, int]] = []

        def slash(account: str, reason: SlashReason, bps: int) -> None:
            part = task.participants[account]
            amount = min(part.stake * bps // BPS, part.stake_remaining)
            part.stake_remaining -= amount
            part.slashed += amount
            slashes.append((account, reason, amount))

        for rev, dup in zip(rnd.reveals, refused):
            if dup:  # delivered no update of its own
                slash(rev.trainer, SlashReason.LATE, p.late_slash_bps)
        # Fewer than half of the trainers committed: the parent model was likely not retrievable, nobody is late.
        # An elected task's members did not train this round: neither due nor late, nor counted.
        sitting = task.sitting(rnd)
        if 2 * len(rnd.commitments) >= len(task.trainers) - len(sitting):
            for trainer in task.trainers:
                if trainer not in sitting and (trainer not in rnd.commitments or not rnd.revealed_by(trainer)):
                    slash(trainer, SlashReason.LATE, p.late_slash_bps)
        for i, (rev, u) in enumerate(zip(rnd.reveals, utilities)):
            below = sum(1 for s in rnd.scores.values() if s[i] < p.poison_threshold)
            if u < p.poison_threshold and below * 3 >= p.committee_size * 2:  # a qualified majority of the seats
                slash(rev.trainer, SlashReason.POISON, p.bad_slash_bps)
        # a member answers with its own stake (slash() takes the participant's): an elected task's
        # members are trainers, so their trainer stakes
        for member in rnd.committee:
            missed_score = bool(rnd.reveals) and member not in rnd.scores
            missed_vote = rnd.proposed and member not in rnd.votes
            if missed_score or missed_vote:
                slash(member, SlashReason.LATE, p.late_slash_bps)
            if member in rnd.scores and weights[member] == 0:
                slash(member, SlashReason.DISAGREED, p.late_slash_bps)
        if not rnd.proposed and positive > 0:
            slash(aggregator, SlashReason.LATE, p.late_slash_bps)
        elif rejected:
            slash(aggregator, SlashReason.REJECTED, p.bad_slash_bps)
        # The committee's verdict (poison, disagreed, rejected) is burned at once: a colluding
        # majority picks the positive trainers, so it must not reach them. Late slashes are shared.
        verdict = (SlashReason.POISON, SlashReason.DISAGREED, SlashReason.REJECTED)
        burned = sum(amount for _, reason, amount in slashes if reason in verdict)
        slashed_total = sum(amount for _, reason, amount in slashes if reason not in verdict)
        task.stakes_held -= slashed_total + burned
        if burned:
            self._credit(task, BURN, burned)
        carried_in = task.trainer_carry
        pool = slashed_total + carried_in  # this round's late slashes and the carry of earlier rounds
        if positive > 0:
            paid = 0
            for rev, u in zip(rnd.reveals, utilities):
                if u > 0:
                    amount = mul_div(pool, u, positive)
                    if amount:
                        earn(rev.trainer, amount, Role.TRAINER)
                    paid += amount
            task.trainer_carry = pool - paid  # the dust stays with the trainers' carry
        else:
            task.trainer_carry = pool + (t_share if rnd.reveals else 0)
        task.trainer_carry += forfeited

        # 5. everything stays inside the task until generateTrainingPayments
        task.accrued += budget + slashed_total
        task.buyer_accrued += to_buyer
        assert sum(rewards.values()) + to_buyer + task.trainer_carry == budget + slashed_total + carried_in
        rnd.closed = True
        rnd.stage, rnd.deadline = Phase.NONE, 0
        rnd.budget = budget
        rnd.returned_to_buyer = to_buyer
        rnd.accepted = accepted
        rnd.global_digest_after = task.global_digest
        rnd.slashes = slashes
        rnd.rewards = rewards
        task.rounds_closed += 1
        if task.end_requested:
            task.status = Status.FINALIZED
        elif rnd.number < R and task.elected:
            scored_seats = [(r.seat, u) for r, u in zip(rnd.reveals, utilities)]
            self._open_round(task, rnd.number + 1, now, CM.elect(scored_seats, rnd.committee_mask, p.committee_size, len(task.trainers)))
        elif rnd.number < R:
            entries = [CM.RevealEntry(r.seat, r.num_samples, r.mix, r.update_digest) for r in rnd.reveals]
            seed = CM.next_seed(task.model_id, rnd.number, rnd.committee_mask, entries, self.prevrandao)
            self._open_round(task, rnd.number + 1, now, CM.draw(seed, len(task.validators), p.committee_size, rnd.committee_mask))

    # -------------------------------------------------------------- the end

    def finalize_contract(self, caller: str, model_id: int, now: int) -> None:
        errors: list[Err] = []
        task = self._task(model_id, errors)
        if task is not None:
            if self._status(task, (Status.TRAINING,), errors):
                if not task.all_rounds_closed():
                    if caller.lower() != task.owner:
                        errors.append(Err("NotOwner", (model_id, caller)))
        _raise_if(errors)
        assert task is not None
        rnd = task.round()
        if rnd is not None and not rnd.closed and rnd.commitments:
            task.end_requested = True  # the round's budget is committed to: it settles normally first
            return
        if rnd is not None and not rnd.closed:
            rnd.stage, rnd.deadline = Phase.NONE, 0  # abandoned: nobody slashed, its budget stays in escrow
        task.status = Status.FINALIZED

    def generate_training_payments(self, caller: str, model_id: int, now: int) -> None:
        errors: list[Err] = []
        task = self._task(model_id, errors)
        if task is not None:
            self._status(task, (Status.FINALIZED,), errors)
        _raise_if(errors)
        assert task is not None
        for account, part in task.participants.items():
            if part.role != Role.NONE:
                self._credit(task, account, part.earned + part.stake_remaining)
        self._credit(task, task.owner, task.escrow + task.buyer_accrued)
        if task.trainer_carry:
            self._credit(task, BURN, task.trainer_carry)  # burned: slashed trainer stakes never reach the buyer
        task.trainer_carry = 0
        task.escrow = 0
        task.stakes_held = 0
        task.accrued = 0
        task.status = Status.SETTLED

    def withdraw(self, caller: str, now: int, receiver_reverts: bool = False) -> int:
        amount = self.credit_of(caller)
        if amount == 0:
            raise ModelRevert([Err("NothingToWithdraw", (caller,))])
        if receiver_reverts:
            raise ModelRevert([Err("TransferFailed", (caller, amount))])
        self.credits[caller.lower()] = 0
        self.withdrawn[caller.lower()] = self.withdrawn.get(caller.lower(), 0) + amount
        self.total_withdrawn += amount
        return amount

    # -------------------------------------------------------------- invariants of the model itself

    def check_self(self) -> None:
        """The model's own bookkeeping identities (a failure here is a bug in the model)."""
        for task in self.tasks.values():
            earned = sum(p.earned for p in task.participants.values())
            if task.status != Status.SETTLED:
                assert task.accrued == earned + task.buyer_accrued + task.trainer_carry
            if task.status in (Status.OPEN, Status.TRAINING, Status.FINALIZED):
                assert task.stakes_held == sum(p.stake_remaining for p in task.participants.values())
            assert task.deposited == task.credited_out + task.balance, f"task {task.model_id} leaks"
            if task.elected:  # a sitting member never trains the round it scores
                for rnd in task.rounds.values():
                    assert not set(rnd.committee) & set(rnd.commitments), f"task {task.model_id} round {rnd.number}: a member committed"
        assert sum(t.deposited for t in self.tasks.values()) == self.contract_balance + self.total_withdrawn
