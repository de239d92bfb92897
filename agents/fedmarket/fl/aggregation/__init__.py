"""Aggregation rules: many client model states in, one global model state out.

`get_rule(spec)` turns a rule spec from a task (`"fedavg"`, `"trimmed_mean:0.1"`, `"krum:1"`,
`"multikrum:1:3"`) into a function `(states, weights) -> state`. States are PyTorch state dicts
(name -> float32 tensor) with the same keys and shapes; weights are one number per state (sample
counts for fedavg and multikrum, utilities for weighted, unused by median, trimmed_mean and krum).

Every rule is deterministic: it computes on the CPU in float64, in sorted key order and the given
client order, and casts to float32 once at the end (the result's keys come sorted), so the aggregator and the
validators that recompute its aggregate get the same bytes (see states.py).

One file per algorithm:
    fedavg        FedAvg by sample counts (McMahan et al. 2017)
    weighted      utility-weighted average, non-positive utilities dropped (FLTrust-style weights)
    median        coordinate-wise median (Yin et al. 2018)
    trimmed_mean  coordinate-wise trimmed mean, parameter beta (Yin et al. 2018)
    krum          Krum, parameter f (Blanchard et al. 2017)
    multikrum     Multi-Krum, parameters f and m (Blanchard et al. 2017)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation.fedavg import fedavg
from fedmarket.fl.aggregation.krum import DEFAULT_F, krum, multikrum
from fedmarket.fl.aggregation.median import coordinate_median
from fedmarket.fl.aggregation.states import StateDict
from fedmarket.fl.aggregation.trimmed_mean import DEFAULT_BETA, trimmed_mean
from fedmarket.fl.aggregation.weighted import utility_weighted

AggregationRule = Callable[[Sequence[StateDict], Sequence[float]], StateDict]

RULES: tuple[str, ...] = ("fedavg", "weighted", "median", "trimmed_mean", "krum", "multikrum")

DEFAULT_RULE = "fedavg"

__all__ = [
    "AggregationRule",
    "DEFAULT_RULE",
    "RULES",
    "StateDict",
    "coordinate_median",
    "fedavg",
    "get_rule",
    "krum",
    "multikrum",
    "trimmed_mean",
    "utility_weighted",
]


def _int_param(spec: str, text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise FedmarketError(f"aggregation rule {spec!r}: {what} must be an integer, got {text!r}") from None
    if value < 0:
        raise FedmarketError(f"aggregation rule {spec!r}: {what} must be non-negative, got {value}")
    return value


def get_rule(spec: str) -> AggregationRule:
    """The aggregation function named by `spec`: "name" or "name:param[:param]".

    fedavg, weighted, median: no parameters. trimmed_mean[:beta] (default 0.1). krum[:f]
    (default 1). multikrum[:f[:m]] (f default 1, m default n - f at call time).
    Raises FedmarketError for an unknown name or a bad parameter.
    """
    name, *params = spec.strip().split(":")
    name = name.strip().lower().replace("-", "_")
    if name not in RULES:
        raise FedmarketError(f"unknown aggregation rule {spec!r}; choose one of {', '.join(RULES)}")
    if name in ("fedavg", "weighted", "median"):
        if params:
            raise FedmarketError(f"aggregation rule {name!r} takes no parameters, got {spec!r}")
        return {"fedavg": fedavg, "weighted": utility_weighted, "median": coordinate_median}[name]
    if name == "trimmed_mean":
        if len(params) > 1:
            raise FedmarketError(f"trimmed_mean takes one parameter (beta), got {spec!r}")
        beta = DEFAULT_BETA
        if params:
            try:
                beta = float(params[0])
            except ValueError:
                raise FedmarketError(f"trimmed_mean beta must be a number, got {params[0]!r}") from None
            if not 0.0 <= beta < 0.5:
                raise FedmarketError(f"trimmed_mean beta must be in [0, 0.5), got {beta}")
        return partial(trimmed_mean, beta=beta)
    if name == "krum":
        if len(params) > 1:
            raise FedmarketError(f"krum takes one parameter (f), got {spec!r}")
        f = _int_param(spec, params[0], "f") if params else DEFAULT_F
        return partial(krum, f=f)
    # multikrum
    if len(params) > 2:
        raise FedmarketError(f"multikrum takes at most two parameters (f, m), got {spec!r}")
    f = _int_param(spec, params[0], "f") if params else DEFAULT_F
    m = _int_param(spec, params[1], "m") if len(params) > 1 else None
    if m == 0:
        raise FedmarketError(f"multikrum m must be at least 1, got {spec!r}")
    return partial(multikrum, f=f, m=m)
