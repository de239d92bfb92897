"""All simulated clients of a round trained together, as one vectorised computation.

Every client runs the same SGD as fl.training.train_local (same minibatches, same order, same
FedProx term), but the clients' parameters are stacked along a leading dimension and one step of
all clients is one call of `torch.func.vmap(torch.func.grad(loss))` over
`torch.func.functional_call`: torch turns the per-client convolutions into grouped ones and the
linear layers into batched matmuls, so the device sees a few large kernels instead of many tiny
ones per step.

Clients hold different numbers of samples, so their minibatch sequences differ in length and
their last minibatches are short. Each step therefore takes a (clients, batch) index matrix padded
with a mask: a padded sample weighs 0 in its client's mean loss, and a client whose sequence has
ended is frozen (its parameters and momentum are not touched, which also switches off its FedProx
pull). Clients are ordered by descending step count, so the ones still training at any step are
a prefix of the stack and finished clients cost nothing. The result matches train_local client by
client up to float rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from fedmarket.errors import FedmarketError
from fedmarket.fl.models import ModelSpec
from fedmarket.fl.params import State
from fedmarket.fl.training import TrainConfig, batch_schedule, loss_fn, resolve_device


def _step_plan(sizes: Sequence[int], offsets: Sequence[int], config: TrainConfig, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index (steps, clients, batch) into the pooled client data, sample mask, active counts.

    Clients must come sorted by descending number of steps, so the clients still training at
    step s are exactly the first active[s] ones.
    """
    schedules = [batch_schedule(n, replace(config, seed=seed)) for n, seed in zip(sizes, seeds)]
    steps = len(schedules[0])
    clients, width = len(sizes), config.batch_size
    index = np.zeros((steps, clients, width), dtype=np.int64)
    mask = np.zeros((steps, clients, width), dtype=np.float32)
    active = np.zeros(steps, dtype=np.int64)
    for c, (schedule, offset) in enumerate(zip(schedules, offsets)):
        index[:, c, :] = offset  # padding points at a real sample of the same client, masked out
        for s, batch in enumerate(schedule):
            index[s, c, : len(batch)] = offset + batch
            mask[s, c, : len(batch)] = 1.0
            active[s] += 1
    return index, mask, active


def steps_per_client(num_samples: int, config: TrainConfig) -> int:
    return config.epochs * -(-num_samples // config.batch_size)


def train_clients_batched(
    model_or_spec: nn.Module | ModelSpec,
    global_state: Mapping[str, Tensor],
    x: np.ndarray,
    y: np.ndarray,
    client_indices: Sequence[np.ndarray],
    config: TrainConfig,
    seeds: Sequence[int],
    device: str | torch.device = "cpu",
) -> list[tuple[State, int, float]]:
    """Train every client from `global_state` on x[client_indices[i]] with seed seeds[i].

    Returns, per client, what train_local returns: (state on CPU, samples, mean train loss).
    """
    if len(client_indices) != len(seeds):
        raise FedmarketError(f"{len(client_indices)} clients but {len(seeds)} seeds")
    if not client_indices:
        return []
    sizes = [len(i) for i in client_indices]
    if min(sizes) == 0:
        raise FedmarketError("a client with no training samples cannot train")
    dev = resolve_device(device)
    model = (model_or_spec.build() if isinstance(model_or_spec, ModelSpec) else model_or_spec).to(dev)
    names = [name for name, _ in model.named_parameters()]
    if set(names) != set(global_state):
        raise FedmarketError("the global state does not match the model's parameters")

    # Longest-training clients first: at every step the active clients form a prefix, which is
    # trained as a slice (a view, no copy) and no work is spent on clients that have finished.
    order = sorted(range(len(sizes)), key=lambda c: -steps_per_client(sizes[c], config))
    sizes_o = [sizes[c] for c in order]
    pooled = np.concatenate([client_indices[c] for c in order])
    offsets = np.concatenate([[0], np.cumsum(sizes_o)[:-1]])
    data_x = torch.as_tensor(x[pooled], dtype=torch.float32, device=dev)
    data_y = torch.as_tensor(y[pooled], device=dev)
    data_y = data_y.to(torch.float32) if data_y.dtype.is_floating_point else data_y.to(torch.int64)
    index, mask, active = _step_plan(sizes_o, offsets, config, [seeds[c] for c in order])
    index_t = torch.as_tensor(index, device=dev)
    mask_t = torch.as_tensor(mask, device=dev)

    clients = len(sizes)
    anchor = {k: global_state[k].to(dev, torch.float32) for k in names}
    params = {k: anchor[k].unsqueeze(0).repeat(clients, *([1] * anchor[k].dim())) for k in names}
    momentum = {k: torch.zeros_like(v) for k, v in params.items()} if config.momentum > 0 else None
    mu = config.prox_mu

    def client_objective(p: dict[str, Tensor], bx: Tensor, by: Tensor, bm: Tensor) -> tuple[Tensor, Tensor]:
        per_sample = loss_fn(functional_call(model, p, (bx,)), by, reduction="none")
        loss = (per_sample * bm).sum() / bm.sum().clamp(min=1.0)
        objective = loss
        if mu > 0:
            objective = loss + 0.5 * mu * sum(((p[k] - anchor[k]) ** 2).sum() for k in names)
        return objective, loss.detach()

    step_grads = vmap(grad(client_objective, has_aux=True))
    loss_sum = torch.zeros(clients, dtype=torch.float64, device=dev)
    for s in range(index.shape[0]):
        a = int(active[s])
        live = {k: v[:a] for k, v in params.items()}
        bx, by, bm = data_x[index_t[s, :a]], data_y[index_t[s, :a]], mask_t[s, :a]
        grads, losses = step_grads(live, bx, by, bm)
        loss_sum[:a] += losses.to(torch.float64) * bm.sum(dim=1).to(torch.float64)
        with torch.no_grad():
            for k in names:
                step = grads[k]
                if momentum is not None:
                    # torch.optim.SGD: the buffer starts as the first gradient, then buf = m*buf + g.
                    if s > 0:
                        step = momentum[k][:a].mul_(config.momentum).add_(grads[k])
                    else:
                        momentum[k][:a] = step
                params[k][:a] -= config.lr * step

    seen = mask.sum(axis=(0, 2)).astype(np.float64)  # samples trained per client, over all epochs
    results: list[tuple[State, int, float]] = [None] * clients  # type: ignore[list-item]
    for position, c in enumerate(order):
        state = {k: params[k][position].detach().to("cpu").contiguous().clone() for k in sorted(names)}
        results[c] = (state, sizes[c], float(loss_sum[position].cpu()) / float(seen[position]))
    return results
