"""The Marketplace's ABI in Python: the types every other chain module decodes into.

A leaf of chain/ (it imports no other chain module but `protocol`): the Solidity enums
(`Status`, `Phase`, `Role`, `SlashReason`; str() gives the Solidity member name) and
`SOLIDITY_ENUMS`, `abi_type` (an ABI entry's canonical type string), the digest helper
`as_digest` (bytes32 from raw bytes, 0x-hex or a CIDv0), `format_eth`, and the event side of the
ABI: `Event` (one decoded log) and `EventDecoder` (topic0 -> event, arguments by name). The
records (`records`), the revert decoding (`reverts`), the event cursor (`events`) and the client
build on it; none of them is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from eth_utils import keccak, to_checksum_address

from fedmarket.chain.protocol import WEI_PER_ETH
from fedmarket.errors import FedmarketError
from fedmarket.storage.cid import cid_to_digest

if TYPE_CHECKING:
    from web3 import Web3

# ----------------------------------------------------------------------------- enums


class SolidityEnum(IntEnum):
    """An IntEnum mirroring a Solidity enum; str() gives the Solidity member name (e.g. "Reveal",
    "ScoreCommit")."""

    def __str__(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


class Status(SolidityEnum):
    NONE = 0
    OPEN = 1
    TRAINING = 2
    FINALIZED = 3
    SETTLED = 4
    CANCELLED = 5


class Phase(SolidityEnum):
    NONE = 0
    COMMIT = 1
    REVEAL = 2
    SCORE_COMMIT = 3  # committee members commit to their scores
    SCORE_REVEAL = 4  # ... and reveal them
    PUBLISH = 5
    VOTE_COMMIT = 6  # committee members commit to their vote on the proposal
    VOTE_REVEAL = 7  # ... and reveal it; the last reveal settles the round
    DUE = 8


class Role(SolidityEnum):
    NONE = 0
    TRAINER = 1
    VALIDATOR = 2
    AGGREGATOR = 3


class SlashReason(SolidityEnum):
    LATE = 0
    POISON = 1
    REJECTED = 2
    DISAGREED = 3  # committee member whose scores were, on average, a tolerance or more from the medians


SOLIDITY_ENUMS: dict[str, type[SolidityEnum]] = {"Status": Status, "Phase": Phase, "Role": Role, "SlashReason": SlashReason}
"""Solidity enum name -> its Python mirror (how decoded revert arguments get their enum type)."""

# ----------------------------------------------------------------------------- values


def abi_type(item: dict[str, Any]) -> str:
    """The canonical type of an ABI input / output (tuples spelled out), as selectors hash it."""
    kind = item["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(abi_type(c) for c in item["components"]) + ")" + kind[len("tuple") :]
    return kind


# The chain keeps only a CIDv0's 32-byte sha2-256 digest; the conversion has one home, storage.cid.
def as_digest(value: bytes | str) -> bytes:
    """A bytes32 from 32 raw bytes, a 0x-prefixed 64-hex-digit string or a CIDv0 `Qm...`."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 32:
            raise FedmarketError(f"a digest is 32 bytes, not {len(value)}")
        return bytes(value)
    if isinstance(value, str):
        if value.startswith(("0x", "0X")):
            try:
                raw = bytes.fromhex(value[2:])
            except ValueError as exc:
                raise FedmarketError(f"not a hex digest: {value!r}") from exc
            if len(raw) != 32:
                raise FedmarketError(f"a digest is 32 bytes, not {len(raw)}: {value!r}")
            return raw
        return cid_to_digest(value)
    raise FedmarketError(f"not a digest: {value!r}")


def format_eth(wei: int) -> str:
    """Wei as ether for people: "1.5 ETH", "0.000021 ETH", "0 ETH"."""
    if wei == 0:
        return "0 ETH"
    if abs(wei) < 10**9:
        return f"{wei} wei"
    whole, frac = divmod(abs(int(wei)), WEI_PER_ETH)
    text = f"{whole}.{frac:018d}".rstrip("0").rstrip(".")
    return f"{'-' if wei < 0 else ''}{text} ETH"


# ----------------------------------------------------------------------------- events


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


def topic_bytes(topic: Any) -> bytes:
    """A log topic as 32 bytes (py-evm keeps topics as integers, nodes as bytes)."""
    if isinstance(topic, int):
        return topic.to_bytes(32, "big")
    return bytes(topic)


def _topic_hex(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value if value.startswith("0x") else "0x" + value


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
        topics = [_topic_hex(t) if isinstance(t, str) else _topic_hex(topic_bytes(t)) for t in log["topics"]]
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
