"""One client's local training: minibatch SGD from the global model, optionally with FedProx.

FedAvg's local step is McMahan et al. 2017 (E epochs of minibatch SGD of size B at rate eta).
With `prox_mu > 0` the local objective adds (mu / 2) * ||w - w_global||^2, the proximal term of
FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"), which keeps a client
on non-IID data from drifting far from the global model.

Determinism: the batch order comes from a numpy Generator seeded with `config.seed`; everything
else is plain arithmetic, so the same inputs and seed give a bit-identical state on CPU.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from fedmarket.errors import FedmarketError
from fedmarket.fl.learning import (
    TrainConfig,  # declared with the other learning settings; imported from here too
)
from fedmarket.fl.models import ModelSpec
from fedmarket.fl.params import State, canonical

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(name: str | torch.device) -> torch.device:
    """ "cpu", "cuda" (or "cuda:N") or "auto" -> a torch device; cuda without a GPU is an error."""
    text = str(name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FedmarketError("--device cuda asked for, but torch sees no CUDA GPU here; use --device cpu")
        return torch.device(text)
    if text != "cpu":
        raise FedmarketError(f"unknown device {text!r}; use cpu, cuda or auto")
    return torch.device("cpu")


def task_of(y: np.ndarray | Tensor) -> str:
    """Integer labels mean classification, float targets regression."""
    dtype = y.dtype
    if isinstance(y, Tensor):
        return "regression" if dtype.is_floating_point else "classification"
    return "regression" if np.issubdtype(dtype, np.floating) else "classification"


def loss_fn(outputs: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy for class labels, squared error for regression targets."""
    if y.dtype.is_floating_point:
        return nn.functional.mse_loss(outputs.squeeze(-1), y, reduction=reduction)
    return nn.functional.cross_entropy(outputs, y, reduction=reduction)


def batch_schedule(num_samples: int, config: TrainConfig) -> list[np.ndarray]:
    """The minibatches (index arrays into the client's data) in the order they are trained.

    One fresh permutation per epoch from Generator(config.seed); the last batch of an epoch may
    be short (no samples are dropped). Shared with fl.batched so both paths see the same batches.
    """
    rng = np.random.default_rng(config.seed)
    batches: list[np.ndarray] = []
    for _ in range(config.epochs):
        order = rng.permutation(num_samples)
        batches.extend(order[i : i + config.batch_size] for i in range(0, num_samples, config.batch_size))
    return batches


def _as_tensors(x: np.ndarray | Tensor, y: np.ndarray | Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    tx = torch.as_tensor(x, dtype=torch.float32).to(device)
    ty = torch.as_tensor(y).to(device)
    if ty.dtype.is_floating_point:
        ty = ty.to(torch.float32)
    else:
        ty = ty.to(torch.int64)
    return tx, ty


def _model_for(model_or_spec: nn.Module | ModelSpec) -> nn.Module:
    return model_or_spec.build() if isinstance(model_or_spec, ModelSpec) else model_or_spec


def train_local(
    model_or_spec: nn.Module | ModelSpec,
    global_state: Mapping[str, Tensor],
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    config: TrainConfig,
    device: str | torch.device = "cpu",
) -> tuple[State, int, float]:
    """Train from `global_state` on (x, y); return (new state on CPU, samples, mean train loss).

    The loss is cross-entropy for int labels and MSE for float targets; the returned train loss is
    the sample-weighted mean of the minibatch losses over all epochs, without the proximal term.
    The passed-in model's own weights are overwritten.
    """
    dev = resolve_device(device)
    n = int(len(y))
    if n == 0:
        raise FedmarketError("a client with no training samples cannot train")
    model = _model_for(model_or_spec).to(dev)
    model.load_state_dict({k: v.to(dev) for k, v in global_state.items()})
    model.train()
    tx, ty = _as_tensors(x, y, dev)
    anchor = [p.detach().clone() for p in model.parameters()] if config.prox_mu > 0 else None
    optimiser = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    total_loss, seen = 0.0, 0
    for batch in batch_schedule(n, config):
        index = torch.as_tensor(batch, device=dev)
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(model(tx[index]), ty[index])
        objective = loss
        if anchor is not None:
            proximal = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
            objective = loss + 0.5 * config.prox_mu * proximal
        objective.backward()
        optimiser.step()
        total_loss += float(loss.detach()) * len(batch)
        seen += len(batch)
    return canonical(model.state_dict()), n, total_loss / seen
