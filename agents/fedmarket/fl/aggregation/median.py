"""Coordinate-wise median.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018 (the "median" aggregator). Every coordinate of the result is the
median of that coordinate over the clients; with an even number of clients it is the mean of the
two middle values. Client weights are ignored: the median is a robust statistic of the updates,
and weighting by self-reported sample counts would let a liar dominate it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedmarket.fl.aggregation.states import StateDict, check_states, stacked, to_state


def coordinate_median(states: Sequence[StateDict], weights: Sequence[float]) -> StateDict:
    """The coordinate-wise median of `states` (weights only checked, not used)."""
    names = check_states(states, weights)
    n = len(states)
    result: dict[str, np.ndarray] = {}
    for name in names:
        ordered = np.sort(stacked(states, name), axis=0)  # sorting is exact: no rounding
        if n % 2 == 1:
            result[name] = ordered[n // 2]
        else:
            result[name] = (ordered[n // 2 - 1] + ordered[n // 2]) / 2.0
    return to_state(names, result, states[0])
