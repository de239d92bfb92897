"""Separation cosine: how well an update points up the validator's class-separation gradient.

The reference direction is the gradient, at the global model, of a one-vs-rest separation
contrast on the validator's held-out data,

    S(w) = (1/|K|) sum_{k in K} ( mean_{i: y_i = k} log p_w(k | x_i)  -  mean_{i: y_i != k} log p_w(k | x_i) ),

K the classes present in the data (with at least one sample outside them): how much more probable
class k is on its own samples than on the others. Update i scores cos(delta_i, grad S(w_g)) less
the chance margin, under the norm and loss guards of reference.py (whose norm guard needs the
validator's trained reference update). Scoring an update by its alignment with a gradient on
clean data is the idea of TracIn (Pruthi, Liu, Kale, Sundararajan, "Estimating Training Data
Influence by Tracing Gradient Descent", NeurIPS 2020) and of FLTrust's server update; the
contrast S is this project's choice, made by measurement.

Why a contrast rather than the loss: the cross-entropy gradient also carries what any training
on digit images produces whatever the labels (the scale of the logits, the class priors). A
label-flipped update shares that part and so keeps a positive cosine with a cross-entropy
reference. The contrast is blind to a shift of class k's log-probability that is the same on every
sample, and rewards telling classes apart. Fairness benchmark (bench/results/fairness.md: digits,
Dir(0.3), 10 trainers, 8 rounds, 3 seeds): with an MLP every honest update scored > 0 and label
flippers took 0.26 % (lr 0.05) and 0.01 % (lr 0.005) of the trainer pool, against 0.26 % and
2.6 % for the reference cosine. Its limit there: with the CNN at lr 0.05 one sign-flipped update
in 24 scored > 0 (+0.08, 0.18 % of the pool): the honest update it reversed pointed against the
separation gradient, as a late-round update on two classes sometimes does.

Regression tasks have no classes: there the direction is the negative gradient of the MSE.
The gradient is computed in float64 on the CPU, so it does not depend on the device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from fedmarket.fl.utility.base import (
    RoundView,
    ScoringRequest,
    cosine,
)
from fedmarket.fl.utility.reference import guarded_scores, train_reference

CHUNK = 512  # validator samples per forward/backward pass: bounds memory on large validation sets


def separation_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Coefficients c[i, k] with S = sum_{i,k} c[i, k] log p(k | x_i): S is linear in the log-probabilities.

    c[i, k] = +1 / (|K| n_k) when y_i = k and -1 / (|K| (N - n_k)) otherwise, for every class k in
    K (present with n_k samples, and not every sample); 0 for the other classes.
    """
    labels = np.asarray(labels, dtype=np.int64)
    onehot = np.zeros((len(labels), num_classes), dtype=np.float64)
    onehot[np.arange(len(labels)), labels] = 1.0
    inside = onehot.sum(axis=0)
    outside = len(labels) - inside
    present = (inside > 0) & (outside > 0)
    weights = np.zeros_like(onehot)
    count = int(present.sum())
    if count == 0:
        return weights  # one class only: nothing to separate
    for k in np.flatnonzero(present):
        weights[:, k] = np.where(onehot[:, k] == 1.0, 1.0 / inside[k], -1.0 / outside[k]) / count
    return weights


def separation_contrast(log_probs: Tensor, labels: Tensor) -> Tensor:
    """S for given log-probabilities (N, K) and labels (N,)."""
    weights = torch.as_tensor(separation_weights(labels.numpy(), log_probs.shape[1]), dtype=log_probs.dtype)
    return (weights * log_probs).sum()


def separation_direction(view: RoundView) -> np.ndarray:
    """grad S at the global model (classification) or -grad MSE (regression), float64, sorted keys."""
    if view.task == "regression":
        return _gradients(view, [None])[0]
    return _gradients(view, [separation_weights(view.data.y, view.spec.num_outputs)])[0]


def class_directions(view: RoundView) -> list[np.ndarray]:
    """grad S_k per class k present (S = sum_k S_k, each S_k carrying its 1 / |K|): the directions
    in which the validator's data tells one class from the others; their sum is grad S. For
    regression the one direction -grad MSE."""
    if view.task == "regression":
        return _gradients(view, [None])
    weights = separation_weights(view.data.y, view.spec.num_outputs)
    columns = []
    for k in np.flatnonzero(np.any(weights != 0.0, axis=0)):
        only = np.zeros_like(weights)
        only[:, k] = weights[:, k]
        columns.append(only)
    return _gradients(view, columns)


def _gradients(view: RoundView, objectives: list[np.ndarray | None]) -> list[np.ndarray]:
    """For each weight matrix w in `objectives`, the gradient at the global model of
    sum_{i,k} w[i, k] log p(k | x_i) (None: of minus the MSE), float64 on the CPU in sorted key
    order; one forward pass per chunk serves them all.

    Each objective is a fixed weighted sum of per-sample terms, so its gradient is accumulated
    chunk by chunk (in sample order, a fixed order of additions) without holding every
    activation at once.
    """
    model = view.spec.build().to(torch.float64)
    params = {k: view.global_state[k].to(torch.float64).clone().requires_grad_(True) for k in view.names}
    x_all = np.asarray(view.data.x)
    n = len(x_all)
    targets = np.asarray(view.data.y, dtype=np.float64)
    totals = [[torch.zeros_like(params[k]) for k in view.names] for _ in objectives]
    for start in range(0, n, CHUNK):
        x = torch.as_tensor(x_all[start : start + CHUNK], dtype=torch.float64)
        outputs = functional_call(model, params, (x,))
        log_probs = None
        for j, weights in enumerate(objectives):
            if weights is None:
                y = torch.as_tensor(targets[start : start + CHUNK])
                objective = -((outputs.squeeze(-1) - y) ** 2).sum() / n
            else:
                if log_probs is None:
                    log_probs = torch.log_softmax(outputs, dim=1)
                objective = (torch.as_tensor(weights[start : start + CHUNK]) * log_probs).sum()
            grads = torch.autograd.grad(objective, [params[k] for k in view.names], allow_unused=True, retain_graph=j < len(objectives) - 1)
            for acc, g in zip(totals[j], grads):
                if g is not None:
                    acc += g.detach()
    return [np.concatenate([t.reshape(-1).numpy() for t in total]).astype(np.float64) for total in totals]


def separation_cosine_scores(request: ScoringRequest) -> list[float]:
    """Guarded cos(delta_i, grad S) per update."""
    config = request.train
    view = request.view()
    direction = separation_direction(view)
    reference = train_reference(view, config, request.seed)
    alignments = [0.0 if d is None else cosine(d, direction) for d in view.deltas]
    return guarded_scores(view, alignments, reference, config)
