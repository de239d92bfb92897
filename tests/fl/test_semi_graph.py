"""fl.semi's trust graphs and gossip: shapes, degrees, files, and the flood's reach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedmarket.errors import FedmarketError
from fedmarket.fl.semi.gossip import components, flood
from fedmarket.fl.semi.trust import trust_graph


def degrees(graph) -> list[int]:
    return [graph.degree(i) for i in range(graph.num_clients)]


def test_ring() -> None:
    graph = trust_graph("ring", 6, seed=0)
    assert degrees(graph) == [2] * 6
    assert graph.edges() == [(0, 1), (0, 5), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert trust_graph("ring", 2, 0).edges() == [(0, 1)] and trust_graph("ring", 1, 0).edges() == []


@pytest.mark.parametrize("clients, k", [(10, 4), (8, 3), (9, 2), (6, 5)])
def test_k_regular_has_degree_k(clients: int, k: int) -> None:
    graph = trust_graph(f"kregular:{k}", clients, seed=0)
    assert degrees(graph) == [k] * clients
    assert len(graph.edges()) == clients * k // 2
    assert all(i not in graph.neighbours[i] for i in range(clients))


def test_k_regular_circulant_neighbours() -> None:
    assert trust_graph("kregular:4", 10, 0).neighbours[0] == {1, 2, 8, 9}
    assert trust_graph("kregular:3", 8, 0).neighbours[0] == {1, 7, 4}


@pytest.mark.parametrize("clients, degree", [(10, 3), (20, 4), (12, 7)])
def test_random_graph_is_regular_and_seeded(clients: int, degree: int) -> None:
    graph = trust_graph(f"random:{degree}", clients, seed=1)
    assert degrees(graph) == [degree] * clients
    assert all(i not in graph.neighbours[i] for i in range(clients))
    assert graph == trust_graph(f"random:{degree}", clients, seed=1)
    assert graph.edges() != trust_graph(f"random:{degree}", clients, seed=2).edges()


@pytest.mark.parametrize("spec", ["kregular:3", "kregular:9", "random:3", "random:x", "star", "kregular:"])
def test_impossible_graphs_are_refused(spec: str) -> None:
    with pytest.raises(FedmarketError):
        trust_graph(spec, 9, seed=0)  # odd K on 9 clients, K >= N, N x D odd, no number, unknown


def test_graph_from_files(tmp_path: Path) -> None:
    text = tmp_path / "edges.txt"
    text.write_text("# two groups\n0 1\n1 2\n\n3 4  # a pair\n")
    graph = trust_graph(str(text), 6, seed=0)
    assert graph.edges() == [(0, 1), (1, 2), (3, 4)]
    as_json = tmp_path / "edges.json"
    as_json.write_text(json.dumps({"clients": 6, "edges": [[0, 1], [1, 2], [3, 4]]}))
    assert trust_graph(str(as_json), 6, seed=0).neighbours == graph.neighbours
    for bad in ("0 0\n", "0 9\n", "0 1 2\n"):
        text.write_text(bad)
        with pytest.raises(FedmarketError):
            trust_graph(str(text), 6, seed=0)
    with pytest.raises(FedmarketError, match="for 6 clients"):
        trust_graph(str(as_json), 5, seed=0)


def test_gossip_reaches_exactly_the_trusted_component(tmp_path: Path) -> None:
    edges = tmp_path / "edges.txt"
    edges.write_text("0 1\n1 2\n2 3\n4 5\n")  # {0, 1, 2, 3} a path, {4, 5} a pair, 6 alone
    graph = trust_graph(str(edges), 7, seed=0)
    assert flood(graph, 0) == {0: 0, 1: 1, 2: 2, 3: 3}  # forwarded hop by hop to the path's end
    assert flood(graph, 2) == {2: 0, 1: 1, 3: 1, 0: 2}
    assert flood(graph, 5) == {5: 0, 4: 1}
    assert flood(graph, 6) == {6: 0}
    assert components(graph) == [frozenset({0, 1, 2, 3}), frozenset({4, 5}), frozenset({6})]
    assert components(trust_graph("ring", 7, 0)) == [frozenset(range(7))]
    assert components(trust_graph("none", 3, 0)) == [frozenset({0}), frozenset({1}), frozenset({2})]
