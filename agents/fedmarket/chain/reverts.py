"""How the chain says no: the failure exceptions, and revert data decoded into them.

`ContractRevert` and one subclass per Solidity custom error of the Marketplace (`WrongPhase`,
`UnknownModel`, ...), each carrying the error's fields by name and a one-line message, e.g.
"task 3 round 2 is in its Reveal phase; commitUpdate needs Commit"; `RevertReason` (a plain
`revert("reason")`), `Panic` and `UnknownRevert` for the rest. `ErrorDecoder` maps revert data
to them by selector, from the ABI; `revert_data` digs the raw data out of a web3 / eth-tester
exception. The failures that are not reverts: `ChainUnreachable`, `InsufficientFunds`,
`MarketNotDeployed`, `TransactionFailed`. `fedmarket.chain.client` re-exports all of it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from fedmarket.chain.abi import SOLIDITY_ENUMS, Phase, SolidityEnum, abi_type, format_eth
from fedmarket.errors import FedmarketError

# ----------------------------------------------------------------------------- the exceptions


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
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(role: Any) -> str:
    return f"{str(role).lower()}s"


class UnknownModel(ContractRevert):
    def describe(self) -> str:
        return f"unknown task {self.fields['modelId']}"


class InvalidParams(ContractRevert):
    """newModel refused the task parameters. Not a Solidity error itself: the base of the
    contract's parameter errors (ZeroSpecDigest, RoundsOutOfRange, ...), so one `except` catches
    them all; each says which check failed and the range it allows."""

    def describe(self) -> str:
        return f"invalid task parameters: {self.problem()}"

    def problem(self) -> str:
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.fields.items())
        return f"{self.name}({args})"


class ZeroSpecDigest(InvalidParams):
    def problem(self) -> str:
        return "specDigest is zero (no task spec)"


class ZeroInitialModelDigest(InvalidParams):
    def problem(self) -> str:
        return "initialModelDigest is zero (no initial model)"


class ZeroAggregator(InvalidParams):
    def problem(self) -> str:
        return "the aggregator is the zero address"


class AggregatorIsOwner(InvalidParams):
    def problem(self) -> str:
        return f"the aggregator {self.fields['aggregator']} is the task's owner, who cannot take part in it"


class RoundsOutOfRange(InvalidParams):
    def problem(self) -> str:
        f = self.fields
        return f"rounds {f['given']} out of range 1..{f['max']}"


class TrainerBoundsOutOfRange(InvalidParams):
    def problem(self) -> str:
        f = self.fields
        return f"trainers {f['minTrainers']}..{f['maxTrainers']} out of range: need 1 <= minTrainers <= maxTrainers <= {f['max']}"


class CommitteeSizeOutOfRange(InvalidParams):
    def problem(self) -> str:
        f = self.fields
        return f"committeeSize {f['given']} out of range 1..{f['max']}"


class MaxValidatorsOutOfRange(InvalidParams):
    def problem(self) -> str:
        f = self.fields
        return f"maxValidators {f['given']} out of range {f['min']}..{f['max']} (committeeSize..{f['max']}; 0 elects the committee from the trainers)"


class ElectedTrainersOutOfRange(InvalidParams):
    def problem(self) -> str:
        f = self.fields
        return (
            f"an elected committee of {f['committeeSize']} needs minTrainers >= {2 * int(f['committeeSize'])} (a whole next committee outside it) "
            f"and maxTrainers <= {f['max']}; got trainers {f['minTrainers']}..{f['maxTrainers']}"
        )


class WindowOutOfRange(InvalidParams):
    # The error names a window by the phase it opens; the user set it by its parameter's name.
    WINDOW_OF_PHASE = {"none": "start", "scorecommit": "score", "votecommit": "confirm"}

    def problem(self) -> str:
        f = self.fields
        phase = str(f["phase"]).lower()
        return f"{self.WINDOW_OF_PHASE.get(phase, phase)} window {f['given']} s out of range {f['min']}..{f['max']} s"


class StakeTooLarge(InvalidParams):
    def problem(self) -> str:
        f = self.fields
        return f"{str(f['role']).lower()} stake {f['given']} wei above the largest, {f['max']} wei"


class SlashBpsTooLarge(InvalidParams):
    def problem(self) -> str:
        f = self.fields
        return f"slash fractions late {f['lateSlashBps']} / bad {f['badSlashBps']} bps: each at most {f['max']}"


class SharesDoNotSum(InvalidParams):
    def problem(self) -> str:
        f = self.fields
        total = f["trainerShareBps"] + f["validatorShareBps"] + f["aggregatorShareBps"]
        return f"shares {f['trainerShareBps']} + {f['validatorShareBps']} + {f['aggregatorShareBps']} = {total} bps; they must sum to {f['total']}"


class ZeroMaxSamples(InvalidParams):
    def problem(self) -> str:
        return "maxSamples is 0: no reveal could claim a sample count"


class LateSlashTooLarge(InvalidParams):
    def problem(self) -> str:
        f = self.fields
        return f"late slash {f['given']} bps above the largest, {f['max']} bps"


class PoisonThresholdPositive(InvalidParams):
    def problem(self) -> str:
        return f"poison threshold {self.fields['given']} above 0: an update nobody scored would be poison"


class AgreementToleranceOutOfRange(InvalidParams):
    def problem(self) -> str:
        f = self.fields
        return f"agreement tolerance {f['given']} bps out of range {f['min']}..{f['max']} bps"


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


class CommitteeMemberCannotTrain(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['trainer']} sits on task {f['modelId']}'s committee in round {f['round']}: members score that round, they do not train it"


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


class ScoresAlreadyCommitted(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['validator']} already committed its scores in task {f['modelId']} round {f['round']}"


class ScoresNotCommitted(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['validator']} committed no scores in task {f['modelId']} round {f['round']}: nothing to reveal"


class ScoreCommitmentMismatch(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"the scores revealed by {f['validator']} do not match its commitment in task {f['modelId']} round {f['round']} (other scores or salt)"


class VoteAlreadyCommitted(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['validator']} already committed its vote in task {f['modelId']} round {f['round']}"


class VoteNotCommitted(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['validator']} committed no vote in task {f['modelId']} round {f['round']}: nothing to reveal"


class VoteCommitmentMismatch(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"the vote revealed by {f['validator']} does not match its commitment in task {f['modelId']} round {f['round']} (other vote or salt)"


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
            f"({f['currentRound']}) and the one before; older rounds are in the UpdateRevealed / ScoresRevealed events"
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


class DeadlineOutOfRange(ContractRevert):
    def describe(self) -> str:
        return f"{self.function}: a deadline at {self.fields['deadline']} s is past 2^32 - 1 (the year 2106), beyond what a round stores"


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


class TooManySamples(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['given']} samples claimed; the task allows at most {f['max']}"


class StartDeadlinePassed(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"task {f['modelId']} did not start by its deadline ({_when(f['deadline'])}); anyone may cancel it now"


class NothingToLeave(ContractRevert):
    def describe(self) -> str:
        f = self.fields
        return f"{f['caller']} holds neither a stake nor an unrefunded licence in task {f['modelId']}"


class UnknownRevert(ContractRevert):
    """Revert data that matches no error of the ABI (or no data at all)."""

    def describe(self) -> str:
        if not self.data:
            return f"{self.function} reverted without a reason"
        return f"{self.function} reverted with unknown error data 0x{self.data.hex()}"


ERROR_CLASSES: dict[str, type[ContractRevert]] = {
    cls.__name__: cls
    for cls in (
        UnknownModel, ZeroSpecDigest, ZeroInitialModelDigest, ZeroAggregator, AggregatorIsOwner, RoundsOutOfRange,
        TrainerBoundsOutOfRange, CommitteeSizeOutOfRange, MaxValidatorsOutOfRange, ElectedTrainersOutOfRange, WindowOutOfRange, StakeTooLarge,
        SlashBpsTooLarge, SharesDoNotSum, ZeroEscrow, WrongAmount, NotOwner, NotOwnerOrAggregator, NotAggregator, NotTrainer,
        NotCommitteeMember, WrongStatus, WrongPhase, WrongRound, AlreadyLicensed, NoLicense, OwnerCannotParticipate,
        AlreadyJoined, RoleFull, NotEnoughParticipants, AlreadyCommitted, CommitteeMemberCannotTrain, NotCommitted, AlreadyRevealed,
        CommitmentMismatch, ZeroSamples, AlreadyScored, WrongScoreCount, AlreadyPublished, AlreadyConfirmed,
        RoundNotDue, RoundDataPruned, NothingToWithdraw, TransferFailed, AmountTooLarge, DeadlineOutOfRange, ReentrantCall,
        StartDeadlinePassed, NothingToLeave, ZeroMaxSamples, LateSlashTooLarge, PoisonThresholdPositive, TooManySamples,
        ScoresAlreadyCommitted, ScoresNotCommitted, ScoreCommitmentMismatch, VoteAlreadyCommitted, VoteNotCommitted,
        VoteCommitmentMismatch, AgreementToleranceOutOfRange,
    )
}  # fmt: skip
"""Solidity error name -> exception class; an error of the ABI missing here becomes a plain ContractRevert."""

# ----------------------------------------------------------------------------- decoding

_ERROR_STRING_SELECTOR = keccak(b"Error(string)")[:4]
_PANIC_SELECTOR = keccak(b"Panic(uint256)")[:4]


def _enum_of(item: dict[str, Any]) -> type[SolidityEnum] | None:
    internal = item.get("internalType", "")
    if internal.startswith("enum "):
        return SOLIDITY_ENUMS.get(internal.rsplit(".", 1)[-1])
    return None


class ErrorDecoder:
    """Revert data -> ContractRevert, from the ABI's error entries (selector -> name and argument types)."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        for entry in abi:
            if entry.get("type") == "error":
                types = [abi_type(i) for i in entry.get("inputs", [])]
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

    def decode_exception(self, exc: BaseException, function: str | None = None, *, tx_hash: str | None = None) -> ContractRevert | None:
        """The revert a web3 / eth-tester exception reports, decoded (an UnknownRevert when it
        carries no data), or None when the exception is no revert at all."""
        data = revert_data(exc)
        if data is not None or is_revert(exc):
            return self.decode(data or b"", function, tx_hash=tx_hash)
        return None


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by a web3 / eth-tester exception, or None if it carries none.

    web3 (a node): ContractCustomError / ContractLogicError / ContractPanicError with `.data` as hex.
    eth-tester: web3's provider re-raises TransactionFailed("execution reverted: <reason>") from the
    original TransactionFailed whose first argument is the raw bytes.
    """
    for current in exception_chain(exc):
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
    return None


def is_revert(exc: BaseException) -> bool:
    """Whether web3 / eth-tester raised `exc` (or anything in its chain) for a revert."""
    names = {type(e).__name__ for e in exception_chain(exc)}
    return bool(names & {"TransactionFailed", "ContractLogicError", "ContractCustomError", "ContractPanicError"})


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it was raised from or during (__cause__, else __context__), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
