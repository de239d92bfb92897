"""Krum and Multi-Krum.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine Tolerant
Gradient Descent", NeurIPS 2017. With n clients of which at most f are Byzantine, the score of
client i is the sum of squared Euclidean distances from its model to its n - f - 2 nearest
neighbours; Krum returns the model with the lowest score, Multi-Krum averages the m
lowest-scoring models (here weighted by the given weights, normally sample counts, like FedAvg
over the selected set).

The paper's guarantee needs n >= 2f + 3. With fewer clients the rule still answers, using at least
one neighbour (as Flower does), so that a round with few accepted updates can still be aggregated;
the guarantee then does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation.states import (
    StateDict,
    check_states,
    stacked,
    to_state,
    weighted_average,
)

DEFAULT_F = 1


def pairwise_squared_distances(states: Sequence[StateDict], names: Sequence[str]) -> np.ndarray:
    """(n, n) float64 matrix of squared Euclidean distances between whole models.

    Accumulated parameter by parameter in the key order; each per-parameter sum is NumPy's
    (single-threaded, order fixed by the array layout), so the matrix is reproducible.
    """
    n = len(states)
    dist = np.zeros((n, n), dtype=np.float64)
    for name in names:
        block = stacked(states, name)
        for i in range(n):
            for j in range(i + 1, n):
                diff = block[i] - block[j]
                d = float(np.sum(diff * diff))
                dist[i, j] += d
                dist[j, i] += d
    return dist


def krum_scores(dist: np.ndarray, f: int) -> np.ndarray:
    """Score of each client: sum of squared distances to its n - f - 2 nearest others (>= 1)."""
    n = dist.shape[0]
    neighbours = max(n - f - 2, 1)
    scores = np.zeros(n, dtype=np.float64)
    for i in range(n):
        others = np.sort(np.delete(dist[i], i))
        scores[i] = float(np.sum(others[:neighbours]))
    return scores


def select_krum(states: Sequence[StateDict], f: int, m: int, names: Sequence[str]) -> list[int]:
    """Indices of the m lowest Krum scores; ties go to the earlier client (stable sort)."""
    if len(states) == 1:
        return [0]
    scores = krum_scores(pairwise_squared_distances(states, names), f)
    return [int(i) for i in np.argsort(scores, kind="stable")[:m]]


def _check_f(f: int) -> None:
    if isinstance(f, bool) or not isinstance(f, int) or f < 0:
        raise FedmarketError(f"krum f (number of Byzantine clients) must be a non-negative integer, got {f!r}")


def krum(states: Sequence[StateDict], weights: Sequence[float], f: int = DEFAULT_F) -> StateDict:
    """The single client model with the lowest Krum score, returned unchanged (weights unused)."""
    _check_f(f)
    names = check_states(states, weights)
    chosen = select_krum(states, f, 1, names)[0]
    source = states[chosen]
    return to_state(names, {name: source[name].detach().to("cpu").reshape(-1).numpy() for name in names}, source)


def multikrum(states: Sequence[StateDict], weights: Sequence[float], f: int = DEFAULT_F, m: int | None = None) -> StateDict:
    """Weighted average of the m lowest-scoring models; m defaults to n - f (at least 1).

    m larger than n is clamped to n. The weights of the selected models must be non-negative with
    a positive sum.
    """
    _check_f(f)
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
        raise FedmarketError(f"multikrum m (models to average) must be a positive integer, got {m!r}")
    names = check_states(states, weights)
    n = len(states)
    keep = min(m if m is not None else max(n - f, 1), n)
    chosen = sorted(select_krum(states, f, keep, names))  # average in client order, not score order
    picked_weights = [float(weights[i]) for i in chosen]
    if any(w < 0 for w in picked_weights) or sum(picked_weights) <= 0:
        raise FedmarketError(f"multikrum weights of the selected models must be non-negative with a positive sum, got {picked_weights}")
    return weighted_average([states[i] for i in chosen], picked_weights, names)
