"""The simulation's "chain": the seed paper's upload, download and score blocks, as plain records.

Every block of the seed paper carries a header (id, timestamp, type, client), its content and the
hashes of its parent and of itself. Here a record's hash is the SHA-256 of the canonical JSON
(sorted keys) of its header fields, its parent's hash and its content; the first record's parent
is 64 zeros. Contents: upload {round, model (SHA-256 of the weights)}; download {upload (record
id)}; score {upload, loss}. Downloads and scores name the upload they used, so each upload's use
is traceable, the basis the paper proposes for rewarding an upload's author. The market mode
(on-chain records) is not this module's job; this is the simulation's reference log.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64
RECORD_TYPES = ("upload", "download", "score")


@dataclass(frozen=True)
class Record:
    id: int
    timestamp: float  # virtual time
    type: str
    client: int
    parent_hash: str
    hash: str
    content: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_hash(id: int, timestamp: float, type: str, client: int, parent_hash: str, content: dict[str, Any]) -> str:
    body = {"id": id, "timestamp": timestamp, "type": type, "client": client, "parent_hash": parent_hash, "content": content}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class RecordLog:
    """Append-only list of records, each chained to the one before."""

    records: list[Record] = field(default_factory=list)

    def append(self, type: str, client: int, timestamp: float, content: dict[str, Any]) -> Record:
        if type not in RECORD_TYPES:
            raise ValueError(f"unknown record type {type!r}")
        parent = self.records[-1].hash if self.records else GENESIS_HASH
        id = len(self.records)
        record = Record(id, timestamp, type, client, parent, record_hash(id, timestamp, type, client, parent, content), content)
        self.records.append(record)
        return record

    def counts(self) -> dict[str, int]:
        counted = Counter(r.type for r in self.records)
        return {t: counted.get(t, 0) for t in RECORD_TYPES}

    def verify(self) -> bool:
        """Every record's hash matches its fields and names its parent's hash."""
        parent = GENESIS_HASH
        for r in self.records:
            if r.parent_hash != parent or r.hash != record_hash(r.id, r.timestamp, r.type, r.client, r.parent_hash, r.content):
                return False
            parent = r.hash
        return True

    def head(self) -> str:
        return self.records[-1].hash if self.records else GENESIS_HASH
