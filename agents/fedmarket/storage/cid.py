"""The CID Kubo's default `ipfs add` gives a file, computed in plain Python.

Kubo's defaults (go-unixfs importer, kubo <= 0.x): CIDv0, fixed-size chunks of 256 KiB, the
balanced DAG layout with at most 174 links per node, sha2-256, and leaves that are dag-pb nodes
wrapping a UnixFS `File` (raw leaves are off for CIDv0). Only the root block's digest matters on
chain, but it depends on every block below it, so the whole tree is hashed (never stored here).

Wire formats (both proto2, written by hand; fields in field-number order except where noted):
- UnixFS Data: 1 Type (varint, File = 2), 2 Data (bytes, leaves only), 3 filesize (varint),
  4 blocksizes (varint, repeated, not packed: one per child).
- dag-pb PBNode: 2 Links (repeated PBLink) *before* 1 Data, as every dag-pb encoder writes it.
  PBLink: 1 Hash (multihash bytes), 2 Name (always written, empty here), 3 Tsize (varint: the
  child's block plus everything below it).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from fedmarket.errors import FedmarketError

CHUNK_SIZE = 256 * 1024  # Kubo's default chunker, size-262144
MAX_LINKS = 174  # go-unixfs helpers.DefaultLinksPerBlock
_UNIXFS_FILE = 2
_MULTIHASH_SHA2_256 = b"\x12\x20"  # code 0x12 (sha2-256), length 32
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58_ALPHABET)}
CIDV0_LENGTH = 46  # base58 of the 34-byte multihash always spells 46 characters, "Qm..."


# ----------------------------------------------------------------------------- protobuf pieces


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


@dataclass(frozen=True)
class _Node:
    """One block of the file's DAG, as its parent links to it."""

    digest: bytes  # sha2-256 of the block
    file_size: int  # bytes of file content below it (UnixFS blocksizes entry)
    dag_size: int  # its block plus every block below it (dag-pb Tsize)


@functools.lru_cache(maxsize=8)  # every full chunk has the same frame
def _leaf_frame(length: int) -> tuple[bytes, bytes]:
    """The bytes around `length` bytes of content in a leaf block: (before, after).

    Leaf = PBNode{Data: UnixFS{Type: File, Data: content, filesize: len}}; the content is hashed
    in place between the two frames, never copied into a block.
    """
    unixfs_before = _field_varint(1, _UNIXFS_FILE)
    if length:  # go-unixfs writes no Data field for the empty file's nil content
        unixfs_before += _varint(2 << 3 | 2) + _varint(length)
    after = _field_varint(3, length)
    before = _varint(1 << 3 | 2) + _varint(len(unixfs_before) + length + len(after)) + unixfs_before
    return before, after


def _hash_leaf(content: memoryview | bytes) -> _Node:
    before, after = _leaf_frame(len(content))
    digest = hashlib.sha256(before)
    digest.update(content)
    digest.update(after)
    return _Node(digest.digest(), len(content), len(before) + len(content) + len(after))


def _internal_node(children: list[_Node]) -> _Node:
    unixfs = _field_varint(1, _UNIXFS_FILE) + _field_varint(3, sum(c.file_size for c in children))
    unixfs += b"".join(_field_varint(4, c.file_size) for c in children)
    links = b"".join(_field_bytes(2, _field_bytes(1, _MULTIHASH_SHA2_256 + c.digest) + _field_bytes(2, b"") + _field_varint(3, c.dag_size)) for c in children)
    block = links + _field_bytes(1, unixfs)
    return _Node(hashlib.sha256(block).digest(), sum(c.file_size for c in children), len(block) + sum(c.dag_size for c in children))


def _balanced_root(leaves: list[_Node]) -> _Node:
    """Kubo's balanced layout: the shallowest tree of 174-wide nodes, filled left to right.

    A node at depth d takes its leaves in consecutive groups of 174**(d-1); a short last group
    still becomes a full-depth subtree (a chain of one-link nodes), exactly as go-unixfs's
    fillNodeRec builds it. A single leaf is the root itself.
    """
    if len(leaves) == 1:
        return leaves[0]
    depth = 1
    while MAX_LINKS**depth < len(leaves):
        depth += 1

    def build(group: list[_Node], level: int) -> _Node:
        if level == 0:
            return group[0]
        span = MAX_LINKS ** (level - 1)
        return _internal_node([build(group[i : i + span], level - 1) for i in range(0, len(group), span)])

    return build(leaves, depth)


# ----------------------------------------------------------------------------- streaming hasher


class CidHasher:
    """Feed bytes in any pieces, get the CID of their concatenation (one pass, no whole-file copy)."""

    def __init__(self) -> None:
        self._leaves: list[_Node] = []
        self._pending = bytearray()  # the start of a chunk not yet full
        self._total = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._total += len(view)
        if self._pending:
            take = min(CHUNK_SIZE - len(self._pending), len(view))
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < CHUNK_SIZE:
                return
            self._leaves.append(_hash_leaf(self._pending))
            self._pending.clear()
        whole = len(view) - len(view) % CHUNK_SIZE
        for start in range(0, whole, CHUNK_SIZE):
            self._leaves.append(_hash_leaf(view[start : start + CHUNK_SIZE]))
        self._pending += view[whole:]

    @property
    def size(self) -> int:
        return self._total

    def cid(self) -> str:
        """The CID of everything fed so far (the hasher can keep going afterwards)."""
        leaves = list(self._leaves)
        if self._pending or not leaves:  # the short last chunk, or the empty file's one leaf
            leaves.append(_hash_leaf(self._pending))
        return digest_to_cid(_balanced_root(leaves).digest)


def cid_of(data: bytes | bytearray | memoryview) -> str:
    """The CIDv0 `ipfs add` (Kubo defaults) gives these bytes."""
    hasher = CidHasher()
    hasher.update(data)
    return hasher.cid()


def cid_of_file(path: str | os.PathLike[str]) -> str:
    """The CIDv0 `ipfs add FILE` (Kubo defaults) gives this file, read in 256 KiB pieces."""
    hasher = CidHasher()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                hasher.update(view[:count])
    except OSError as exc:
        raise FedmarketError(f"cannot read {Path(path)}: {exc.strerror or exc}") from exc
    return hasher.cid()


# ----------------------------------------------------------------------------- CIDv0 text <-> digest


def _b58encode(raw: bytes) -> str:
    number = int.from_bytes(raw, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58_ALPHABET[rem])
    leading_zeros = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + _B58_INDEX[char]
    leading_ones = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * leading_ones + body


def digest_to_cid(digest: bytes) -> str:
    """The CIDv0 (`Qm...`) of a block whose sha2-256 digest is `digest` (the bytes32 on chain)."""
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        size = len(digest) if isinstance(digest, (bytes, bytearray)) else type(digest).__name__
        raise FedmarketError(f"a sha2-256 digest is 32 bytes, not {size}")
    return _b58encode(_MULTIHASH_SHA2_256 + bytes(digest))


def validate_cid(text: object) -> str:
    """Return `text` if it is a CIDv0 (base58btc sha2-256 multihash, `Qm...`), else refuse it."""
    if not isinstance(text, str):
        raise FedmarketError(f"malformed CID {text!r}: expected a CIDv0 string (Qm..., 46 characters)")
    if len(text) != CIDV0_LENGTH or not text.startswith("Qm"):
        raise FedmarketError(f"malformed CID {text!r}: expected a CIDv0 (Qm..., 46 characters)")
    bad = next((char for char in text if char not in _B58_INDEX), None)
    if bad is not None:
        raise FedmarketError(f"malformed CID {text!r}: {bad!r} is not a base58btc character")
    raw = _b58decode(text)
    if len(raw) != 34 or raw[:2] != _MULTIHASH_SHA2_256:
        raise FedmarketError(f"malformed CID {text!r}: not a sha2-256 multihash")
    return text


def cid_to_digest(cid: str) -> bytes:
    """The 32-byte sha2-256 digest inside a CIDv0: what the contract stores as bytes32."""
    return _b58decode(validate_cid(cid))[2:]
