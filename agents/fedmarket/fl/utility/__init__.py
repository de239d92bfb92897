"""Validator utility: how much each update of a round is worth, scored on the validator's data.

`get_utility(name)` returns a UtilityFunction: a ScoringRequest (the round's global model and
updates, the validator's data, the model spec, the seed, the training configuration, the device and
what was public before the round) -> one int per update in micro-units (round(score * 1e6)),
deterministic given its inputs, ready for `revealScores`. An unchanged model scores exactly 0; a malformed update scores -1.

Registered (one file per algorithm):
    separation_gain      novel_separation's tests, paid by the measured separation gain at the FedAvg weight; label flip poison
    novel_separation     the separation cosine of what public data does not explain, guarded; same-round copies 0 (default)
    separation_cosine    cosine with the validator's class-separation gradient, guarded
    reference_cosine     FLTrust's cosine with the validator's trained reference update, guarded
    loss_delta           validation-loss decrease of the update alone (the literal v({i}))
    weighted_loss_delta  validation-loss decrease of the update at its FedAvg weight
    loo                  leave-one-out on the round's FedAvg aggregate
    cmfl_distance        CMFL: 1 - |delta_i - delta_m| / |delta_m|, delta_m the member's own step (elected committees)

The default is chosen by the fairness benchmark (`fedmarket bench fairness`, bench/results/fairness.md),
which pays trainers in proportion to max(u, 0) as the contract does and reports the share of honest,
free-riding, noisy, label-flipping, sign-flipping and scaling trainers under every utility.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from fedmarket.errors import FedmarketError
from fedmarket.fl.utility.base import (
    MALFORMED_SCORE,
    MICRO,
    NO_PAST,
    PublicPast,
    ScoringRequest,
    Update,
    UtilityFunction,
    ValidationData,
    to_micro,
)
from fedmarket.fl.utility.cmfl_distance import cmfl_distance_scores
from fedmarket.fl.utility.loo import loo_scores
from fedmarket.fl.utility.loss_delta import (
    loss_delta_scores,
    weighted_loss_delta_scores,
)
from fedmarket.fl.utility.novel_separation import novel_separation_scores
from fedmarket.fl.utility.reference_cosine import reference_cosine_scores
from fedmarket.fl.utility.separation_cosine import separation_cosine_scores
from fedmarket.fl.utility.separation_gain import separation_gain_scores

RawUtility = Callable[[ScoringRequest], list[float]]

_RAW: dict[str, RawUtility] = {
    "separation_gain": separation_gain_scores,
    "novel_separation": novel_separation_scores,
    "separation_cosine": separation_cosine_scores,
    "reference_cosine": reference_cosine_scores,
    "loss_delta": loss_delta_scores,
    "weighted_loss_delta": weighted_loss_delta_scores,
    "loo": loo_scores,
    "cmfl_distance": cmfl_distance_scores,
}
UTILITIES: tuple[str, ...] = tuple(_RAW)
DEFAULT_UTILITY = "novel_separation"

__all__ = [
    "DEFAULT_UTILITY",
    "MALFORMED_SCORE",
    "MICRO",
    "NO_PAST",
    "UTILITIES",
    "PublicPast",
    "ScoringRequest",
    "Update",
    "UtilityFunction",
    "ValidationData",
    "get_raw_utility",
    "get_utility",
    "to_micro",
]


def get_raw_utility(name: str) -> RawUtility:
    """The float scores behind utility `name` (for benchmarks and diagnostics; the chain gets micro-units)."""
    key = name.strip().lower().replace("-", "_")
    if key not in _RAW:
        raise FedmarketError(f"unknown utility {name!r}; choose one of {', '.join(UTILITIES)}")
    return _RAW[key]


def get_utility(name: str = DEFAULT_UTILITY) -> UtilityFunction:
    """The utility function `name`, returning one micro-unit int per update."""
    raw = get_raw_utility(name)

    @wraps(raw)
    def utility(request: ScoringRequest) -> list[int]:
        return [to_micro(s) for s in raw(request)]

    return utility
