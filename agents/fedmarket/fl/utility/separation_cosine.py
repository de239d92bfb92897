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

Why a contrast rather than the loss: the cross-entropy gradient is dominated, early in training
and at small learning rates, by components any training on digit images produces whatever the
labels (the scale of the logits, the class priors). A label-flipped update shares those and so
keeps a positive cosine with a cross-entropy reference; an honest update on two classes can lose
its cosine when the priors dominate. The contrast is blind to a shift of class k's log-probability
that is the same on every sample, and rewards only telling classes apart. On digits, Dir(0.3), an
MLP, it paid label flippers nothing at lr 0.005 where the reference cosine paid them a few
percent, and kept every honest update positive (fairness benchmark).

Regression tasks have no classes: there the direction is the negative gradient of the MSE.
The gradient is computed in float64 on the CPU, so it does not depend on the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from fedmarket.fl.models import ModelSpec
from fedmarket.fl.training import TrainConfig
from fedmarket.fl.utility.base import RoundView, State, Update, ValidationData, cosine, round_view
from fedmarket.fl.utility.reference import guarded_scores, train_reference


def separation_contrast(log_probs: Tensor, labels: Tensor) -> Tensor:
    """S: mean over present classes of (mean log p(k|x) on class k) - (mean log p(k|x) on the rest).

    Classes with no sample, or with every sample, are left out (their contrast is undefined).
    """
    num_classes = log_probs.shape[1]
    onehot = torch.nn.functional.one_hot(labels, num_classes).to(log_probs.dtype)
    inside = onehot.sum(dim=0)
    outside = onehot.shape[0] - inside
    present = (inside > 0) & (outside > 0)
    if not bool(present.any()):
        return log_probs.sum() * 0.0  # one class only: nothing to separate, zero gradient
    mean_in = (onehot * log_probs).sum(dim=0) / inside.clamp(min=1)
    mean_out = ((1.0 - onehot) * log_probs).sum(dim=0) / outside.clamp(min=1)
    return (mean_in - mean_out)[present].mean()


def separation_direction(view: RoundView) -> np.ndarray:
    """grad S at the global model (classification) or -grad MSE (regression), float64, sorted keys."""
    model = view.spec.build().to(torch.float64)
    params = {k: view.global_state[k].to(torch.float64).clone().requires_grad_(True) for k in view.names}
    x = torch.as_tensor(view.data.x, dtype=torch.float64)
    outputs = functional_call(model, params, (x,))
    if view.task == "regression":
        y = torch.as_tensor(view.data.y, dtype=torch.float64)
        objective = -torch.nn.functional.mse_loss(outputs.squeeze(-1), y)
    else:
        labels = torch.as_tensor(view.data.y, dtype=torch.int64)
        objective = separation_contrast(torch.log_softmax(outputs, dim=1), labels)
    grads = torch.autograd.grad(objective, [params[k] for k in view.names], allow_unused=True)
    parts = [
        (torch.zeros_like(params[k]) if g is None else g).detach().reshape(-1).numpy()
        for k, g in zip(view.names, grads)
    ]
    return np.concatenate(parts).astype(np.float64)


def separation_cosine_scores(global_state: State, updates: Sequence[Update], data: ValidationData, spec: ModelSpec,
                             *, seed: int, train: TrainConfig | None = None, device: str = "cpu") -> list[float]:
    """Guarded cos(delta_i, grad S) per update."""
    config = train or TrainConfig()
    view = round_view(global_state, updates, data, spec, device)
    direction = separation_direction(view)
    reference = train_reference(view, config, seed)
    alignments = [0.0 if d is None else cosine(d, direction) for d in view.deltas]
    return guarded_scores(view, alignments, reference, config)
