"""A typed client over the Marketplace contract: one Python method per contract function.

    w3 = connect(None)                                  # embedded chain; or connect("http://127.0.0.1:8545")
    market = open_market(w3, account=buyer)             # address from deploy/deployments/<chainId>.json
    result = market.new_model(ModelParams(spec_digest=..., initial_model_digest=..., aggregator=...), escrow_wei)
    model_id = result.model_id
    trainer = market.with_account(trainer_account)
    trainer.buy_license(model_id); trainer.join_as_trainer(model_id)

Transactions go through `fedmarket.chain.transactions` (signed locally with an eth_account
LocalAccount; funds checked, nonce, fees, wait, failure replay) and come back as a `TxResult` with
the decoded events. Gas: on the embedded chain a fixed limit per function
(`fedmarket.chain.deploy.MARKETPLACE_GAS_LIMITS`, upper bounds within the protocol's caps;
estimation would run every transaction twice); on a node, `eth_estimateGas` plus a margin, which
also surfaces a revert before anything is sent, and never less than that fixed limit for the calls
whose cost depends on who comes last (`deploy.ORDER_DEPENDENT_GAS`: the vote that closes a round).
An out-of-gas transaction raises `OutOfGas`.

A revert becomes a `ContractRevert` subclass named after the contract's custom error
(`WrongPhase`, `UnknownModel`, ...) carrying the error's fields and a one-line message, e.g.
"task 3 round 2 is in its Reveal phase; commitUpdate needs Commit".

This module is the client (one method per contract function, views); the records it takes and
returns live in `fedmarket.chain.records` (the enums and digests in `fedmarket.chain.abi`), the
exceptions and revert decoding in `fedmarket.chain.reverts`, connecting in `fedmarket.chain.rpc`,
sending in `fedmarket.chain.transactions`. Their public names stay importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

from fedmarket.chain.abi import EventDecoder
from fedmarket.chain.compile import load_market_abi
from fedmarket.chain.deploy import (
    MARKETPLACE_GAS_LIMITS,
    ORDER_DEPENDENT_GAS,
    deployed_address,
)
from fedmarket.chain.embedded import is_embedded
from fedmarket.chain.records import (
    WEI_PER_ETH,
    AgentView,
    Confirmation,
    ModelInfo,
    ModelParams,
    ModelState,
    ParticipantView,
    Phase,
    RevealedUpdate,
    Role,
    RoundView,
    Scores,
    SlashReason,
    Status,
    TxResult,
    as_digest,
    commitment,
    format_eth,
    new_salt,
    score_commitment,
    vote_commitment,
)
from fedmarket.chain.reverts import (
    ERROR_CLASSES,
    AggregatorIsOwner,
    AgreementToleranceOutOfRange,
    AlreadyCommitted,
    AlreadyConfirmed,
    AlreadyJoined,
    AlreadyLicensed,
    AlreadyPublished,
    AlreadyRevealed,
    AlreadyScored,
    AmountTooLarge,
    ChainUnreachable,
    CommitmentMismatch,
    CommitteeSizeOutOfRange,
    ContractRevert,
    DeadlineOutOfRange,
    ErrorDecoder,
    InsufficientFunds,
    InvalidParams,
    MarketNotDeployed,
    MaxValidatorsOutOfRange,
    NoLicense,
    NotAggregator,
    NotCommitted,
    NotCommitteeMember,
    NotEnoughParticipants,
    NothingToWithdraw,
    NotOwner,
    NotOwnerOrAggregator,
    NotTrainer,
    OwnerCannotParticipate,
    Panic,
    ReentrantCall,
    RevertReason,
    RoleFull,
    RoundDataPruned,
    RoundNotDue,
    RoundsOutOfRange,
    ScoreCommitmentMismatch,
    ScoresAlreadyCommitted,
    ScoresNotCommitted,
    SharesDoNotSum,
    SlashBpsTooLarge,
    StakeTooLarge,
    TrainerBoundsOutOfRange,
    TransactionFailed,
    TransferFailed,
    UnknownModel,
    UnknownRevert,
    VoteAlreadyCommitted,
    VoteCommitmentMismatch,
    VoteNotCommitted,
    WindowOutOfRange,
    WrongAmount,
    WrongPhase,
    WrongRound,
    WrongScoreCount,
    WrongStatus,
    ZeroAggregator,
    ZeroEscrow,
    ZeroInitialModelDigest,
    ZeroSamples,
    ZeroSpecDigest,
    revert_data,
)
from fedmarket.chain.rpc import DEFAULT_RPC_URL, EMBEDDED, connect, endpoint, rpc_errors
from fedmarket.chain.transactions import (
    DEFAULT_TIP_WEI,
    GAS_MARGIN,
    GAS_MARGIN_FLAT,
    MAX_NONCE_RETRIES,
    RECEIPT_POLL_S,
    RECEIPT_TIMEOUT_S,
    OutOfGas,
    send_transaction,
)
from fedmarket.errors import FedmarketError
from fedmarket.storage.cid import cid_to_digest, digest_to_cid

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.contract import Contract

__all__ = [
    # this module
    "MarketClient",
    "open_market",
    # fedmarket.chain.rpc
    "DEFAULT_RPC_URL",
    "EMBEDDED",
    "connect",
    "rpc_errors",
    # fedmarket.chain.compile
    "load_market_abi",
    # fedmarket.chain.transactions
    "RECEIPT_POLL_S",
    "RECEIPT_TIMEOUT_S",
    "GAS_MARGIN",
    "GAS_MARGIN_FLAT",
    "DEFAULT_TIP_WEI",
    "MAX_NONCE_RETRIES",
    "OutOfGas",
    # fedmarket.storage.cid
    "cid_to_digest",
    "digest_to_cid",
    # fedmarket.chain.records (enums, as_digest, format_eth: fedmarket.chain.abi)
    "WEI_PER_ETH",
    "AgentView",
    "Confirmation",
    "ModelInfo",
    "ModelParams",
    "ModelState",
    "ParticipantView",
    "Phase",
    "RevealedUpdate",
    "Role",
    "RoundView",
    "Scores",
    "SlashReason",
    "Status",
    "TxResult",
    "as_digest",
    "commitment",
    "format_eth",
    "new_salt",
    "score_commitment",
    "vote_commitment",
    # fedmarket.chain.reverts
    "ERROR_CLASSES",
    "AlreadyCommitted",
    "AlreadyConfirmed",
    "AlreadyJoined",
    "AlreadyLicensed",
    "AlreadyPublished",
    "AlreadyRevealed",
    "AlreadyScored",
    "AgreementToleranceOutOfRange",
    "ScoreCommitmentMismatch",
    "ScoresAlreadyCommitted",
    "ScoresNotCommitted",
    "VoteAlreadyCommitted",
    "VoteCommitmentMismatch",
    "VoteNotCommitted",
    "AmountTooLarge",
    "ChainUnreachable",
    "CommitmentMismatch",
    "ContractRevert",
    "DeadlineOutOfRange",
    "ErrorDecoder",
    "InsufficientFunds",
    "InvalidParams",
    "AggregatorIsOwner",
    "CommitteeSizeOutOfRange",
    "MaxValidatorsOutOfRange",
    "RoundsOutOfRange",
    "SharesDoNotSum",
    "SlashBpsTooLarge",
    "StakeTooLarge",
    "TrainerBoundsOutOfRange",
    "WindowOutOfRange",
    "ZeroAggregator",
    "ZeroInitialModelDigest",
    "ZeroSpecDigest",
    "MarketNotDeployed",
    "NoLicense",
    "NotAggregator",
    "NotCommitted",
    "NotCommitteeMember",
    "NotEnoughParticipants",
    "NotOwner",
    "NotOwnerOrAggregator",
    "NotTrainer",
    "NothingToWithdraw",
    "OwnerCannotParticipate",
    "Panic",
    "ReentrantCall",
    "RevertReason",
    "RoleFull",
    "RoundDataPruned",
    "RoundNotDue",
    "TransactionFailed",
    "TransferFailed",
    "UnknownModel",
    "UnknownRevert",
    "WrongAmount",
    "WrongPhase",
    "WrongRound",
    "WrongScoreCount",
    "WrongStatus",
    "ZeroEscrow",
    "ZeroSamples",
    "revert_data",
]


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

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


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
        self._view_sender: str | None = None
        self._view_memo: dict[Any, Any] = {}  # (function, args) -> answer, for the block under key None
        if check_code:
            with rpc_errors(w3):
                code = w3.eth.get_code(self.address)
            if len(code) == 0:
                raise MarketNotDeployed(
                    f"no contract at {self.address} on chain {self.chain_id} ({endpoint(w3)}): "
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
        """cancelModel: cancel before training (the owner; anyone past the start deadline); everything is credited back."""
        return self._transact("cancelModel", [model_id])

    def leave_model(self, model_id: int) -> TxResult:
        """leaveModel: leave an Open task (stake and licence fee credited back), or reclaim a licence fee once cancelled."""
        return self._transact("leaveModel", [model_id])

    # ---------------------------------------------------------------- rounds

    def commit_update(self, model_id: int, round: int, commitment: bytes) -> TxResult:
        """commitUpdate: commit to an update (see `commitment()` / `commitment_of`)."""
        return self._transact("commitUpdate", [model_id, round, bytes(commitment)])

    def reveal_update(self, model_id: int, round: int, update_digest: bytes | str, num_samples: int, salt: bytes) -> TxResult:
        """revealUpdate: reveal the committed update (digest or CIDv0, sample count, salt)."""
        return self._transact("revealUpdate", [model_id, round, as_digest(update_digest), num_samples, bytes(salt)])

    def commit_scores(self, model_id: int, round: int, commitment: bytes) -> TxResult:
        """commitScores: a committee member commits to its scores (see `score_commitment()`)."""
        return self._transact("commitScores", [model_id, round, bytes(commitment)])

    def reveal_scores(self, model_id: int, round: int, scores: Sequence[int], salt: bytes) -> TxResult:
        """revealScores: the committed scores, one utility (micro-units) per revealed update in reveal order, and their salt."""
        return self._transact("revealScores", [model_id, round, [int(s) for s in scores], bytes(salt)])

    def publish_global_model(self, model_id: int, round: int, model_digest: bytes | str, metric: int) -> TxResult:
        """publishGlobalModel: the aggregator proposes the round's global model (digest or CIDv0) and its metric."""
        return self._transact("publishGlobalModel", [model_id, round, as_digest(model_digest), int(metric)])

    def commit_vote(self, model_id: int, round: int, commitment: bytes) -> TxResult:
        """commitVote: a committee member commits to its vote on the proposal (see `vote_commitment()`)."""
        return self._transact("commitVote", [model_id, round, bytes(commitment)])

    def reveal_vote(self, model_id: int, round: int, ok: bool, salt: bytes) -> TxResult:
        """revealVote: the committed vote (accept: ok) and its salt; the last reveal settles the round."""
        return self._transact("revealVote", [model_id, round, bool(ok), bytes(salt)])

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

    def agent_view(self, model_id: int, account: str | None = None) -> AgentView:
        """One call for an agent's step (agentView): the task's state, its current round as seen
        now and what `account` (default: the signing account) has done in it."""
        who = account if account is not None else self.sender
        return AgentView.from_abi(self._call("agentView", model_id, to_checksum_address(who)))

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
            # A view's answer is fixed by the latest block (phases too: they derive from its
            # time), so answers are kept until the next block. Clients made by with_account
            # share the memo: in one process, twenty agents asking for the round pay once.
            block = int(self.w3.eth.block_number)
            memo = self._view_memo
            if memo.get(None) != block:
                memo.clear()
                memo[None] = block
            key = (function, args)
            try:
                if key in memo:
                    return memo[key]
            except TypeError:  # an unhashable argument: not memoised
                key = None
            try:
                result = getattr(self.contract.functions, function)(*args).call(self._call_options())
            except FedmarketError:
                raise
            except Exception as exc:
                revert = self.errors.decode_exception(exc, function)
                if revert is not None:
                    raise revert from None
                raise
            if key is not None:
                memo[key] = result
            return result

    def _call_options(self) -> dict[str, Any]:
        """A fixed sender for views: web3 otherwise asks the node for eth_accounts on every call
        to guess one (8 ms a call on the embedded chain, a third of a demo's chain time). The
        node's first account is what web3 would guess; py-evm wants it funded, so not our own."""
        if self._view_sender is None:
            accounts = self.w3.eth.accounts
            self._view_sender = accounts[0] if accounts else ZERO_ADDRESS
        return {} if self._view_sender == ZERO_ADDRESS else {"from": self._view_sender}

    def _transact(self, function: str, args: list[Any], *, value: int = 0) -> TxResult:
        account = self.account
        if account is None:
            _ = self.sender  # raises the clear error
            raise AssertionError  # pragma: no cover
        tx = {"to": self.address, "value": int(value), "data": self.contract.encode_abi(function, args), "chainId": self.chain_id}
        receipt = send_transaction(
            self.w3, account, tx, what=function, errors=self.errors, timeout=self.timeout, poll_latency=self.poll_latency, **self._gas(function)
        )
        return TxResult(
            function=function,
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            gas_used=int(receipt["gasUsed"]),
            block_number=int(receipt["blockNumber"]),
            events=self.events.decode_receipt(receipt, self.address),
        )

    def _gas(self, function: str) -> dict[str, int | None]:
        """How `function`'s gas limit is chosen: the fixed table without estimation; with it, the
        estimate + margin, never below the table for calls whose cost depends on who comes last
        (estimated as a plain vote, mined as the one that closes the round: issue 9)."""
        table = self.gas_limits.get(function)
        if not self.estimate_gas and table is not None:
            return {"gas": table}
        return {"min_gas": table if function in ORDER_DEPENDENT_GAS else None, "fallback_gas": table}
