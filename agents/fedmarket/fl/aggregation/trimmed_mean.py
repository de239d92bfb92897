"""Coordinate-wise trimmed mean.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018 (the "trimmed mean" aggregator). For every coordinate, the
floor(beta * n) largest and floor(beta * n) smallest values over the n clients are removed and
the rest averaged. beta in [0, 0.5); beta = 0 is the plain (unweighted) mean. Client weights are
ignored, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation.states import StateDict, check_states, stacked, to_state

DEFAULT_BETA = 0.1


def trimmed_mean(states: Sequence[StateDict], weights: Sequence[float], beta: float = DEFAULT_BETA) -> StateDict:
    """The coordinate-wise beta-trimmed mean of `states` (weights only checked, not used)."""
    if not (math.isfinite(beta) and 0.0 <= beta < 0.5):
        raise FedmarketError(f"trimmed_mean beta must be in [0, 0.5), got {beta}")
    names = check_states(states, weights)
    n = len(states)
    k = math.floor(beta * n)  # beta < 0.5 keeps n - 2k >= 1
    result: dict[str, np.ndarray] = {}
    for name in names:
        ordered = np.sort(stacked(states, name), axis=0)
        acc = np.zeros(ordered.shape[1], dtype=np.float64)
        for row in range(k, n - k):  # add rows one by one: a fixed order of float64 additions
            acc += ordered[row]
        result[name] = acc / (n - 2 * k)
    return to_state(names, result, states[0])
