"""The embedded store: CID-named files, atomic writes, verified reads, several processes at once."""

from __future__ import annotations

import hashlib
import multiprocessing
import multiprocessing.synchronize
import os
from pathlib import Path

import pytest

from fedmarket.errors import FedmarketError
from fedmarket.storage import BlobStore, open_store
from fedmarket.storage.cid import CHUNK_SIZE, cid_of
from fedmarket.storage.embedded import EmbeddedStore

HELLO_WORLD = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


def blob(seed: int, size: int) -> bytes:
    return hashlib.shake_256(seed.to_bytes(8, "big")).digest(size)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.startswith(".")]


def test_add_get_has_pin(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    assert isinstance(store, BlobStore)
    assert not store.has(HELLO_WORLD)
    assert store.add(b"hello world\n") == HELLO_WORLD
    assert store.has(HELLO_WORLD)
    assert store.get(HELLO_WORLD) == b"hello world\n"
    store.pin(HELLO_WORLD)
    assert store.path_of(HELLO_WORLD) == tmp_path / "f5" / HELLO_WORLD  # next-to-last two characters
    assert store.add(b"hello world\n") == HELLO_WORLD  # idempotent
    assert leftovers(tmp_path) == []


def test_add_file_equals_add(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "blobs")
    data = blob(1, 3 * CHUNK_SIZE + 11)
    source = tmp_path / "weights.safetensors"
    source.write_bytes(data)
    cid = store.add_file(source)
    assert cid == cid_of(data)
    assert store.get(cid) == data
    assert store.add_file(source) == cid and store.add(data) == cid
    assert leftovers(tmp_path / "blobs") == []


def test_empty_blob(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    cid = store.add(b"")
    assert cid == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert store.get(cid) == b""


def test_default_root_is_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDMARKET_HOME", str(tmp_path))
    store = open_store(None)
    assert isinstance(store, EmbeddedStore) and store.root == tmp_path / "blobs"
    assert store.location == f"embedded store {tmp_path / 'blobs'}"


def test_missing_blob_is_one_line(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    with pytest.raises(FedmarketError, match=f"^{HELLO_WORLD} is not in the embedded store {tmp_path}$"):
        store.get(HELLO_WORLD)
    with pytest.raises(FedmarketError, match="^cannot pin"):
        store.pin(HELLO_WORLD)


def test_malformed_cid_is_refused_before_touching_files(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    for bad in ("../../etc/passwd", "Qm../x", ""):
        with pytest.raises(FedmarketError, match="^malformed CID"):
            store.get(bad)
        with pytest.raises(FedmarketError, match="^malformed CID"):
            store.has(bad)


def test_missing_source_file_is_one_line(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "blobs")
    with pytest.raises(FedmarketError, match=r"^cannot store .*nope: No such file or directory$"):
        store.add_file(tmp_path / "nope")
    assert leftovers(tmp_path / "blobs") == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],  # truncated
        lambda data: data + b"\0",  # grown
        lambda data: bytes([data[0] ^ 1]) + data[1:],  # one bit flipped
        lambda data: b"",  # emptied
    ],
)
def test_corrupted_file_is_reported_never_returned_and_re_add_repairs(tmp_path: Path, damage) -> None:
    store = EmbeddedStore(tmp_path)
    data = blob(2, CHUNK_SIZE + 100)
    cid = store.add(data)
    path = store.path_of(cid)
    path.write_bytes(damage(data))
    with pytest.raises(FedmarketError, match=f"^stored blob {path} is corrupted: content does not match CID {cid}$"):
        store.get(cid)
    assert store.add(data) == cid
    assert store.get(cid) == data


def test_blob_under_a_wrong_name_is_refused(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    other = store.add(b"another blob")
    target = store.path_of(HELLO_WORLD)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(store.path_of(other), target)  # right bytes, wrong name
    with pytest.raises(FedmarketError, match="content does not match CID"):
        store.get(HELLO_WORLD)


def test_unwritable_root_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(FedmarketError, match="^cannot create the embedded store at"):
        EmbeddedStore(blocker / "blobs")


# ----------------------------------------------------------------------------- several processes

ROUNDS = 30
SIZE = 2 * CHUNK_SIZE + 3  # three leaves: a write is not one syscall


def shared_blob(round_: int) -> bytes:
    return blob(5000 + round_, SIZE)


def _writer(root: str, worker: int, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    store = EmbeddedStore(Path(root))
    start.wait()
    cids = []
    for round_ in range(ROUNDS):
        cids.append(store.add(shared_blob(round_)))  # every writer races to write the same new blob
        cids.append(store.add(blob(1000 * worker + round_, 50_000 + round_)))  # and one of its own
    results.put(("writer", worker, cids))


def _reader(root: str, cids: list[str], start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    # Reads while writers create the shared blobs: "not there yet" or the whole blob, nothing else.
    store = EmbeddedStore(Path(root))
    start.wait()
    seen = 0
    for _ in range(20):
        for round_, cid in enumerate(cids):
            try:
                assert store.get(cid) == shared_blob(round_)
                seen += 1
            except FedmarketError as exc:
                assert "is not in the embedded store" in str(exc), str(exc)
    results.put(("reader", seen, []))


def test_concurrent_processes_write_and_read_safely(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")  # fresh interpreters, like separate agents
    writers, readers = 4, 2
    start = context.Barrier(writers + readers)  # all begin at once, after their imports
    results = context.Queue()
    shared = [cid_of(shared_blob(r)) for r in range(ROUNDS)]
    processes = [context.Process(target=_writer, args=(str(tmp_path), w, start, results)) for w in range(writers)]
    processes += [context.Process(target=_reader, args=(str(tmp_path), shared, start, results)) for _ in range(readers)]
    for process in processes:
        process.start()
    reports = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    store = EmbeddedStore(tmp_path)
    written = [r for r in reports if r[0] == "writer"]
    assert len(written) == writers and sum(r[0] == "reader" for r in reports) == readers
    for _, worker, cids in written:
        assert cids[0::2] == shared
        for round_, cid in enumerate(cids[1::2]):
            assert store.get(cid) == blob(1000 * worker + round_, 50_000 + round_)
    assert [store.get(cid) for cid in shared] == [shared_blob(r) for r in range(ROUNDS)]
    assert leftovers(tmp_path) == []
    assert sum(1 for _ in tmp_path.rglob("Qm*")) == ROUNDS + writers * ROUNDS
