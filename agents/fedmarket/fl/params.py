"""Helpers over model states (dict name -> tensor): ordering, flattening, stacking, comparing.

A state's canonical key order is sorted by name: it does not depend on how a dict was built, so
a flattened vector (or a serialised file) means the same thing on every machine.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

State = dict[str, Tensor]


def ordered_keys(state: Mapping[str, Tensor]) -> list[str]:
    """The canonical key order: sorted by name."""
    return sorted(state)


def canonical(state: Mapping[str, Tensor]) -> State:
    """A detached, contiguous float32 CPU copy of `state` in canonical key order."""
    return {k: state[k].detach().to("cpu", torch.float32).contiguous().clone() for k in ordered_keys(state)}


def flatten(state: Mapping[str, Tensor]) -> Tensor:
    """All tensors of `state`, canonical order, as one float32 vector."""
    return torch.cat([state[k].detach().reshape(-1).to(torch.float32) for k in ordered_keys(state)])


def unflatten(vector: Tensor, like: Mapping[str, Tensor]) -> State:
    """Inverse of flatten: cut `vector` into tensors shaped like `like`'s."""
    expected = sum(like[k].numel() for k in like)
    if vector.numel() != expected:
        raise ValueError(f"vector has {vector.numel()} values, the state needs {expected}")
    out: State = {}
    offset = 0
    for k in ordered_keys(like):
        n = like[k].numel()
        out[k] = vector[offset : offset + n].reshape(like[k].shape).clone()
        offset += n
    return out


def num_parameters(state: Mapping[str, Tensor]) -> int:
    return sum(t.numel() for t in state.values())


def stack(states: list[Mapping[str, Tensor]]) -> State:
    """Clients' states stacked along a new leading dimension (for batched training)."""
    return {k: torch.stack([s[k] for s in states]) for k in ordered_keys(states[0])}


def unstack(stacked: Mapping[str, Tensor]) -> list[State]:
    """Inverse of stack."""
    keys = ordered_keys(stacked)
    count = stacked[keys[0]].shape[0]
    return [{k: stacked[k][i].clone() for k in keys} for i in range(count)]


def to_device(state: Mapping[str, Tensor], device: torch.device | str) -> State:
    return {k: v.to(device) for k, v in state.items()}


def subtract(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> State:
    """a - b, key by key (an update as a delta from the global model)."""
    return {k: a[k] - b[k] for k in ordered_keys(a)}


def max_abs_diff(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Largest absolute difference between two states with the same keys and shapes."""
    if set(a) != set(b):
        raise ValueError("states have different keys")
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a) if a else 0.0


def states_equal(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> bool:
    """Bit-identical: same keys, shapes, dtypes and values."""
    return set(a) == set(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
