"""Loss decrease on the validator's data: the update alone, or at its aggregate weight.

`loss_delta` is the literal individual value v({i}) of data-valuation work (e.g. Jia et al.,
"Towards Efficient Data Valuation Based on the Shapley Value", AISTATS 2019, with v(S) the
performance of the model trained on S): u_i = L(w_g) - L(w_i), the validation loss the global
model loses when replaced by trainer i's model. Under non-IID data this fails: a trainer that saw
two classes forgets the other eight, so most honest updates score negative.

`weighted_loss_delta` applies the update at the weight FedAvg would give it,
u_i = L(w_g) - L(w_g + p_i (w_i - w_g)) with p_i = n_i / sum_j n_j: the first-order share of the
round's improvement. It pays label flippers (their update first lowers the loss, then raises it)
and misses scaled updates of small trainers; it stays in the registry for comparison.
"""

from __future__ import annotations

from fedmarket.fl.utility.base import (
    ScoringRequest,
    scores_or_malformed,
)


def loss_delta_scores(request: ScoringRequest) -> list[float]:
    """L(global) - L(update) on the validator's data, per update (seed and train unused)."""
    view = request.view()
    base = view.base_loss
    scores = [0.0 if d is None else base - view.loss(u.state) for d, u in zip(view.deltas, view.updates)]
    return scores_or_malformed(view, scores)


def weighted_loss_delta_scores(request: ScoringRequest) -> list[float]:
    """L(global) - L(global + p_i * delta_i), p_i the update's FedAvg weight (seed and train unused)."""
    view = request.view()
    base = view.base_loss
    scores = [0.0 if d is None else base - view.loss(view.state_at(d, p)) for d, p in zip(view.deltas, view.weights)]
    return scores_or_malformed(view, scores)
