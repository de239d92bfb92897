"""The embedded chain: an in-process EVM (web3.py's EthereumTesterProvider over py-evm).

It needs no setup and no network: funded dev accounts, auto-mining (one block per transaction)
and time control for the phase deadlines of the marketplace. Its clock is the caller's, not the
wall clock's: each block's timestamp is its parent's plus one second, however long the machine
took in between, unless time is moved on with `set_next_timestamp` (or `timecontrol.advance_time`).
So a busy machine never expires a phase window; only the test or the engine that moves the clock
does.

Pass `gas` explicitly to transactions on this chain: web3's estimation runs the transaction twice
(~190 ms per transaction instead of ~80 ms); `fedmarket.chain.deploy.GAS_LIMITS` has a limit per
marketplace function.

The time helpers also work on a JSON-RPC dev node that speaks anvil's / hardhat's `evm_*` methods.

Every shortcut that reads py-evm directly lives here, each used from one place: `embedded_logs`
(the event cursor), `transaction_gas_used` (the report), the pending header's timestamp
(`set_next_timestamp`, time control) and the dev keys (`dev_private_keys`, anvil.dev_accounts).

Work the in-process stack repeats and that is skipped here (no rule changes: every transaction is
still signed by its sender, its signature checked, executed, mined in its own block, its revert
reported): eth-tester recovers a transaction's sender from its signature again for every receipt
it serves (one secp256k1 recovery in pure Python, as long as executing the transaction), so the
sender py-evm recovered when it checked the signature is kept by transaction hash (the hash covers
the signature, so it names one sender); eth_blockNumber reads the head's number instead of
serialising the whole latest block; Keccak-256 runs on pysha3 (a dependency; eth-hash would pick
pycryptodome first, several times slower per hash; the digests are the same). Signatures are made
and checked by coincurve (libsecp256k1), which eth-keys uses whenever it is installed.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from web3 import EthereumTesterProvider, Web3

from fedmarket.chain.abi import topic_bytes
from fedmarket.chain.protocol import WEI_PER_ETH
from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    from eth_tester import EthereumTester

DEFAULT_ACCOUNTS = 30
"""Dev accounts of a new embedded chain (a buyer, 20 trainers, committees and an aggregator fit)."""

DEV_BALANCE_WEI = 1_000_000 * WEI_PER_ETH
"""What each dev account holds at genesis (1,000,000 ether, eth-tester's default)."""


def new_embedded_web3(num_accounts: int = DEFAULT_ACCOUNTS) -> Web3:
    """A fresh in-process chain with `num_accounts` funded, unlocked dev accounts (w3.eth.accounts).

    The accounts' private keys are eth-tester's deterministic test keys: 0x...01, 0x...02, ...
    (see `dev_private_keys`); never use them on a real network.
    """
    if num_accounts < 1:
        raise FedmarketError(f"the embedded chain needs at least one account, not {num_accounts}")
    # Imported here: py-evm costs ~0.4 s, which commands talking to a node should not pay.
    from eth_tester import EthereumTester

    use_fast_keccak()
    backend_class = _backend_class()
    genesis_state = backend_class.generate_genesis_state(num_accounts=num_accounts)
    backend = backend_class(genesis_state=genesis_state)
    _drive_the_clock(backend.chain)
    tester = EthereumTester(backend=backend, auto_mine_transactions=True)
    return Web3(EthereumTesterProvider(tester, api_endpoints=_api_endpoints()))


_EMPTY_KECCAK = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")


def use_fast_keccak() -> bool:
    """Hash with pysha3 (safe-pysha3) when it is installed; whether it is in use. eth-hash's
    automatic choice takes pycryptodome first, whose per-call set-up costs several times the hash
    of a trie node or a storage key; py-evm, trie and eth-utils all hash through this one object."""
    try:
        from eth_hash.backends.pysha3 import backend
    except ImportError:
        return False
    from eth_hash.auto import keccak

    if backend.keccak256(b"") != _EMPTY_KECCAK:  # the check eth-hash runs on a backend's first use
        return False
    keccak.hasher, keccak.preimage = backend.keccak256, backend.preimage  # type: ignore[method-assign]
    return True


@functools.cache
def _backend_class() -> type:
    """eth-tester's py-evm backend, less its repeated sender recovery (built on first use: the
    import is deferred)."""
    from eth_tester import PyEVMBackend
    from eth_tester.backends.pyevm.main import _get_transaction_by_hash
    from eth_tester.backends.pyevm.serializers import serialize_transaction, serialize_transaction_receipt
    from eth_utils import ValidationError as EVMValidationError  # what py-evm raises for a bad nonce

    class EmbeddedBackend(PyEVMBackend):  # type: ignore[misc]
        """Keeps the sender py-evm recovered (and so checked) when it applied a transaction, by
        transaction hash, and hands it to the receipt and transaction look-ups, which would
        recover it from the signature again. A transaction py-evm refused is never kept; one
        signed for another chain id is refused before py-evm sees it."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.senders: dict[bytes, bytes] = {}
            super().__init__(*args, **kwargs)

        @property
        def chain(self) -> Any:
            return self._chain

        @chain.setter
        def chain(self, chain: Any) -> None:
            # eth-tester replaces the chain on reset and on snapshot revert: each one is wrapped.
            apply_transaction = chain.apply_transaction

            def apply_and_keep_sender(transaction: Any) -> Any:
                # py-evm takes a typed transaction signed for any chain id; a node refuses it (replay).
                signed_for = getattr(transaction, "chain_id", None)
                if signed_for is not None and signed_for != chain.chain_id:
                    raise EVMValidationError(f"transaction signed for chain id {signed_for}, this chain's is {chain.chain_id}")
                applied = apply_transaction(transaction)
                self.senders[bytes(transaction.hash)] = transaction.sender  # recovered while validating
                return applied

            chain.apply_transaction = apply_and_keep_sender
            self._chain = chain

        def _mined(self, transaction_hash: bytes) -> tuple[Any, Any, int, bool]:
            block, transaction, index = _get_transaction_by_hash(self.chain, transaction_hash)
            sender = self.senders.get(bytes(transaction.hash))
            if sender is not None:
                # `sender` is a cached_property: filling its slot skips the recovery.
                transaction.__dict__["sender"] = sender
            return block, transaction, index, block.number == self.chain.get_block().number

        def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
            block, transaction, index, is_pending = self._mined(transaction_hash)
            return serialize_transaction(block, transaction, index, is_pending)

        def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
            block, transaction, index, is_pending = self._mined(transaction_hash)
            receipts = block.get_receipts(self.chain.chaindb)
            return serialize_transaction_receipt(block, receipts, transaction, index, is_pending, self.chain.get_vm())

    return EmbeddedBackend


def _api_endpoints() -> dict[str, dict[str, Any]]:
    """web3's eth-tester endpoints, with eth_blockNumber read off the pending header (the latest
    block is its parent) instead of serialising the latest block for its number."""
    from web3.providers.eth_tester.defaults import API_ENDPOINTS

    def block_number(tester: EthereumTester, _params: Any) -> int:
        return max(0, int(tester.backend.chain.header.block_number) - 1)

    return {**API_ENDPOINTS, "eth": {**API_ENDPOINTS["eth"], "blockNumber": block_number}}


def _drive_the_clock(chain: Any) -> None:
    """Date every block one second after its parent. py-evm dates the next pending block by the
    wall clock (max(parent + 1, now)), so a slow or loaded machine would move the chain's time,
    and expire phase windows, behind the test's back."""
    mine_block = chain.mine_block

    def mine_block_one_second_later(*args: Any, **kwargs: Any) -> Any:
        block = mine_block(*args, **kwargs)
        chain.header = chain.header.copy(timestamp=block.header.timestamp + 1)
        return block

    chain.mine_block = mine_block_one_second_later
    genesis = chain.get_canonical_head()
    chain.header = chain.header.copy(timestamp=genesis.timestamp + 1)


def dev_private_keys(w3: Web3) -> list[bytes]:
    """The private keys of the embedded chain's dev accounts, in w3.eth.accounts order."""
    tester = _tester(w3)
    if tester is None:
        raise FedmarketError("dev private keys exist only on the embedded chain")
    return [key.to_bytes() for key in tester.backend.account_keys]


def is_embedded(w3: Web3) -> bool:
    """True when `w3` talks to an embedded (eth-tester) chain."""
    return _tester(w3) is not None


def latest_timestamp(w3: Web3) -> int:
    """Timestamp of the latest mined block."""
    return int(w3.eth.get_block("latest")["timestamp"])


def set_next_timestamp(w3: Web3, timestamp: int) -> None:
    """Make the next mined block (the next transaction's, with auto-mining) carry `timestamp`.

    `timestamp` must be later than the latest block's.
    """
    latest = latest_timestamp(w3)
    if timestamp <= latest:
        raise FedmarketError(f"next timestamp {timestamp} is not after the latest block's {latest}")
    tester = _tester(w3)
    if tester is not None:
        backend = tester.backend
        # py-evm's pending header; mining it keeps this timestamp (eth-tester's time_travel sets
        # the header the same way, then mines it).
        backend.chain.header = backend.chain.header.copy(timestamp=timestamp)
        return
    w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


def mine(w3: Web3, blocks: int = 1) -> None:
    """Mine `blocks` empty blocks (each one second later on the embedded chain)."""
    tester = _tester(w3)
    if tester is not None:
        tester.mine_blocks(blocks)
        return
    for _ in range(blocks):
        w3.provider.make_request("evm_mine", [])


def embedded_logs(w3: Web3, address: str, start: int, end: int) -> list[dict[str, Any]] | None:
    """The logs of contract `address` (checksummed) in blocks start..end, read straight from
    py-evm's chain database; None when `w3` is not backed by py-evm (then eth_getLogs serves).

    eth-tester's eth_getLogs looks every transaction of the range up by hash, scanning the chain
    backwards from its head each time: reading a 600-block history takes minutes. Here each block
    is read once.
    """
    chain = _py_evm_chain(w3)
    if chain is None:
        return None
    wanted = bytes.fromhex(address[2:])
    logs: list[dict[str, Any]] = []
    for number in range(start, end + 1):
        block = chain.get_canonical_block_by_number(number)
        if not block.transactions:
            continue
        receipts = block.get_receipts(chain.chaindb)
        for tx_index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
            for log_index, log in enumerate(receipt.logs):
                if bytes(log.address) != wanted:
                    continue
                logs.append({
                    "address": address,
                    "topics": [topic_bytes(t) for t in log.topics],
                    "data": bytes(log.data),
                    "blockNumber": number,
                    "transactionHash": bytes(tx.hash),
                    "transactionIndex": tx_index,
                    "logIndex": log_index,
                })  # fmt: skip
    return logs


def transaction_gas_used(w3: Web3, block_number: int, tx_index: int, tx_hash: str) -> int | None:
    """Gas used by transaction `tx_hash` (0x-hex), the `tx_index`-th of block `block_number`, from
    py-evm's block receipts (cumulative gas); None when `w3` is not py-evm or the index does not
    hold that transaction (then ask for the receipt: eth-tester finds one by scanning the chain
    backwards from its head)."""
    chain = _py_evm_chain(w3)
    if chain is None:
        return None
    block = chain.get_canonical_block_by_number(block_number)
    if not 0 <= tx_index < len(block.transactions) or bytes(block.transactions[tx_index].hash).hex() != tx_hash.removeprefix("0x"):
        return None
    receipts = block.get_receipts(chain.chaindb)
    return int(receipts[tx_index].gas_used) - (int(receipts[tx_index - 1].gas_used) if tx_index > 0 else 0)


def _py_evm_chain(w3: Web3) -> Any:
    """py-evm's chain object behind an eth-tester provider, or None (another backend or provider)."""
    return getattr(getattr(_tester(w3), "backend", None), "chain", None)


def _tester(w3: Web3) -> EthereumTester | None:
    provider = w3.provider
    if isinstance(provider, EthereumTesterProvider):
        return provider.ethereum_tester
    return None
