"""FedAvg: the sample-weighted average of client models.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017. The server's new model is
sum_k (n_k / n) w_k, where n_k is the number of training samples of client k.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation.states import StateDict, check_states, weighted_average


def fedavg(states: Sequence[StateDict], sample_counts: Sequence[float]) -> StateDict:
    """Average `states` weighted by their sample counts (float64 accumulation, float32 result).

    Counts must be non-negative and not all zero; a client with 0 samples contributes nothing.
    """
    names = check_states(states, sample_counts)
    if any(float(n) < 0 for n in sample_counts):
        raise FedmarketError(f"fedavg sample counts must be non-negative, got {list(sample_counts)}")
    if sum(float(n) for n in sample_counts) <= 0:
        raise FedmarketError("fedavg needs at least one client with a positive sample count")
    return weighted_average(states, sample_counts, names)
