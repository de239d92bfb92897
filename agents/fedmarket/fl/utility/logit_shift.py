"""The logit-shift test: a classifier's update that gradient descent cannot have produced.

Softmax cross-entropy does not change when the same constant is added to every class's logit, so
its gradient has no component along the parameter directions that do exactly that: in the output
layer z = W h + b (K classes), the bias direction (1, ..., 1) / sqrt(K) and, for each input unit j
of that layer, the column direction W[:, j] = (1, ..., 1) / sqrt(K). (The gradient of the loss
with respect to W[:, j] is (p - y) h_j, whose entries sum to 0 because p and y both sum to 1.)
SGD, with or without momentum, moves the weights by sums of such gradients, so every honest update
of a softmax classifier has a zero component along these directions, up to float32 rounding
(measured on digits with the MLP: at most 4e-7 of the output layer's change, against 0.30 to 0.34
for Gaussian noise and 0.40 to 0.42 for ALIE).

An update whose output-layer change has more than SHIFT_TOLERANCE of its length along them was
fabricated, not trained: ALIE's mean + z * std (Baruch et al., NeurIPS 2019) shifts every
coordinate the same way, since std >= 0, and so does any one-sided perturbation; noise has its
chance share, sqrt(1 / K) of its length (the directions are H + 1 of the layer's K (H + 1)), far
above rounding. An attacker who knows the
test can project its perturbation off these directions; the test then no longer sees it, and the
other guards judge what is left.

The output layer is found, not assumed: the last (K, H) weight with a (K,) bias (or none) whose
columns, shifted along these directions, leave the model's log-probabilities on the validator's
inputs unchanged; a model without such a layer (regression, a final non-linearity) is not tested.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.func import functional_call

from fedmarket.fl.utility.base import RoundView

SHIFT_TOLERANCE = 1e-2  # share of the output layer's change along the logit-shift directions
_INVARIANCE_CHECK = 1e-6  # log-probabilities may move this much under a unit shift (float64 rounding)
_CHECK_SAMPLES = 32


class OutputLayer:
    """Where the output layer's weight (K, H) and bias (K,) sit in a round's flat delta vectors."""

    def __init__(self, weight: slice, shape: tuple[int, int], bias: slice | None) -> None:
        self.weight, self.shape, self.bias = weight, shape, bias

    def shift_share(self, delta: np.ndarray) -> float:
        """|delta's component along the logit-shift directions| / |delta's output-layer part|; 0 when that part is 0."""
        w = delta[self.weight].reshape(self.shape)
        along = float(np.einsum("j,j->", w.sum(axis=0), w.sum(axis=0))) / self.shape[0]
        total = float(np.einsum("kj,kj->", w, w))
        if self.bias is not None:
            b = delta[self.bias]
            along += float(b.sum()) ** 2 / self.shape[0]
            total += float(np.einsum("k,k->", b, b))
        return math.sqrt(along / total) if total > 0 else 0.0


def output_layer(view: RoundView) -> OutputLayer | None:
    """The layer whose logit shifts the loss ignores, checked on the validator's inputs; None when there is none."""
    if view.task != "classification":
        return None
    k = view.spec.num_outputs
    offsets: dict[str, slice] = {}
    start = 0
    for name in view.names:
        n = view.global_state[name].numel()
        offsets[name] = slice(start, start + n)
        start += n
    for name in reversed(view.names):
        shape = tuple(view.global_state[name].shape)
        if not name.endswith("weight") or len(shape) != 2 or shape[0] != k:
            continue
        bias_name = name[: -len("weight")] + "bias"
        bias = offsets.get(bias_name) if bias_name in view.global_state and tuple(view.global_state[bias_name].shape) == (k,) else None
        layer = OutputLayer(offsets[name], (shape[0], shape[1]), bias)
        if _invariant(view, name, bias_name if bias is not None else None):
            return layer
    return None


def _invariant(view: RoundView, weight: str, bias: str | None) -> bool:
    """Whether shifting every class's weights (and bias) by the same per-input amount leaves the
    log-probabilities of the first validator inputs unchanged (float64)."""
    model = view.spec.build().to(torch.float64)
    params = {name: view.global_state[name].to(torch.float64) for name in view.names}
    x = torch.as_tensor(np.asarray(view.data.x[:_CHECK_SAMPLES]), dtype=torch.float64)
    shifted = dict(params)
    columns = torch.linspace(-1.0, 1.0, params[weight].shape[1], dtype=torch.float64)
    shifted[weight] = params[weight] + columns.expand_as(params[weight])
    if bias is not None:
        shifted[bias] = params[bias] + 1.0
    with torch.no_grad():
        before = torch.log_softmax(functional_call(model, params, (x,)), dim=1)
        after = torch.log_softmax(functional_call(model, shifted, (x,)), dim=1)
    return bool(torch.allclose(before, after, rtol=0.0, atol=_INVARIANCE_CHECK * (1.0 + float(before.abs().max()))))
