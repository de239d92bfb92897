"""Size bounds on every blob read: a store refuses a blob over max_size while reading it, before
anyone parses it; the bound of a task's weights is the exact size of its weights file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedmarket.errors import FedmarketError
from fedmarket.storage import WeightsMeta, encode_weights, max_weights_size
from fedmarket.storage.cid import CHUNK_SIZE
from fedmarket.storage.embedded import EmbeddedStore
from fedmarket.storage.kubo import KuboStore


def test_the_embedded_store_refuses_a_blob_over_its_bound(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    data = bytes(range(256)) * 40
    cid = store.add(data)
    assert store.get(cid, max_size=len(data)) == data
    with pytest.raises(FedmarketError, match=f"larger than the {len(data) - 1} bytes"):
        store.get(cid, max_size=len(data) - 1)


def test_kubo_reads_stop_past_the_bound(kubo_url: str) -> None:
    data = b"\x01" * (2 * CHUNK_SIZE + 5)
    with KuboStore(kubo_url) as store:
        cid = store.add(data)
        assert store.get(cid, max_size=len(data)) == data
        assert store.get(cid) == data
        with pytest.raises(FedmarketError, match="larger than"):
            store.get(cid, max_size=CHUNK_SIZE)


def test_the_weights_bound_is_the_largest_file_the_model_can_have() -> None:
    state = {"fc.weight": torch.ones(3, 4), "fc.bias": torch.zeros(3), "steps": torch.zeros(1, dtype=torch.int64)}
    bound = max_weights_size(state, "linear-x")
    parent = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    for round_, p in ((0, None), (7, parent), (10**17, parent), (10**18 - 1, parent)):
        assert len(encode_weights(state, WeightsMeta("linear-x", round_, p))) <= bound
    assert len(encode_weights(state, WeightsMeta("linear-x", 10**18 - 1, parent))) == bound
    bigger = {**state, "extra": torch.zeros(1)}
    assert len(encode_weights(bigger, WeightsMeta("linear-x", 1, parent))) > bound
