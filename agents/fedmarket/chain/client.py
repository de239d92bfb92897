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

This module is the client (transactions, views, signing, nonces, connecting); the records it
takes and returns live in `fedmarket.chain.records`, the exceptions and revert decoding in
`fedmarket.chain.reverts`. Everything public of the three is importable from here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

from fedmarket.chain.events import EventDecoder
from fedmarket.chain.records import (
    WEI_PER_ETH,
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
)
from fedmarket.chain.reverts import (
    ERROR_CLASSES,
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
    ContractRevert,
    ErrorDecoder,
    InsufficientFunds,
    InvalidParams,
    MarketNotDeployed,
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
    TransactionFailed,
    TransferFailed,
    UnknownModel,
    UnknownRevert,
    WrongAmount,
    WrongPhase,
    WrongRound,
    WrongScoreCount,
    WrongStatus,
    ZeroEscrow,
    ZeroSamples,
    exception_chain,
    revert_data,
)
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

MAX_NONCE_RETRIES = 3

__all__ = [
    # this module
    "DEFAULT_RPC_URL",
    "EMBEDDED",
    "RECEIPT_POLL_S",
    "RECEIPT_TIMEOUT_S",
    "GAS_MARGIN",
    "GAS_MARGIN_FLAT",
    "DEFAULT_TIP_WEI",
    "MAX_NONCE_RETRIES",
    "MarketClient",
    "connect",
    "load_market_abi",
    "open_market",
    "rpc_errors",
    # fedmarket.storage.cid
    "cid_to_digest",
    "digest_to_cid",
    # fedmarket.chain.records
    "WEI_PER_ETH",
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
    # fedmarket.chain.reverts
    "ERROR_CLASSES",
    "AlreadyCommitted",
    "AlreadyConfirmed",
    "AlreadyJoined",
    "AlreadyLicensed",
    "AlreadyPublished",
    "AlreadyRevealed",
    "AlreadyScored",
    "AmountTooLarge",
    "ChainUnreachable",
    "CommitmentMismatch",
    "ContractRevert",
    "ErrorDecoder",
    "InsufficientFunds",
    "InvalidParams",
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

# ----------------------------------------------------------------------------- connecting


def _is_connection_error(exc: BaseException) -> bool:
    import requests

    return any(isinstance(e, (requests.ConnectionError, requests.Timeout, ConnectionError)) for e in exception_chain(exc))


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
    text = " ".join(str(e) for e in exception_chain(exc))
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

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
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
        self._view_sender: str | None = None
        self._view_memo: dict[Any, Any] = {}  # (function, args) -> answer, for the block under key None
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
            revert = self.errors.decode_exception(exc, function)
            if revert is not None:
                raise revert from None
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
                    text = " ".join(str(e) for e in exception_chain(exc)).lower()
                    if "insufficient funds" in text:
                        balance = int(self.w3.eth.get_balance(account.address))
                        raise InsufficientFunds(f"not enough funds: {account.address} holds {format_eth(balance)}; the node refused {function}: {exc}") from exc
                    nonce_trouble = any(s in text for s in ("nonce too low", "already known", "replacement transaction underpriced", "nonce is too low"))
                    if nonce_trouble and attempt < MAX_NONCE_RETRIES:
                        time.sleep(0.05 * (attempt + 1))
                        continue
                    revert = self.errors.decode_exception(exc, function)
                    if revert is not None:
                        raise revert from None
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
            revert = self.errors.decode_exception(exc, function, tx_hash=tx_hash)
            if revert is not None:
                return revert
            if _is_connection_error(exc):
                return ChainUnreachable(f"cannot reach the Ethereum node at {_endpoint(self.w3)}: {_reason(exc)}")
        return TransactionFailed(f"{function} transaction {tx_hash} reverted (gas used {gas_used} of {tx['gas']})")
