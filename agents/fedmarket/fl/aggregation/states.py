"""Checks and conversions shared by every aggregation rule.

A rule receives PyTorch state dicts (name -> float32 tensor) and returns one. The arithmetic runs
on float64 NumPy arrays on the CPU, one parameter tensor at a time, in sorted key order (the
canonical order of fl.params, whatever order a dict was built in) and, within a tensor, in the
order the clients were given. NumPy is single-threaded
and its element-wise operations do not depend on the device or the thread count, so the same
inputs in the same order give the same output bytes on any machine: the aggregator and every
validator that recomputes the aggregate must agree to the last bit.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from fedmarket.errors import FedmarketError

StateDict = dict[str, torch.Tensor]


def check_states(states: Sequence[StateDict], weights: Sequence[float]) -> list[str]:
    """Refuse inputs a rule cannot aggregate; return the parameter names, sorted.

    All states must have the same keys, the same shapes and float32 finite values, and there must be
    one finite weight per state. A non-finite value is refused rather than propagated, because one
    NaN would poison every coordinate of an average.
    """
    if len(states) == 0:
        raise FedmarketError("aggregation needs at least one model state")
    if len(weights) != len(states):
        raise FedmarketError(f"aggregation got {len(states)} states but {len(weights)} weights")
    for i, w in enumerate(weights):
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(float(w)):
            raise FedmarketError(f"aggregation weight {i} is not a finite number: {w!r}")
    names = sorted(states[0].keys())
    if not names:
        raise FedmarketError("aggregation got an empty model state")
    reference = states[0]
    for i, state in enumerate(states):
        if set(state.keys()) != set(names):
            missing = sorted(set(names) - set(state.keys()))
            extra = sorted(set(state.keys()) - set(names))
            raise FedmarketError(f"state {i} has different parameters: missing {missing}, unexpected {extra}")
        for name in names:
            tensor = state[name]
            if not isinstance(tensor, torch.Tensor):
                raise FedmarketError(f"state {i} parameter {name!r} is not a tensor")
            if tensor.dtype != torch.float32:
                raise FedmarketError(f"state {i} parameter {name!r} is {tensor.dtype}, expected torch.float32")
            if tensor.shape != reference[name].shape:
                raise FedmarketError(f"state {i} parameter {name!r} has shape {tuple(tensor.shape)}, expected {tuple(reference[name].shape)}")
            if not bool(torch.isfinite(tensor).all()):
                raise FedmarketError(f"state {i} parameter {name!r} has a NaN or infinite value")
    return names


def as_float64(tensor: torch.Tensor) -> np.ndarray:
    """One parameter tensor as a flat float64 CPU array (float32 -> float64 is exact)."""
    return tensor.detach().to("cpu").reshape(-1).numpy().astype(np.float64)


def stacked(states: Sequence[StateDict], name: str) -> np.ndarray:
    """Parameter `name` of every state as a (clients, coordinates) float64 array, clients in order."""
    return np.stack([as_float64(state[name]) for state in states])


def to_state(names: Sequence[str], arrays: dict[str, np.ndarray], like: StateDict) -> StateDict:
    """Cast float64 results back to float32 tensors shaped like `like`, keys in `names` order."""
    out: StateDict = OrderedDict()
    for name in names:
        values = arrays[name].astype(np.float32)
        out[name] = torch.from_numpy(values.reshape(tuple(like[name].shape))).contiguous()
    return out


def weighted_average(states: Sequence[StateDict], weights: Sequence[float], names: Sequence[str]) -> StateDict:
    """sum_i w_i x_i / sum_i w_i, accumulated in float64 client by client in the given order.

    The caller guarantees the weights are non-negative with a positive sum. Summing client by
    client (rather than with a vectorised reduction) fixes the order of the float64 additions for
    every coordinate, which is what makes the result reproducible bit for bit.
    """
    total = 0.0
    for w in weights:
        total += float(w)
    result: dict[str, np.ndarray] = {}
    for name in names:
        acc = np.zeros(states[0][name].numel(), dtype=np.float64)
        for state, w in zip(states, weights):
            if w == 0:
                continue
            acc += float(w) * as_float64(state[name])
        result[name] = acc / total
    return to_state(names, result, states[0])
