"""Metrics of a set of client models, as the seed paper reports a personalised method.

- client models: every client's own model scored on that client's own local test split, the
  outputs pooled over all clients, then accuracy, micro AUC and loss over the pool (so accuracy
  is the share of all test samples their owner's model gets right). A centralised method's
  client models are all its one global model.
- average model: the plain mean of the client models (equal weights), scored on all clients'
  test splits pooled; it says whether the personal models still agree enough to be averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fedmarket.fl.aggregation.states import check_states, weighted_average
from fedmarket.fl.evaluation import Metrics, metrics_from_outputs, predict
from fedmarket.fl.params import State


def client_models_metrics(
    model: nn.Module, states: Sequence[State], x: np.ndarray, y: np.ndarray, test_sets: Sequence[np.ndarray], task: str, device: torch.device
) -> Metrics:
    """Each client's model on its own test split, outputs pooled (module docstring)."""
    outputs = [predict(model, state, x[idx], device) for state, idx in zip(states, test_sets)]
    pooled = np.concatenate(list(test_sets))
    return metrics_from_outputs(np.concatenate(outputs), y[pooled], task)


def average_state(states: Sequence[State]) -> State:
    """The equal-weight mean of the states (float64 accumulation in client order)."""
    weights = [1.0] * len(states)
    return weighted_average(states, weights, check_states(states, weights))


def average_model_metrics(
    model: nn.Module, states: Sequence[State], x: np.ndarray, y: np.ndarray, test_sets: Sequence[np.ndarray], task: str, device: torch.device
) -> Metrics:
    """The mean of the client models on all clients' test splits pooled."""
    pooled = np.concatenate(list(test_sets))
    return metrics_from_outputs(predict(model, average_state(states), x[pooled], device), y[pooled], task)
