"""Gossip within the trusted component: how a client's new model reaches the clients it trusts.

The seed paper: a client sends its new local model to its trusted neighbours, and each neighbour
forwards it until every client of the connected trusted component has it. That is a flood over
the trust graph; `flood` returns, for every client the model reaches, the number of hops it took
(the source: 0), in breadth-first order, which is the order a real flood delivers in when every
link is equally fast. The simulation delivers a gossiped model at the virtual time it was sent
(links are not modelled as slower than a client's compute); the hops are kept for the record.
"""

from __future__ import annotations

from collections import deque

from fedmarket.fl.semi.trust import TrustGraph


def flood(graph: TrustGraph, source: int) -> dict[int, int]:
    """Client -> hops for every client a model gossiped by `source` reaches (its component)."""
    hops = {source: 0}
    frontier = deque([source])
    while frontier:
        client = frontier.popleft()
        for neighbour in sorted(graph.neighbours[client]):
            if neighbour not in hops:
                hops[neighbour] = hops[client] + 1
                frontier.append(neighbour)
    return hops


def components(graph: TrustGraph) -> list[frozenset[int]]:
    """The connected trusted components, each once, ordered by their smallest client."""
    seen: set[int] = set()
    found = []
    for client in range(graph.num_clients):
        if client not in seen:
            component = frozenset(flood(graph, client))
            seen |= component
            found.append(component)
    return found
