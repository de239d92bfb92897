"""The embedded chain's trimmed stack (fedmarket.chain.embedded) skips repeated work only: a sender
is recovered from its signature once per transaction, yet bad transactions are still refused,
reverts still reported, receipts and eth_blockNumber still say what the chain holds."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_hash.auto import keccak
from web3 import Web3

from fedmarket.chain.anvil import dev_accounts
from fedmarket.chain.embedded import mine, new_embedded_web3, set_next_timestamp, use_fast_keccak
from fedmarket.chain.reverts import UnknownRevert
from fedmarket.chain.transactions import TRANSFER_GAS, fees, send_transaction, send_value

# Creation code of a contract whose every call reverts with no data: it returns the runtime
# PUSH1 0 PUSH1 0 REVERT.
ALWAYS_REVERTS = bytes.fromhex("6005600c60003960056000f3" + "60006000fd")


@pytest.fixture
def w3() -> Web3:
    return new_embedded_web3(3)


def _transfer(w3: Web3, sender, to: str, **changes: object) -> bytes:
    tx = {
        "to": to,
        "value": 1,
        "gas": TRANSFER_GAS,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "chainId": w3.eth.chain_id,
        **fees(w3),
        **changes,
    }
    return bytes(sender.sign_transaction(tx).raw_transaction)


def test_each_sender_is_recovered_once_and_named_by_its_receipt(w3: Web3, monkeypatch: pytest.MonkeyPatch) -> None:
    import eth.vm.forks.london.transactions as london

    recoveries: list[bytes] = []
    recover = london.extract_transaction_sender

    def counted(transaction: object) -> bytes:
        recoveries.append(recover(transaction))
        return recoveries[-1]

    monkeypatch.setattr(london, "extract_transaction_sender", counted)  # EIP-1559 transactions
    alice, bob, _ = dev_accounts(w3)
    receipts = [send_value(w3, sender, to.address, 5) for sender, to in ((alice, bob), (bob, alice), (alice, bob))]
    assert [r["from"] for r in receipts] == [alice.address, bob.address, alice.address]
    assert w3.eth.get_transaction(receipts[1]["transactionHash"])["from"] == bob.address
    assert len(recoveries) == 3  # one per transaction, when py-evm checked its signature


def test_a_forged_signature_a_wrong_chain_and_a_reused_nonce_are_refused(w3: Web3) -> None:
    alice, bob, _ = dev_accounts(w3)
    stranger = Account.create()  # holds nothing: a signature it made cannot pay for gas
    with pytest.raises(Exception, match="(?i)insufficient|balance|funds"):
        w3.eth.send_raw_transaction(_transfer(w3, stranger, bob.address, nonce=0))
    with pytest.raises(Exception, match="(?i)chain"):
        w3.eth.send_raw_transaction(_transfer(w3, alice, bob.address, chainId=w3.eth.chain_id + 1))
    send_value(w3, alice, bob.address, 1)
    with pytest.raises(Exception, match="(?i)nonce"):
        w3.eth.send_raw_transaction(_transfer(w3, alice, bob.address, nonce=0))
    # A signature of someone else's transaction does not spend from the signer's account.
    signed = bytearray(_transfer(w3, alice, bob.address))
    signed[-40] ^= 0x01  # inside s: the recovered address is no longer alice's
    before = w3.eth.get_balance(alice.address)
    try:
        w3.eth.send_raw_transaction(bytes(signed))
    except Exception:  # noqa: BLE001 - an invalid signature or an unfunded recovered account: refused either way
        pass
    assert w3.eth.get_balance(alice.address) == before


def test_a_mined_revert_is_still_reported(w3: Web3) -> None:
    alice = dev_accounts(w3)[0]
    created = send_transaction(w3, alice, {"data": ALWAYS_REVERTS}, what="deploy", gas=100_000)
    reverts = created["contractAddress"]
    with pytest.raises(UnknownRevert, match="poke reverted"):  # replayed on the state it left, not out of gas
        send_transaction(w3, alice, {"to": reverts, "data": b"\x01"}, what="poke", gas=50_000)
    assert w3.eth.get_block("latest")["transactions"]  # mined, in its own block, and failed


def test_block_number_follows_the_head(w3: Web3) -> None:
    alice, bob, _ = dev_accounts(w3)
    assert w3.eth.block_number == w3.eth.get_block("latest")["number"] == 0
    receipt = send_value(w3, alice, bob.address, 1)
    assert w3.eth.block_number == receipt["blockNumber"] == 1
    set_next_timestamp(w3, w3.eth.get_block("latest")["timestamp"] + 100)
    mine(w3, 3)
    assert w3.eth.block_number == w3.eth.get_block("latest")["number"] == 4


def test_the_fast_keccak_gives_keccak_256() -> None:
    use_fast_keccak()
    assert keccak(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


def test_the_embedded_chain_hashes_and_signs_in_c(w3: Web3) -> None:
    # Both are dependencies: without them every transaction costs a third more (bench overhead).
    import eth_keys.backends

    assert use_fast_keccak()
    assert type(eth_keys.backends.get_backend()).__name__ == "CoinCurveECCBackend"
    alice, bob, _ = dev_accounts(w3)
    receipt = send_value(w3, alice, bob.address, 1)  # signed by coincurve, its sender recovered by it
    assert w3.eth.get_transaction(receipt["transactionHash"])["from"] == alice.address
