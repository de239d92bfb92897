"""CMFL's two selection strategies: which of the scored updates the round aggregates.

Che et al., "A Decentralized Federated Learning Framework via Committee Mechanism with
Convergence Guarantee" (CMFL, IEEE TPDS 2022). The committee scores every training client's
update (fl.utility.cmfl_distance); a selection strategy then picks k of them and the picked
updates are averaged FedAvg-style (by the given weights, normally sample counts, in client order):

    S1 (cmfl_s1, robust)        the k best-scored updates: an outlier the committee scores low
                                is left out.
    S2 (cmfl_s2, heterogeneous) k updates spread over the ranking, at the rank quantiles
                                round(j (n - 1) / (k - 1)), j = 0 .. k-1, best first: the best,
                                the worst and evenly between. Under non-IID data the updates far
                                from the committee's are other clients' label mixes, which S1
                                would never aggregate; S2 trades S1's robustness for that coverage.

Ranks order the scores from best to worst; equal scores keep client order (the earlier client
ranks higher). k defaults to ceil(n / 2) at call time and is clamped to n. The rules take the
scores as a third argument (ScoredRule in fl.aggregation): `fl.aggregation.get_scored_rule`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation.states import StateDict, check_states, weighted_average


def ranking(scores: Sequence[float]) -> list[int]:
    """Client indices from the best score to the worst; ties keep client order."""
    return sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))


def _count(n: int, k: int | None) -> int:
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise FedmarketError(f"a CMFL selection needs k >= 1 updates to aggregate, got {k!r}")
    return min(math.ceil(n / 2) if k is None else k, n)


def select_best(scores: Sequence[float], k: int | None = None) -> list[int]:
    """S1: the indices of the k best-scored updates, in client order."""
    return sorted(ranking(scores)[: _count(len(scores), k)])


def select_spread(scores: Sequence[float], k: int | None = None) -> list[int]:
    """S2: the indices at the rank quantiles round(j (n - 1) / (k - 1)) of the ranking, in client order.

    k = 1 picks the best; the quantile ranks are distinct because k <= n.
    """
    n = len(scores)
    keep = _count(n, k)
    ranked = ranking(scores)
    if keep == 1:
        return [ranked[0]]
    # Exact integer rounding (half up) of j (n - 1) / (keep - 1): no float in the choice.
    ranks = [(2 * j * (n - 1) + keep - 1) // (2 * (keep - 1)) for j in range(keep)]
    return sorted(ranked[r] for r in ranks)


def _aggregate_selected(
    states: Sequence[StateDict],
    weights: Sequence[float],
    scores: Sequence[float],
    select: Callable[[Sequence[float], int | None], list[int]],
    k: int | None,
    name: str,
) -> StateDict:
    names = check_states(states, weights)
    if len(scores) != len(states):
        raise FedmarketError(f"{name} got {len(states)} states but {len(scores)} scores")
    if any(isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(float(s)) for s in scores):
        raise FedmarketError(f"{name} needs one finite score per update, got {list(scores)}")
    chosen = select(scores, k)
    picked = [float(weights[i]) for i in chosen]
    if any(w < 0 for w in picked) or sum(picked) <= 0:
        raise FedmarketError(f"{name} weights of the selected updates must be non-negative with a positive sum, got {picked}")
    return weighted_average([states[i] for i in chosen], picked, names)


def cmfl_s1(states: Sequence[StateDict], weights: Sequence[float], scores: Sequence[float], k: int | None = None) -> StateDict:
    """S1: the weighted average of the k best-scored updates."""
    return _aggregate_selected(states, weights, scores, select_best, k, "cmfl_s1")


def cmfl_s2(states: Sequence[StateDict], weights: Sequence[float], scores: Sequence[float], k: int | None = None) -> StateDict:
    """S2: the weighted average of k updates at the rank quantiles of the scores."""
    return _aggregate_selected(states, weights, scores, select_spread, k, "cmfl_s2")
