"""Trust graphs: which clients of the semi-centralised mode talk to each other directly.

The seed paper connects clients peer to peer where they trust each other and leaves the rest to
the blockchain; it does not say how the trust relation is drawn, so these shapes are offered
(one spec string, as `fedmarket sim --trust` takes it):

- ``ring``: client i trusts i - 1 and i + 1 (mod N): degree 2, one connected component.
- ``kregular:K``: the circulant graph where i trusts i +- 1 .. i +- K/2 (mod N); an odd K adds the
  opposite client i + N/2 (so N must then be even). Every degree is exactly K.
- ``random:D``: a uniformly drawn-looking random D-regular graph (Steger and Wormald 1999, "Generating
  random regular graphs quickly": pair free degree slots at random, never a loop or a double edge,
  restart when stuck), seeded by fl.seeds.trust_graph_seed. It may be disconnected.
- ``none``: nobody trusts anybody (every model comes through the chain).
- a file path: JSON ``{"clients": N, "edges": [[a, b], ...]}`` or text with one ``a b`` pair per
  line (``#`` starts a comment); clients are 0-based, edges undirected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedmarket.errors import FedmarketError
from fedmarket.fl.seeds import trust_graph_seed

TRUST_SPECS = ("ring", "kregular:K", "random:D", "none", "FILE")
RANDOM_RESTARTS = 200  # Steger-Wormald restarts before a degree is declared impossible to draw
PAIR_TRIES = 100  # random slot pairs tried before checking whether any valid pair is left


@dataclass(frozen=True)
class TrustGraph:
    """An undirected graph over clients 0..N-1 without loops: neighbours[i] are whom i trusts."""

    name: str
    neighbours: tuple[frozenset[int], ...]

    @property
    def num_clients(self) -> int:
        return len(self.neighbours)

    def degree(self, client: int) -> int:
        return len(self.neighbours[client])

    def edges(self) -> list[tuple[int, int]]:
        return sorted((a, b) for a, ns in enumerate(self.neighbours) for b in ns if a < b)

    def to_dict(self) -> dict:
        return {"name": self.name, "clients": self.num_clients, "edges": [list(e) for e in self.edges()]}


def from_edges(name: str, clients: int, edges: list[tuple[int, int]]) -> TrustGraph:
    """The graph with these undirected edges; refuses loops and clients outside 0..clients-1."""
    sets: list[set[int]] = [set() for _ in range(clients)]
    for a, b in edges:
        if not (0 <= a < clients and 0 <= b < clients):
            raise FedmarketError(f"trust edge ({a}, {b}) names a client outside 0..{clients - 1}")
        if a == b:
            raise FedmarketError(f"trust edge ({a}, {b}) is a loop: a client cannot be its own neighbour")
        sets[a].add(b)
        sets[b].add(a)
    return TrustGraph(name, tuple(frozenset(s) for s in sets))


def ring(clients: int) -> TrustGraph:
    return from_edges("ring", clients, [(i, (i + 1) % clients) for i in range(clients) if clients > 1 and i != (i + 1) % clients])


def k_regular(clients: int, k: int) -> TrustGraph:
    """The circulant K-regular graph (i trusts i +- 1 .. i +- K/2, and i + N/2 when K is odd)."""
    if not 0 <= k < clients:
        raise FedmarketError(f"kregular:{k} needs 0 <= K < clients ({clients})")
    if k % 2 == 1 and clients % 2 == 1:
        raise FedmarketError(f"kregular:{k} with an odd K needs an even number of clients, not {clients}")
    edges = [(i, (i + step) % clients) for i in range(clients) for step in range(1, k // 2 + 1)]
    if k % 2 == 1:
        edges += [(i, i + clients // 2) for i in range(clients // 2)]
    return from_edges(f"kregular:{k}", clients, edges)


def _pair_slots(clients: int, degree: int, rng: np.random.Generator) -> list[tuple[int, int]] | None:
    """One Steger-Wormald attempt: the edges of a D-regular graph, or None when it got stuck."""
    slots = [v for v in range(clients) for _ in range(degree)]
    edges: set[tuple[int, int]] = set()
    while slots:
        for _ in range(PAIR_TRIES):
            i, j = rng.choice(len(slots), size=2, replace=False)
            a, b = sorted((slots[i], slots[j]))
            if a != b and (a, b) not in edges:
                break
        else:
            valid = [
                (i, j) for i in range(len(slots)) for j in range(i + 1, len(slots)) if slots[i] != slots[j] and tuple(sorted((slots[i], slots[j]))) not in edges
            ]
            if not valid:
                return None
            i, j = valid[int(rng.integers(len(valid)))]
            a, b = sorted((slots[i], slots[j]))
        edges.add((a, b))
        for index in sorted((i, j), reverse=True):
            slots.pop(index)
    return sorted(edges)


def random_regular(clients: int, degree: int, seed: int) -> TrustGraph:
    if not 0 <= degree < clients or (clients * degree) % 2:
        raise FedmarketError(f"random:{degree} needs 0 <= D < clients ({clients}) and clients x D even")
    rng = np.random.default_rng(trust_graph_seed(seed))
    for _ in range(RANDOM_RESTARTS):
        edges = _pair_slots(clients, degree, rng)
        if edges is not None:
            return from_edges(f"random:{degree}", clients, edges)
    raise FedmarketError(f"could not draw a random {degree}-regular graph on {clients} clients")


def read_graph_file(path: Path, clients: int) -> TrustGraph:
    """A trust graph from a JSON or an edge-list file (see the module docstring)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise FedmarketError(f"cannot read trust graph file {path}: {exc.strerror}") from None
    try:
        if text.lstrip().startswith("{"):
            data = json.loads(text)
            if int(data.get("clients", clients)) != clients:
                raise FedmarketError(f"trust graph file {path} is for {data['clients']} clients, the run has {clients}")
            edges = [(int(a), int(b)) for a, b in data["edges"]]
        else:
            rows = [line.split("#", 1)[0].split() for line in text.splitlines()]
            edges = [(int(r[0]), int(r[1])) for r in rows if r]
            if any(len(r) != 2 for r in rows if r):
                raise ValueError
    except (ValueError, KeyError, TypeError):
        raise FedmarketError(f"trust graph file {path}: write JSON {{'edges': [[a, b], ...]}} or one 'a b' pair per line") from None
    return from_edges(str(path), clients, edges)


def _count(spec: str, kind: str) -> int:
    try:
        return int(spec.split(":", 1)[1])
    except (IndexError, ValueError):
        raise FedmarketError(f"bad trust graph {spec!r}; write {kind}:N with a whole number N") from None


def trust_graph(spec: str, clients: int, seed: int) -> TrustGraph:
    """Parse `spec` (ring, kregular:K, random:D, none or a file path) into the graph over `clients`."""
    if spec == "ring":
        return ring(clients)
    if spec == "none":
        return from_edges("none", clients, [])
    if spec.startswith("kregular:"):
        return k_regular(clients, _count(spec, "kregular"))
    if spec.startswith("random:"):
        return random_regular(clients, _count(spec, "random"), seed)
    path = Path(spec)
    if path.is_file():
        return read_graph_file(path, clients)
    raise FedmarketError(f"unknown trust graph {spec!r}; use ring, kregular:K, random:D, none or a file of edges")
