"""Staleness compensation: a model's weight shrinks with the number of rounds it lags behind.

The polynomial staleness function of FedAsync (Xie, Koyejo and Gupta 2019, "Asynchronous
Federated Optimization", section 5.2): s(t - tau) = (t - tau + 1)^-a, where t is the round of the
model being updated and tau the round the mixed-in model was trained in. s(0) = 1, it decreases
in the lag, and a (the exponent, FedAsync uses 0.5) sets how fast. A model from a round *ahead*
(possible when a slow client mixes in a fast one's) lags by 0: it is not rewarded for being newer.
The semi-centralised mode multiplies its loss weights by s (the seed paper's "staleness
compensation", whose exact formula our copy of the paper does not give); FedAsync scales its
mixing rate alpha by it.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedmarket.errors import FedmarketError
from fedmarket.fl.semi.config import DEFAULT_STALENESS_EXPONENT


def lag(current_round: int, model_round: int) -> int:
    """Rounds model_round lags behind current_round, never negative."""
    return max(0, current_round - model_round)


def polynomial_staleness(lags: Sequence[int], exponent: float = DEFAULT_STALENESS_EXPONENT) -> list[float]:
    """(lag + 1)^-exponent for each lag: 1 for an up-to-date model, smaller for staler ones."""
    if exponent < 0:
        raise FedmarketError(f"the staleness exponent must be >= 0, got {exponent}")
    if any(n < 0 for n in lags):
        raise FedmarketError(f"staleness lags must be >= 0, got {list(lags)}")
    return [float((n + 1) ** -exponent) for n in lags]
