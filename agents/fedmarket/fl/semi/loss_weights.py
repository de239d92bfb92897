"""Loss weights: a client weighs each model it holds by that model's loss on one batch of its data.

The seed paper (blockchain-assisted semi-centralised FL): client C_i scores every received and
downloaded model by its loss on one randomly sampled batch of C_i's own training data, and
aggregates with weights from those losses, lower loss giving a higher weight, times a staleness
compensation, normalised to sum to 1. Our copy of the paper does not give the formulas; chosen:

    w_j = exp(-L_j / T) * s_j  /  sum_k exp(-L_k / T) * s_k

a softmax of negative losses with temperature T (the Boltzmann weights of a loss, as in
mixture-of-experts gating; T -> infinity gives equal weights, T -> 0 keeps only the best model),
times s_j, fl.semi.staleness's polynomial (lag_j + 1)^-a. Losses are mean cross-entropy (MSE for
regression) of the model on the batch, the client's own new model included (lag 0). The softmax
is computed with the minimum loss subtracted, which leaves it unchanged and keeps exp() in range.
Ablations: loss weights off gives every model exp(0) = 1 (weights by staleness alone); staleness
off gives s_j = 1.

T is in nats of loss: a model L nats worse than the best keeps exp(-L / T) of its weight. The
default T = 0.1 (fl.semi.config; measurements in docs/semi.md "Aggregation weights"): with T = 1
the 19 other models of a 20-client Dir(0.1) run, each ~1-3 nats worse on the client's own
classes, still outweighed its own model together (own weight ~0.3), and semi fell 14 points
below training alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fedmarket.errors import FedmarketError
from fedmarket.fl.params import State
from fedmarket.fl.semi.config import DEFAULT_STALENESS_EXPONENT, DEFAULT_TEMPERATURE
from fedmarket.fl.semi.staleness import polynomial_staleness
from fedmarket.fl.training import loss_fn


def score_batch(train_indices: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
    """The one batch (indices into the data set) a client scores models on: a random sample of
    min(batch_size, its train size) of its own training samples, without replacement."""
    rng = np.random.default_rng(seed)
    size = min(batch_size, len(train_indices))
    return np.sort(rng.choice(train_indices, size=size, replace=False))


def batch_losses(model: nn.Module, states: Sequence[State], x: np.ndarray, y: np.ndarray, device: torch.device) -> list[float]:
    """Mean loss of each state on the batch (x, y): one forward pass per state, no gradients."""
    tx = torch.as_tensor(x, dtype=torch.float32, device=device)
    ty = torch.as_tensor(y, device=device)
    ty = ty.to(torch.float32) if ty.dtype.is_floating_point else ty.to(torch.int64)
    losses = []
    model.eval()
    with torch.no_grad():
        for state in states:
            model.load_state_dict({k: v.to(device) for k, v in state.items()})
            losses.append(float(loss_fn(model(tx), ty)))
    return losses


def softmax_of_negative_losses(losses: Sequence[float], temperature: float) -> list[float]:
    """exp(-L_j / T) / sum_k exp(-L_k / T)."""
    if not temperature > 0:
        raise FedmarketError(f"the loss-weight temperature must be positive, got {temperature}")
    if not losses or not all(math.isfinite(v) for v in losses):
        raise FedmarketError(f"loss weights need finite losses, got {list(losses)}")
    best = min(losses)
    raw = [math.exp(-(v - best) / temperature) for v in losses]
    total = sum(raw)
    return [r / total for r in raw]


def mixing_weights(
    losses: Sequence[float],
    lags: Sequence[int],
    temperature: float = DEFAULT_TEMPERATURE,
    staleness_exponent: float = DEFAULT_STALENESS_EXPONENT,
    use_losses: bool = True,
    use_staleness: bool = True,
) -> list[float]:
    """The aggregation weights of the models a client holds (module docstring), summing to 1."""
    if len(losses) != len(lags):
        raise FedmarketError(f"{len(losses)} losses but {len(lags)} lags")
    by_loss = softmax_of_negative_losses(losses, temperature) if use_losses else [1.0] * len(losses)
    by_age = polynomial_staleness(lags, staleness_exponent) if use_staleness else [1.0] * len(lags)
    raw = [a * b for a, b in zip(by_loss, by_age)]
    total = sum(raw)
    return [r / total for r in raw]
