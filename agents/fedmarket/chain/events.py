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
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import keccak, to_checksum_address

from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    from web3 import Web3

DEFAULT_CHUNK_BLOCKS = 500
"""Blocks per eth_getLogs request."""

STATE_FORMAT = 1


@dataclass(frozen=True)
class Event:
    """One decoded market event."""

    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: str
    log_index: int
    address: str = ""
    tx_index: int = 0

    @property
    def model_id(self) -> int | None:
        value = self.args.get("modelId")
        return None if value is None else int(value)

    @property
    def round(self) -> int | None:
        value = self.args.get("round")
        return None if value is None else int(value)

    @property
    def key(self) -> tuple[int, int, int]:
        """(block, transaction index, log index): unique per event on a chain, and its order
        (eth-tester numbers logs per transaction, nodes per block: the triple works for both)."""
        return (self.block_number, self.tx_index, self.log_index)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "args": {k: _json_value(v) for k, v in self.args.items()},
            "block": self.block_number,
            "tx": self.tx_hash,
            "logIndex": self.log_index,
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def abi_type(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(abi_type(c) for c in item["components"]) + ")" + kind[len("tuple") :]
    return kind


def _topic_hex(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value if value.startswith("0x") else "0x" + value


def _topic_bytes(topic: Any) -> bytes:
    if isinstance(topic, int):  # py-evm keeps topics as integers
        return topic.to_bytes(32, "big")
    return bytes(topic)


def model_topic(model_id: int) -> str:
    """The 32-byte topic of an indexed uint256 modelId."""
    return "0x" + int(model_id).to_bytes(32, "big").hex()


class EventDecoder:
    """Decodes the market's logs with its ABI: topic0 -> event name and argument types."""

    def __init__(self, w3: Web3, abi: list[dict[str, Any]]) -> None:
        self.w3 = w3
        self._events: dict[str, dict[str, Any]] = {}
        self.topics: dict[str, str] = {}
        for entry in abi:
            if entry.get("type") == "event" and not entry.get("anonymous"):
                signature = f"{entry['name']}({','.join(abi_type(i) for i in entry['inputs'])})"
                topic = "0x" + keccak(signature.encode()).hex()
                self._events[topic] = entry
                self.topics[entry["name"]] = topic

    def decode(self, log: Any) -> Event | None:
        """The decoded event of `log`, or None when its topic0 is none of the ABI's events."""
        topics = [_topic_hex(t) if isinstance(t, str) else _topic_hex(_topic_bytes(t)) for t in log["topics"]]
        if not topics:
            return None
        entry = self._events.get(topics[0])
        if entry is None:
            return None
        codec = self.w3.codec
        indexed = [i for i in entry["inputs"] if i.get("indexed")]
        plain = [i for i in entry["inputs"] if not i.get("indexed")]
        data = log["data"]
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
        plain_values = codec.decode([abi_type(i) for i in plain], raw) if plain else ()
        values: dict[str, Any] = {}
        for item, topic in zip(indexed, topics[1:], strict=False):
            (values[item["name"]],) = codec.decode([abi_type(item)], bytes.fromhex(topic[2:]))
        for item, value in zip(plain, plain_values, strict=True):
            values[item["name"]] = value
        args = {i["name"]: _normalise(i, values[i["name"]]) for i in entry["inputs"] if i["name"] in values}
        tx_hash = log["transactionHash"]
        return Event(
            name=entry["name"],
            args=args,
            block_number=int(log["blockNumber"]),
            tx_hash=tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex(),
            log_index=int(log["logIndex"]),
            address=to_checksum_address(log["address"]),
            tx_index=int(log.get("transactionIndex") or 0),
        )

    def decode_receipt(self, receipt: Any, address: str) -> list[Event]:
        """The market's events in a transaction receipt (logs of other contracts are skipped)."""
        wanted = to_checksum_address(address)
        events = []
        for log in receipt["logs"]:
            if to_checksum_address(log["address"]) != wanted:
                continue
            event = self.decode(log)
            if event is not None:
                events.append(event)
        return events


def _normalise(item: dict[str, Any], value: Any) -> Any:
    kind = item["type"]
    if kind == "address":
        return to_checksum_address(value)
    if kind == "address[]":
        return [to_checksum_address(v) for v in value]
    if isinstance(value, tuple):
        return list(value)
    return value


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
            from fedmarket.chain.client import load_market_abi

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
        from fedmarket.chain.client import rpc_errors

        self._rpc_errors = rpc_errors
        with rpc_errors(w3):
            self.chain_id = int(w3.eth.chain_id)
        self._embedded = type(w3.provider).__name__ == "EthereumTesterProvider"
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
        with self._rpc_errors(self.w3):
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
        logs = self._embedded_logs(start, end) if self._embedded else None
        if logs is None:
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

    def _embedded_logs(self, start: int, end: int) -> list[dict[str, Any]] | None:
        """The market's logs of blocks start..end read straight from py-evm's chain database.

        eth-tester's eth_getLogs looks every transaction of the range up by hash, scanning the
        chain backwards from its head each time: reading a 600-block history takes minutes. Here
        each block is read once. None when the backend is not the py-evm one (then get_logs serves).
        """
        try:
            chain = self.w3.provider.ethereum_tester.backend.chain  # type: ignore[attr-defined]
            wanted = bytes.fromhex(self.address[2:])
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
                            "address": self.address,
                            "topics": [_topic_bytes(t) for t in log.topics],
                            "data": bytes(log.data),
                            "blockNumber": number,
                            "transactionHash": bytes(tx.hash),
                            "transactionIndex": tx_index,
                            "logIndex": log_index,
                        })  # fmt: skip
            return logs
        except AttributeError:
            self._embedded = False
            return None

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
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=self.state_file.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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
