"""The market's events, decoded, and a cursor that reads them from a stored block onward.

`EventCursor` reads the Marketplace's logs in block windows from its position up to the latest
block (never from block 0 each time: eth_getLogs over a long range gets slow, on eth-tester
especially), decodes them with the ABI (topic0 -> event), optionally keeps only one task's
events (the indexed modelId), and persists its position to a JSON file with an atomic write so
that a restarted agent resumes where it left off.

Position semantics: the position is the next block to read. `poll()` reads whole blocks only, so
an event is delivered exactly once as long as the caller handles a batch before the position is
saved: `poll()` saves at once (at most once), `poll(commit=False)` + `commit()` after handling
gives at least once (agents act idempotently, so that is the safe choice for them).

Reorgs: the cursor assumes a chain whose blocks never change once mined (eth-tester, anvil and
hardhat dev chains never reorg). For a real network pass `confirmations=N` to read only blocks
N deep. The hash of the last block read is stored too: a stored position whose block hash no
longer matches (a restarted dev chain with the same chain id, or a reorg) is refused with a
clear error instead of silently skipping or repeating events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

from fedmarket.chain.abi import Event, EventDecoder, abi_type, model_topic
from fedmarket.chain.compile import load_market_abi
from fedmarket.chain.embedded import embedded_logs, is_embedded
from fedmarket.chain.rpc import rpc_errors
from fedmarket.errors import FedmarketError
from fedmarket.files import atomic_write

if TYPE_CHECKING:
    from web3 import Web3

__all__ = [
    # re-exported from fedmarket.chain.abi (their home)
    "Event",
    "EventDecoder",
    "abi_type",
    "model_topic",
    # this module
    "DEFAULT_CHUNK_BLOCKS",
    "STATE_FORMAT",
    "CursorMismatch",
    "EventCursor",
]

DEFAULT_CHUNK_BLOCKS = 500
"""Blocks per eth_getLogs request."""

STATE_FORMAT = 1


class CursorMismatch(FedmarketError):
    """A stored cursor position that does not belong to this chain / contract any more."""


class EventCursor:
    """Reads the market's events from a stored block onward in windows of `chunk_blocks` blocks.

    - `model_id`: keep only that task's events (filtered by the node on the indexed topic and
      again after decoding); `names`: keep only these event names.
    - `state_file`: where the position is persisted (JSON, atomic write); resumed when it exists.
    - `start_block`: where a cursor without a stored position begins (e.g. the deployment block).
    - `confirmations`: stay this many blocks behind the head (0 on reorg-free dev chains).
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        abi: list[dict[str, Any]] | None = None,
        *,
        model_id: int | None = None,
        names: Iterable[str] | None = None,
        state_file: Path | str | None = None,
        start_block: int = 0,
        chunk_blocks: int = DEFAULT_CHUNK_BLOCKS,
        confirmations: int = 0,
    ) -> None:
        if chunk_blocks < 1:
            raise FedmarketError(f"chunk_blocks must be >= 1, not {chunk_blocks}")
        if abi is None:
            abi = load_market_abi()
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.decoder = EventDecoder(w3, abi)
        self.model_id = model_id
        self.names = frozenset(names) if names is not None else None
        unknown = (self.names or frozenset()) - set(self.decoder.topics)
        if unknown:
            raise FedmarketError(f"the market has no events named {sorted(unknown)}")
        self.state_file = Path(state_file) if state_file is not None else None
        self.chunk_blocks = chunk_blocks
        self.confirmations = confirmations
        with rpc_errors(w3):
            self.chain_id = int(w3.eth.chain_id)
        self._embedded = is_embedded(w3)
        self.next_block = int(start_block)
        self._last_hash: str | None = None
        self._saved_block: int | None = None
        if self.state_file is not None and self.state_file.exists():
            with rpc_errors(w3):
                self._load()

    # ------------------------------------------------------------------ reading

    @property
    def position(self) -> int:
        """The next block the cursor will read."""
        return self.next_block

    def head(self) -> int:
        """The last block the cursor may read now (latest minus confirmations)."""
        return int(self.w3.eth.block_number) - self.confirmations

    def poll(self, *, commit: bool = True, to_block: int | None = None) -> list[Event]:
        """Every new event from the position up to the head (or `to_block`), in chain order.

        The position moves past the blocks read; with `commit` (default) it is also saved.
        """
        events: list[Event] = []
        position, last_hash = self.next_block, self._last_hash
        with rpc_errors(self.w3):
            head = self.head() if to_block is None else min(int(to_block), self.head())
            while position <= head:
                end = min(position + self.chunk_blocks - 1, head)
                events.extend(self._read(position, end))
                position = end + 1
                last_hash = self._block_hash(end)
        # Only a complete read moves the position: a failure half-way loses nothing.
        self.next_block, self._last_hash = position, last_hash
        if commit:
            self.commit()
        return events

    def follow(self, *, interval: float = 0.5, stop: Callable[[], bool] | None = None) -> Iterator[Event]:
        """Yield events as they arrive, polling every `interval` seconds until `stop()` is true.

        Each batch's position is saved once the consumer asks for the event after it (at least once).
        """
        while stop is None or not stop():
            batch = self.poll(commit=False)
            yield from batch
            self.commit()
            if not batch:
                time.sleep(interval)

    def _read(self, start: int, end: int) -> list[Event]:
        # py-evm's own database when embedded (eth-tester's eth_getLogs is slow), else the node.
        logs = embedded_logs(self.w3, self.address, start, end) if self._embedded else None
        if logs is None:
            self._embedded = False
            topics: list[Any] = [None]
            if self.names is not None:
                topics = [[self.decoder.topics[n] for n in sorted(self.names)]]
            if self.model_id is not None:
                topics.append(model_topic(self.model_id))
            query: dict[str, Any] = {"address": self.address, "fromBlock": start, "toBlock": end}
            if topics != [None]:
                query["topics"] = topics
            logs = self.w3.eth.get_logs(query)  # type: ignore[arg-type]
        events = []
        for log in logs:
            event = self.decoder.decode(log)
            if event is None:
                continue
            if self.names is not None and event.name not in self.names:
                continue
            if self.model_id is not None and event.model_id != self.model_id:
                continue
            events.append(event)
        events.sort(key=lambda e: e.key)
        return events

    def _block_hash(self, number: int) -> str | None:
        if number < 0:
            return None
        block = self.w3.eth.get_block(number)
        return "0x" + bytes(block["hash"]).hex()

    # ------------------------------------------------------------------ persistence

    def commit(self) -> None:
        """Save the position (no-op without a state file or when nothing moved)."""
        if self.state_file is None or self._saved_block == self.next_block:
            return
        state = {
            "format": STATE_FORMAT,
            "chainId": self.chain_id,
            "address": self.address,
            "modelId": self.model_id,
            "nextBlock": self.next_block,
            "lastBlockHash": self._last_hash,
        }
        # Durable: a cursor that rolled back after a power cut would deliver events twice.
        atomic_write(self.state_file, json.dumps(state), durable=True)
        self._saved_block = self.next_block

    def _load(self) -> None:
        assert self.state_file is not None
        try:
            state = json.loads(self.state_file.read_text())
            next_block = int(state["nextBlock"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CursorMismatch(f"event cursor file {self.state_file} is unreadable: {exc}") from exc
        where = f"event cursor {self.state_file}"
        if int(state.get("chainId", -1)) != self.chain_id:
            raise CursorMismatch(f"{where} belongs to chain {state.get('chainId')}, not chain {self.chain_id}")
        if to_checksum_address(state.get("address", "0x" + "0" * 40)) != self.address:
            raise CursorMismatch(f"{where} follows the market at {state.get('address')}, not {self.address}")
        if state.get("modelId") != self.model_id:
            raise CursorMismatch(f"{where} follows task {state.get('modelId')}, not task {self.model_id}")
        last_hash = state.get("lastBlockHash")
        if next_block - 1 > int(self.w3.eth.block_number):
            raise CursorMismatch(f"{where} is at block {next_block} but the chain has only {self.w3.eth.block_number} blocks: was the chain restarted?")
        if last_hash is not None and self._block_hash(next_block - 1) != last_hash:
            raise CursorMismatch(f"{where}: block {next_block - 1} changed since it was read (a restarted chain or a reorg)")
        self.next_block = next_block
        self._last_hash = last_hash
        self._saved_block = next_block
