"""Leave-one-out: what the round's FedAvg aggregate loses on the validator's data without update i.

The deletion method of Wang, Dang, Zhou, "Measure Contribution of Participants in Federated
Learning", IEEE Big Data 2019: u_i = L(FedAvg(N \\ {i})) - L(FedAvg(N)), N the round's well-formed
updates, weighted by sample counts; the aggregate of no update is the global model. It needs no
training, but a poisoned update in N distorts everyone else's score (with a x10-scaled update in
the round, every honest update's removal barely matters), and label flippers are paid in later
rounds. Kept for comparison.

The leave-one-out aggregates are computed from one float64 sum, sum_j n_j delta_j minus
n_i delta_i, then divided and cast to float32 once: deterministic, and n cheap subtractions
instead of n aggregations.
"""

from __future__ import annotations

import numpy as np

from fedmarket.fl.utility.base import (
    ScoringRequest,
    scores_or_malformed,
)


def loo_scores(request: ScoringRequest) -> list[float]:
    """L(aggregate without i) - L(aggregate of all), per update (seed and train unused)."""
    view = request.view()
    counts = [float(u.num_samples) if d is not None else 0.0 for d, u in zip(view.deltas, view.updates)]
    total = sum(counts)
    if total == 0:
        return scores_or_malformed(view, [0.0] * len(view.updates))
    weighted_sum = np.zeros(view.dim, dtype=np.float64)
    for d, n in zip(view.deltas, counts):  # client order: a fixed order of float64 additions
        if d is not None:
            weighted_sum += n * d
    loss_all = view.loss(view.state_at(weighted_sum / total))
    scores: list[float] = []
    for d, n in zip(view.deltas, counts):
        if d is None:
            scores.append(0.0)
            continue
        rest = total - n
        without = view.global_state if rest == 0 else view.state_at((weighted_sum - n * d) / rest)
        scores.append(view.loss(without) - loss_all)
    return scores_or_malformed(view, scores)
