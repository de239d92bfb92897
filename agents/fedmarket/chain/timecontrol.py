"""Chain time for dev chains: read it, and move it on so that phase deadlines pass at once.

- embedded chain (eth-tester): set the pending block's timestamp and mine it;
- anvil / hardhat: `evm_increaseTime` then `evm_mine`;
- any other node: time cannot be moved; `advance_time` raises TimeControlUnsupported.

`chain_now` is the latest block's timestamp: what the contract's views compare deadlines
against (the next transaction's block is a little later).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedmarket.chain.embedded import is_embedded, mine, set_next_timestamp
from fedmarket.chain.rpc import endpoint, rpc_errors
from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    from web3 import Web3


class TimeControlUnsupported(FedmarketError):
    """The chain lets nobody move its clock (a real network or a node without evm_* methods)."""


def chain_now(w3: Web3) -> int:
    """The latest block's timestamp (seconds)."""
    with rpc_errors(w3):
        return int(w3.eth.get_block("latest")["timestamp"])


def advance_time(w3: Web3, seconds: int) -> int:
    """Move chain time on by `seconds` and mine a block; return the new latest timestamp."""
    seconds = int(seconds)
    if seconds < 0:
        raise FedmarketError(f"time only moves forward, not by {seconds} s")
    if is_embedded(w3):
        # Set the pending block's timestamp and mine it (eth-tester's own time_travel lands one
        # second short of its target with py-evm 0.12).
        if seconds > 0:
            set_next_timestamp(w3, chain_now(w3) + seconds)
        mine(w3, 1)
        return chain_now(w3)
    with rpc_errors(w3):
        before = chain_now(w3)
        if seconds > 0:
            _dev_request(w3, "evm_increaseTime", [seconds])
        _dev_request(w3, "evm_mine", [])
        now = chain_now(w3)
    if now < before + seconds:
        raise TimeControlUnsupported(f"the chain at {endpoint(w3)} did not move its time: {before} -> {now}, wanted +{seconds} s")
    return now


def advance_to(w3: Web3, timestamp: int) -> int:
    """Move chain time on until the latest block is at least `timestamp`; return the new time."""
    now = chain_now(w3)
    if now >= timestamp:
        return now
    return advance_time(w3, int(timestamp) - now)


def _dev_request(w3: Web3, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    error = response.get("error") if isinstance(response, dict) else None
    if error:
        message = error.get("message", error) if isinstance(error, dict) else error
        raise TimeControlUnsupported(
            f"the chain at {endpoint(w3)} does not allow time travel ({method}: {message}); "
            "only the embedded chain and anvil / hardhat dev nodes do: wait for real time instead"
        )
    return response.get("result") if isinstance(response, dict) else response


def time_left(seconds: int | float) -> str:
    """A deadline's distance for people: "1m37s", "42s", "2h05m"; "0s" once it has passed."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
