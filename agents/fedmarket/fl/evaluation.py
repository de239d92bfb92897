"""Metrics of a model state on labelled data: accuracy, AUC, loss (classification); MSE (regression).

AUC is micro-averaged one-vs-rest, as the seed paper reports it: every (sample, class) pair is
one binary decision scored by the softmax probability, and the ROC AUC is taken over all pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from fedmarket.fl.models import ModelSpec
from fedmarket.fl.training import resolve_device

EVAL_CHUNK = 2048  # samples per forward pass: bounds memory on large test sets


@dataclass(frozen=True)
class Metrics:
    """Metrics on `num_samples` samples; fields that do not apply to the task are None."""

    num_samples: int
    loss: float  # cross-entropy (classification) or MSE (regression), mean per sample
    accuracy: float | None = None
    auc: float | None = None
    mse: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def predict(model_or_spec: nn.Module | ModelSpec, state: Mapping[str, Tensor], x: np.ndarray | Tensor, device: str | torch.device = "cpu") -> np.ndarray:
    """The model's raw outputs (logits, or regression values as (N, 1)) for x, as float64 numpy."""
    dev = resolve_device(device)
    model = model_or_spec.build() if isinstance(model_or_spec, ModelSpec) else model_or_spec
    model = model.to(dev)
    model.load_state_dict({k: v.to(dev) for k, v in state.items()})
    model.eval()
    tx = torch.as_tensor(x, dtype=torch.float32)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(tx), EVAL_CHUNK):
            outputs.append(model(tx[start : start + EVAL_CHUNK].to(dev)).to("cpu", torch.float64))
    if not outputs:
        return np.zeros((0, 1))
    return torch.cat(outputs).numpy()


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def micro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Micro-averaged one-vs-rest ROC AUC; NaN when it is undefined (all pairs of one kind)."""
    num_classes = probabilities.shape[1]
    onehot = np.zeros_like(probabilities, dtype=np.int64)
    onehot[np.arange(len(labels)), labels] = 1
    flat_true = onehot.ravel()
    if flat_true.min() == flat_true.max():
        return math.nan
    if num_classes == 1:
        return math.nan
    return float(roc_auc_score(flat_true, probabilities.ravel()))


def metrics_from_outputs(outputs: np.ndarray, y: np.ndarray, task: str) -> Metrics:
    """Metrics of precomputed model outputs against labels or targets."""
    n = int(len(y))
    if n == 0:
        return Metrics(
            0,
            math.nan,
            math.nan if task == "classification" else None,
            math.nan if task == "classification" else None,
            math.nan if task == "regression" else None,
        )
    if task == "regression":
        mse = float(np.mean((outputs.reshape(n, -1)[:, 0] - np.asarray(y, dtype=np.float64)) ** 2))
        return Metrics(n, loss=mse, mse=mse)
    labels = np.asarray(y, dtype=np.int64)
    log_p = _log_softmax(outputs)
    loss = float(-log_p[np.arange(n), labels].mean())
    accuracy = float((outputs.argmax(axis=1) == labels).mean())
    return Metrics(n, loss=loss, accuracy=accuracy, auc=micro_auc(labels, np.exp(log_p)))


def evaluate(
    model_or_spec: nn.Module | ModelSpec,
    state: Mapping[str, Tensor],
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    task: str,
    device: str | torch.device = "cpu",
) -> Metrics:
    """Metrics of `state` on (x, y) for task "classification" or "regression"."""
    y_np = y.cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    return metrics_from_outputs(predict(model_or_spec, state, x, device), y_np, task)


def evaluate_clients(
    model_or_spec: nn.Module | ModelSpec,
    state: Mapping[str, Tensor],
    x: np.ndarray,
    y: np.ndarray,
    client_indices: Sequence[np.ndarray],
    task: str,
    device: str | torch.device = "cpu",
) -> list[Metrics]:
    """Metrics of one state on each client's samples (one forward pass over their union)."""
    union = np.unique(np.concatenate(list(client_indices))) if client_indices else np.zeros(0, dtype=np.int64)
    outputs = predict(model_or_spec, state, x[union], device)
    position = {int(i): p for p, i in enumerate(union)}
    result = []
    for indices in client_indices:
        rows = np.fromiter((position[int(i)] for i in indices), dtype=np.int64, count=len(indices))
        result.append(metrics_from_outputs(outputs[rows], y[indices], task))
    return result


def _weighted(values: list[float | None], weights: list[int]) -> float | None:
    pairs = [(v, w) for v, w in zip(values, weights) if v is not None and not math.isnan(v) and w > 0]
    if not pairs:
        return None if all(v is None for v in values) else math.nan
    total = sum(w for _, w in pairs)
    return float(sum(v * w for v, w in pairs) / total)


def weighted_overall(per_client: Sequence[Metrics]) -> Metrics:
    """Sample-weighted mean of per-client metrics (the seed paper's overall figure).

    Accuracy, loss and MSE weighted this way equal the pooled values exactly; AUC is the weighted
    mean of the clients' AUCs (a client whose AUC is undefined is left out of that mean).
    """
    weights = [m.num_samples for m in per_client]
    return Metrics(
        num_samples=sum(weights),
        loss=_weighted([m.loss for m in per_client], weights) or 0.0,
        accuracy=_weighted([m.accuracy for m in per_client], weights),
        auc=_weighted([m.auc for m in per_client], weights),
        mse=_weighted([m.mse for m in per_client], weights),
    )
