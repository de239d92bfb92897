"""The one transaction sender: gas, fees, funds, nonce, sign, send, wait, and why a mined one failed.

    receipt = send_transaction(w3, account, {"to": market, "data": data}, what="joinAsTrainer", errors=decoder)
    send_value(w3, account, to, wei)            # `fedmarket wallet send`
    send_values(w3, account, [(to, wei), ...])  # fund several accounts, then wait for all

Used by the MarketClient, deploy, the devnet's funding and `wallet send`.

- Sender: a LocalAccount signs locally (the same path on the embedded chain, anvil and any node);
  a plain address is an account the node itself unlocks (dev chains' eth_sendTransaction).
- Gas: `gas=` is a fixed limit, no estimation (the embedded chain, where estimating runs every
  transaction twice). Otherwise eth_estimateGas plus a margin, which also surfaces a revert before
  anything is sent, and never below `min_gas`: a call whose cost depends on who comes last (the
  vote that closes a round costs five times one that does not) is estimated on today's state but
  mined on tomorrow's, so it gets its worst case (deploy.MARKETPLACE_GAS_LIMITS).
- Fees: EIP-1559, maxFeePerGas = 2 x the latest base fee + the tip.
- Funds: the balance must cover value + gas x maxFeePerGas, else InsufficientFunds before signing.
- Nonces: the node's pending count, taken under a per-address lock (threads of one process share
  an account safely); a nonce another process took meanwhile is retried with a fresh one.
- Failure: a mined transaction that used all its gas raises OutOfGas; any other failure is
  replayed as a call on the state it left (a failed transaction changes nothing but the sender's
  nonce and balance) to read the revert data, decoded by `errors` into a ContractRevert.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn, Union

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import TimeExhausted

from fedmarket.chain.abi import format_eth
from fedmarket.chain.embedded import is_embedded
from fedmarket.chain.reverts import ErrorDecoder, InsufficientFunds, TransactionFailed, exception_chain
from fedmarket.chain.rpc import is_connection_error, rpc_errors, unreachable
from fedmarket.errors import FedmarketError

RECEIPT_POLL_S = 0.02
RECEIPT_TIMEOUT_S = 120.0
GAS_MARGIN = 1.25
"""Estimated gas is multiplied by this (plus GAS_MARGIN_FLAT) on nodes: state may move between estimate and mining."""
GAS_MARGIN_FLAT = 20_000
DEFAULT_TIP_WEI = 10**9
MAX_NONCE_RETRIES = 3
TRANSFER_GAS = 21_000
"""A plain ether transfer to an account without code."""

Sender = Union[LocalAccount, str]
"""A signing LocalAccount, or the address of an account the node unlocks."""

_NO_ERRORS = ErrorDecoder([])  # no ABI: Error(string) and Panic decoded, anything else UnknownRevert
_NONCE_LOCKS: dict[str, threading.Lock] = {}
_NONCE_LOCKS_GUARD = threading.Lock()
_NONCE_TAKEN = ("nonce too low", "already known", "replacement transaction underpriced", "nonce is too low")


class OutOfGas(TransactionFailed):
    """A mined transaction used its whole gas limit and failed: `function`, `gas_limit`, `tx_hash`.
    Nothing but the fee was spent; the call can be re-read against the chain and sent again."""

    def __init__(self, function: str, gas_limit: int, tx_hash: str) -> None:
        self.function = function
        self.gas_limit = int(gas_limit)
        self.tx_hash = tx_hash
        super().__init__(f"{function} ran out of gas (limit {self.gas_limit}) in transaction {tx_hash}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.function, self.gas_limit, self.tx_hash))


def sender_address(sender: Sender) -> str:
    return sender.address if isinstance(sender, LocalAccount) else to_checksum_address(sender)


# ----------------------------------------------------------------------------- the whole send


def send_transaction(
    w3: Web3,
    sender: Sender,
    tx: dict[str, Any],
    *,
    what: str,
    errors: ErrorDecoder | None = None,
    gas: int | None = None,
    min_gas: int | None = None,
    fallback_gas: int | None = None,
    timeout: float = RECEIPT_TIMEOUT_S,
    poll_latency: float = RECEIPT_POLL_S,
) -> Any:
    """Send `tx` ({"to"?, "data"?, "value"?, "chainId"?}) from `sender`, wait, return the receipt.

    `what` names the call in errors (a contract function: "commitUpdate"). Gas: `gas` fixed, or the
    estimate + margin, at least `min_gas`; `fallback_gas` when the node cannot estimate for another
    reason than a revert or a lost connection. A revert raises its ContractRevert (decoded by
    `errors`), a used-up gas limit OutOfGas, an unreachable node ChainUnreachable.
    """
    decoder = errors or _NO_ERRORS
    address = sender_address(sender)
    tx = {**tx, "from": address, "value": int(tx.get("value", 0))}
    with rpc_errors(w3):
        tx.setdefault("chainId", int(w3.eth.chain_id))
        tx["gas"] = int(gas) if gas is not None else estimate_gas(w3, tx, what, errors=decoder, min_gas=min_gas, fallback_gas=fallback_gas)
        tx.update(fees(w3))
        check_funds(w3, address, tx["value"], tx["gas"] * tx["maxFeePerGas"], what)
        if isinstance(sender, LocalAccount):
            tx_hash = _sign_and_send(w3, sender, tx, what, decoder)
        else:
            tx_hash = _send_unlocked(w3, tx, what, decoder)
        receipt = wait_for_receipt(w3, tx_hash, what, timeout=timeout, poll_latency=poll_latency)
        if receipt["status"] != 1:
            raise failure(w3, what, tx, receipt, decoder)
    return receipt


def send_value(w3: Web3, sender: LocalAccount, to: str, wei: int, *, what: str = "the transfer") -> Any:
    """Send `wei` from `sender` to `to` (an account without code) and wait; the receipt."""
    return send_transaction(w3, sender, {"to": to_checksum_address(to), "value": int(wei)}, what=what, gas=TRANSFER_GAS)


def send_values(w3: Web3, sender: LocalAccount, transfers: Sequence[tuple[str, int]], *, what: str = "the funding") -> list[Any]:
    """Send each (address, wei) of `transfers` from `sender`, nonces in sequence, all before waiting
    for any (one block can mine them all); the receipts, in order. Funds are checked for the total."""
    address = sender.address
    with rpc_errors(w3):
        chain_id = int(w3.eth.chain_id)
        fee = fees(w3)
        total = sum(int(wei) for _, wei in transfers)
        check_funds(w3, address, total, len(transfers) * TRANSFER_GAS * fee["maxFeePerGas"], what)
        sent: list[tuple[dict[str, Any], bytes]] = []
        with _nonce_lock(address):
            first = int(w3.eth.get_transaction_count(address, "pending"))
            for offset, (to, wei) in enumerate(transfers):
                tx = {
                    "from": address,
                    "to": to_checksum_address(to),
                    "value": int(wei),
                    "gas": TRANSFER_GAS,
                    "nonce": first + offset,
                    "chainId": chain_id,
                    **fee,
                }
                try:
                    sent.append((tx, bytes(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))))
                except Exception as exc:
                    _refused(w3, address, what, exc, _NO_ERRORS)
        receipts = []
        for tx, tx_hash in sent:
            receipt = wait_for_receipt(w3, tx_hash, what)
            if receipt["status"] != 1:
                raise failure(w3, what, tx, receipt, _NO_ERRORS)
            receipts.append(receipt)
    return receipts


# ----------------------------------------------------------------------------- the steps


def estimate_gas(
    w3: Web3,
    tx: dict[str, Any],
    what: str,
    *,
    errors: ErrorDecoder | None = None,
    min_gas: int | None = None,
    fallback_gas: int | None = None,
) -> int:
    """eth_estimateGas x GAS_MARGIN + GAS_MARGIN_FLAT, at least `min_gas`. A revert raises its
    decoded ContractRevert; another failure gives `fallback_gas` when there is one."""
    floor = int(min_gas or 0)
    try:
        estimate = int(w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
    except FedmarketError:
        raise
    except Exception as exc:
        revert = (errors or _NO_ERRORS).decode_exception(exc, what)
        if revert is not None:
            raise revert from None
        if is_connection_error(exc) or fallback_gas is None:
            raise
        return max(int(fallback_gas), floor)
    return max(int(estimate * GAS_MARGIN) + GAS_MARGIN_FLAT, floor)


def fees(w3: Web3) -> dict[str, int]:
    """EIP-1559 fees: the node's tip (1 gwei on the embedded chain or a node without
    eth_maxPriorityFeePerGas) and a fee cap of twice the latest base fee plus the tip."""
    block = w3.eth.get_block("latest")
    base = int(block.get("baseFeePerGas") or 0)
    tip = DEFAULT_TIP_WEI
    if not is_embedded(w3):
        try:
            tip = int(w3.eth.max_priority_fee)
        except Exception:  # noqa: BLE001 - nodes without eth_maxPriorityFeePerGas
            tip = DEFAULT_TIP_WEI
    return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}


def check_funds(w3: Web3, address: str, value: int, max_gas_cost: int, what: str) -> None:
    """InsufficientFunds, before anything is signed, when `address` cannot pay value + the most gas."""
    balance = int(w3.eth.get_balance(address))  # type: ignore[arg-type]
    if balance >= value + max_gas_cost:
        return
    if value > 0:
        need = f"{format_eth(value)} + up to {format_eth(max_gas_cost)} gas"
    else:
        need = f"up to {format_eth(max_gas_cost)} gas"
    raise InsufficientFunds(f"not enough funds: {address} holds {format_eth(balance)}; {what} needs {need}")


def wait_for_receipt(w3: Web3, tx_hash: bytes, what: str, *, timeout: float = RECEIPT_TIMEOUT_S, poll_latency: float = RECEIPT_POLL_S) -> Any:
    """The receipt of `tx_hash` once mined; TransactionFailed after `timeout` seconds."""
    try:
        return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=poll_latency)  # type: ignore[arg-type]
    except TimeExhausted as exc:
        raise TransactionFailed(f"{what} transaction 0x{bytes(tx_hash).hex()} was not mined within {timeout:.0f} s") from exc


def failure(w3: Web3, what: str, tx: dict[str, Any], receipt: Any, errors: ErrorDecoder | None = None) -> FedmarketError:
    """Why mined transaction `tx` failed (its receipt's status is 0): OutOfGas when it used its
    whole limit, else the revert its replay on the state it left reports."""
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
    gas_used = int(receipt["gasUsed"])
    if gas_used >= tx["gas"]:
        return OutOfGas(what, tx["gas"], tx_hash)
    call = {k: tx[k] for k in ("from", "to", "value", "data", "gas") if k in tx}
    try:
        w3.eth.call(call, int(receipt["blockNumber"]))  # type: ignore[arg-type]
    except Exception as exc:
        revert = (errors or _NO_ERRORS).decode_exception(exc, what, tx_hash=tx_hash)
        if revert is not None:
            return revert
        if is_connection_error(exc):
            return unreachable(w3, exc)
    return TransactionFailed(f"{what} transaction {tx_hash} reverted (gas used {gas_used} of {tx['gas']})")


def _nonce_lock(address: str) -> threading.Lock:
    with _NONCE_LOCKS_GUARD:
        return _NONCE_LOCKS.setdefault(address, threading.Lock())


def _sign_and_send(w3: Web3, account: LocalAccount, tx: dict[str, Any], what: str, errors: ErrorDecoder) -> bytes:
    # Different accounts never share nonces, so processes with their own accounts need no
    # coordination; one account used from several threads is serialised here, and a nonce
    # taken by another process in the meantime is retried with a fresh one.
    with _nonce_lock(account.address):
        for attempt in range(MAX_NONCE_RETRIES + 1):
            tx["nonce"] = int(w3.eth.get_transaction_count(account.address, "pending"))
            signed = account.sign_transaction(tx)
            try:
                return bytes(w3.eth.send_raw_transaction(signed.raw_transaction))
            except Exception as exc:
                text = " ".join(str(e) for e in exception_chain(exc)).lower()
                if any(s in text for s in _NONCE_TAKEN) and attempt < MAX_NONCE_RETRIES:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                _refused(w3, account.address, what, exc, errors)
    raise AssertionError("unreachable")  # pragma: no cover


def _send_unlocked(w3: Web3, tx: dict[str, Any], what: str, errors: ErrorDecoder) -> bytes:
    try:
        return bytes(w3.eth.send_transaction(tx))  # type: ignore[arg-type]
    except Exception as exc:
        _refused(w3, tx["from"], what, exc, errors)


def _refused(w3: Web3, address: str, what: str, exc: Exception, errors: ErrorDecoder) -> NoReturn:
    """Re-raise the node's refusal to take a transaction as what it means."""
    text = " ".join(str(e) for e in exception_chain(exc)).lower()
    if "insufficient funds" in text:
        balance = int(w3.eth.get_balance(address))  # type: ignore[arg-type]
        raise InsufficientFunds(f"not enough funds: {address} holds {format_eth(balance)}; the node refused {what}: {exc}") from exc
    revert = errors.decode_exception(exc, what)
    if revert is not None:
        raise revert from None
    raise exc
