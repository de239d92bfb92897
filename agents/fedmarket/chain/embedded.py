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
"""

from __future__ import annotations

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
    from eth_tester import EthereumTester, PyEVMBackend

    genesis_state = PyEVMBackend.generate_genesis_state(num_accounts=num_accounts)
    backend = PyEVMBackend(genesis_state=genesis_state)
    _drive_the_clock(backend.chain)
    tester = EthereumTester(backend=backend, auto_mine_transactions=True)
    return Web3(EthereumTesterProvider(tester))


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
