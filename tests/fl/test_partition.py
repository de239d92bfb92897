"""Partitions: label statistics per scheme, determinism, the 75/25 split, coverage, minimum sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from fedmarket.errors import FedmarketError
from fedmarket.fl.datasets import load_dataset
from fedmarket.fl.partition import MIN_CLIENT_SAMPLES, parse_scheme, partition, target_bins


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return load_dataset("digits").y


def all_indices(p) -> np.ndarray:
    return np.concatenate([c.all for c in p.clients])


@pytest.mark.parametrize("scheme", ["iid", "pat:2", "dir:0.1", "dir:100"])
def test_no_overlap_and_every_index_covered(labels: np.ndarray, scheme: str) -> None:
    p = partition(labels, 20, scheme, seed=3)
    indices = all_indices(p)
    assert len(indices) == len(set(indices.tolist())), "an index belongs to two clients (or twice to one)"
    assert sorted(indices.tolist()) == list(range(len(labels)))


@pytest.mark.parametrize("scheme", ["iid", "pat:3", "dir:0.5"])
def test_local_split_is_75_25(labels: np.ndarray, scheme: str) -> None:
    for client in partition(labels, 20, scheme, seed=1).clients:
        n = len(client.train) + len(client.test)
        assert len(client.test) == max(1, (n + 2) // 4)  # round(n / 4), halves up
        assert not set(client.train.tolist()) & set(client.test.tolist())


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_pat_gives_exactly_k_labels_each_and_uses_every_label(labels: np.ndarray, k: int) -> None:
    p = partition(labels, 20, f"pat:{k}", seed=7)
    holders = np.zeros(10, dtype=int)
    for client in p.clients:
        held = np.unique(labels[client.all])
        assert len(held) == k
        holders[held] += 1
    # 20 * k label slots over 10 labels: every label held by exactly 2k clients.
    assert holders.tolist() == [2 * k] * 10


def test_pat_label_pairs_vary_between_clients(labels: np.ndarray) -> None:
    p = partition(labels, 20, "pat:2", seed=0)
    pairs = {tuple(np.unique(labels[c.all])) for c in p.clients}
    assert len(pairs) > 5  # not the same few pairs dealt over and over


def label_skew(labels: np.ndarray, p) -> float:
    """Mean total-variation distance between a client's label distribution and the global one."""
    overall = np.bincount(labels, minlength=10) / len(labels)
    distances = []
    for client in p.clients:
        local = np.bincount(labels[client.all], minlength=10) / len(client.all)
        distances.append(0.5 * np.abs(local - overall).sum())
    return float(np.mean(distances))


def test_dirichlet_alpha_controls_skew(labels: np.ndarray) -> None:
    skewed = label_skew(labels, partition(labels, 20, "dir:0.05", seed=0))
    uniform = label_skew(labels, partition(labels, 20, "dir:1000", seed=0))
    iid = label_skew(labels, partition(labels, 20, "iid", seed=0))
    assert skewed > 0.6
    assert uniform < 0.15 and iid < 0.15


def test_every_client_gets_the_minimum(labels: np.ndarray) -> None:
    p = partition(labels, 100, "dir:0.01", seed=5)
    assert min(len(c.all) for c in p.clients) >= MIN_CLIENT_SAMPLES
    assert min(len(c.train) for c in p.clients) >= 1 and min(len(c.test) for c in p.clients) >= 1
    assert sorted(all_indices(p).tolist()) == list(range(len(labels)))


def test_same_seed_same_partition_other_seed_differs(labels: np.ndarray) -> None:
    a = partition(labels, 20, "dir:0.1", seed=11)
    b = partition(labels, 20, "dir:0.1", seed=11)
    c = partition(labels, 20, "dir:0.1", seed=12)
    for x, y in zip(a.clients, b.clients):
        np.testing.assert_array_equal(x.train, y.train)
        np.testing.assert_array_equal(x.test, y.test)
    assert any(len(x.all) != len(z.all) or not np.array_equal(x.train, z.train) for x, z in zip(a.clients, c.clients))


def test_regression_splits_over_target_quantile_bins() -> None:
    d = load_dataset("diabetes")
    bins = target_bins(d.y)
    assert bins.min() == 0 and bins.max() == 9
    assert np.bincount(bins).min() >= 40  # near-equal counts: 442 / 10
    for scheme in ("iid", "dir:0.3"):
        p = partition(d.y, 10, scheme, seed=0)
        assert p.label_kind == "target bin"
        assert sorted(all_indices(p).tolist()) == list(range(len(d.y)))


def test_summary_counts_and_renders(labels: np.ndarray) -> None:
    p = partition(labels, 4, "pat:2", seed=0)
    summary = p.summary()
    assert [c.train + c.test for c in summary.clients] == [len(c.all) for c in p.clients]
    for row, client in zip(summary.clients, p.clients):
        assert sum(row.labels.values()) == len(client.all) and len(row.labels) == 2
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["scheme"] == "pat:2" and len(data["clients"]) == 4
    console = Console(record=True, width=120)
    console.print(summary)
    assert "client" in console.export_text()


@pytest.mark.parametrize("text", ["pat:0", "dir:0", "dir:-1", "dir:x", "shards", "iid:3", "pat:1.5"])
def test_bad_schemes_are_one_clear_error(text: str) -> None:
    with pytest.raises(FedmarketError, match="bad partition"):
        parse_scheme(text)


def test_impossible_requests_are_refused(labels: np.ndarray) -> None:
    with pytest.raises(FedmarketError, match="only 10"):
        partition(labels, 5, "pat:11", seed=0)
    with pytest.raises(FedmarketError, match="fewer clients"):
        partition(labels, 1000, "iid", seed=0)
    assert str(parse_scheme("dir")) == "dir:0.1" and str(parse_scheme("pat")) == "pat:2"
