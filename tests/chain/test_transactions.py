"""The one transaction sender (fedmarket.chain.transactions) on the embedded chain: transfers one
at a time and in a batch, funds checked before signing, a node-unlocked sender, out of gas."""

from __future__ import annotations

import pickle

import pytest
from eth_account import Account
from web3 import Web3

from fedmarket.chain.anvil import dev_accounts
from fedmarket.chain.client import ErrorDecoder, InsufficientFunds, NothingToWithdraw, OutOfGas, TransactionFailed
from fedmarket.chain.deploy import deploy_marketplace
from fedmarket.chain.deploy import send_transaction as send_call
from fedmarket.chain.transactions import TRANSFER_GAS, fees, send_transaction, send_value, send_values


def test_send_value_moves_the_wei_and_pays_a_plain_transfers_gas(w3: Web3) -> None:
    sender = dev_accounts(w3)[0]
    receiver = Account.create().address
    receipt = send_value(w3, sender, receiver, 12_345)
    assert receipt["status"] == 1 and int(receipt["gasUsed"]) == TRANSFER_GAS
    assert w3.eth.get_balance(receiver) == 12_345


def test_send_values_sends_every_transfer_before_waiting_and_returns_the_receipts_in_order(w3: Web3) -> None:
    sender = dev_accounts(w3)[1]
    receivers = [Account.create().address for _ in range(4)]
    nonce = w3.eth.get_transaction_count(sender.address)
    receipts = send_values(w3, sender, [(r, 1_000 + i) for i, r in enumerate(receivers)])
    assert [w3.eth.get_transaction(r["transactionHash"])["to"] for r in receipts] == receivers
    assert [w3.eth.get_balance(r) for r in receivers] == [1_000, 1_001, 1_002, 1_003]
    assert w3.eth.get_transaction_count(sender.address) == nonce + 4


def test_funds_are_checked_for_value_and_gas_before_anything_is_signed(w3: Web3) -> None:
    rich = dev_accounts(w3)[2]
    poor = Account.create()
    send_value(w3, rich, poor.address, 10**15)
    with pytest.raises(InsufficientFunds, match=rf"^not enough funds: {poor.address} holds 0.001 ETH; the transfer needs 0.001 ETH \+ up to "):
        send_value(w3, poor, rich.address, 10**15)
    with pytest.raises(InsufficientFunds, match=r"; the funding needs 0.002 ETH \+ up to "):
        send_values(w3, poor, [(rich.address, 10**15), (rich.address, 10**15)])
    assert w3.eth.get_transaction_count(poor.address) == 0


def test_fees_cap_twice_the_base_fee_plus_the_tip(w3: Web3) -> None:
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    fee = fees(w3)
    assert fee["maxFeePerGas"] == 2 * base + fee["maxPriorityFeePerGas"]


def test_an_account_the_node_unlocks_sends_too(w3: Web3) -> None:
    unlocked = w3.eth.accounts[3]  # a plain address: eth_sendTransaction, the node signs
    receiver = Account.create().address
    sent = send_transaction(w3, unlocked, {"to": receiver, "value": 7}, what="the transfer", gas=TRANSFER_GAS)
    assert sent["status"] == 1 and w3.eth.get_balance(receiver) == 7
    assert deploy_marketplace(w3, unlocked).address


def test_a_mined_revert_is_replayed_and_decoded_with_the_abi(w3: Web3) -> None:
    sender = dev_accounts(w3)[5]
    market = deploy_marketplace(w3, sender)
    with pytest.raises(NothingToWithdraw, match=f"^{sender.address} has nothing to withdraw$") as info:
        send_call(w3, market.functions.withdraw(), sender, gas=100_000, errors=ErrorDecoder(market.abi))
    assert info.value.tx_hash is not None  # mined (a fixed limit: no estimate to refuse it first)


def test_running_out_of_gas_is_its_own_exception(w3: Web3) -> None:
    sender = dev_accounts(w3)[4]
    market = deploy_marketplace(w3, sender)
    call = market.functions.withdraw()
    with pytest.raises(OutOfGas) as info:
        send_call(w3, call, sender, gas=21_500)
    error = info.value
    assert isinstance(error, TransactionFailed) and error.function == "withdraw" and error.gas_limit == 21_500
    assert str(error) == f"withdraw ran out of gas (limit 21500) in transaction {error.tx_hash}"
    again = pickle.loads(pickle.dumps(error))  # agents hand errors across processes
    assert type(again) is OutOfGas and str(again) == str(error)
