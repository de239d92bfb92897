"""Utility-weighted averaging: clients weighted by their measured contribution.

The market's validators score every update (fedmarket.fl.utility); this rule averages the
updates in proportion to those scores, dropping every update whose utility is not positive, as
the contract pays trainers in proportion to max(u_i, 0). The weighting is FLTrust's (Cao, Fang,
Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping", NDSS 2021:
sum_i ReLU(TS_i) g_i / sum_i ReLU(TS_i)) applied to whole models, without FLTrust's rescaling of
every update to the server update's norm.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation.states import StateDict, check_states, weighted_average


def utility_weighted(states: Sequence[StateDict], utilities: Sequence[float]) -> StateDict:
    """Average the states with a positive utility, each weighted by its utility."""
    names = check_states(states, utilities)
    kept = [(state, float(u)) for state, u in zip(states, utilities) if float(u) > 0]
    if not kept:
        raise FedmarketError("utility-weighted aggregation needs at least one positive utility")
    return weighted_average([s for s, _ in kept], [u for _, u in kept], names)
