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
    selection     CMFL's selection strategies cmfl_s1[:k] (the k best-scored) and cmfl_s2[:k]
                  (k spread over the score ranking) (Che et al., CMFL, TPDS 2022)

The selection rules need the committee's scores: `get_scored_rule(spec)` returns a ScoredRule
`(states, weights, scores) -> state` for every rule (the plain ones ignore the scores), while
`get_rule(spec)` refuses a selection rule with a message saying so, so no caller without scores
runs one by mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation.fedavg import fedavg
from fedmarket.fl.aggregation.krum import DEFAULT_F, krum, multikrum
from fedmarket.fl.aggregation.median import coordinate_median
from fedmarket.fl.aggregation.selection import cmfl_s1, cmfl_s2
from fedmarket.fl.aggregation.states import StateDict
from fedmarket.fl.aggregation.trimmed_mean import DEFAULT_BETA, trimmed_mean
from fedmarket.fl.aggregation.weighted import utility_weighted

AggregationRule = Callable[[Sequence[StateDict], Sequence[float]], StateDict]
ScoredRule = Callable[[Sequence[StateDict], Sequence[float], Sequence[float]], StateDict]

RULES: tuple[str, ...] = ("fedavg", "weighted", "median", "trimmed_mean", "krum", "multikrum")
SELECTION_RULES: tuple[str, ...] = ("cmfl_s1", "cmfl_s2")

DEFAULT_RULE = "fedavg"

__all__ = [
    "AggregationRule",
    "DEFAULT_RULE",
    "RULES",
    "SELECTION_RULES",
    "ScoredRule",
    "StateDict",
    "coordinate_median",
    "fedavg",
    "get_rule",
    "get_scored_rule",
    "needs_scores",
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


def _split(spec: str) -> tuple[str, list[str]]:
    name, *params = spec.strip().split(":")
    return name.strip().lower().replace("-", "_"), params


def needs_scores(spec: str) -> bool:
    """Whether rule `spec` selects by the committee's scores (a CMFL selection strategy)."""
    return _split(spec)[0] in SELECTION_RULES


def get_scored_rule(spec: str) -> ScoredRule:
    """The rule named by `spec` as (states, weights, scores) -> state: cmfl_s1[:k] and
    cmfl_s2[:k] (k >= 1, default ceil(n / 2) at call time) use the scores, the rules of
    get_rule ignore them. Raises FedmarketError for an unknown name or a bad parameter."""
    name, params = _split(spec)
    if name not in SELECTION_RULES:
        plain = get_rule(spec)
        return lambda states, weights, scores: plain(states, weights)
    if len(params) > 1:
        raise FedmarketError(f"{name} takes one parameter (k, the updates to aggregate), got {spec!r}")
    k = _int_param(spec, params[0], "k") if params else None
    if k == 0:
        raise FedmarketError(f"{name} k must be at least 1, got {spec!r}")
    return partial(cmfl_s1 if name == "cmfl_s1" else cmfl_s2, k=k)


def get_rule(spec: str) -> AggregationRule:
    """The aggregation function named by `spec`: "name" or "name:param[:param]".

    fedavg, weighted, median: no parameters. trimmed_mean[:beta] (default 0.1). krum[:f]
    (default 1). multikrum[:f[:m]] (f default 1, m default n - f at call time).
    Raises FedmarketError for an unknown name or a bad parameter, and for a selection rule
    (cmfl_s1, cmfl_s2), which needs scores: get_scored_rule.
    """
    name, params = _split(spec)
    if name in SELECTION_RULES:
        raise FedmarketError(
            f"aggregation rule {spec!r} selects updates by the committee's scores: it runs only with an elected committee (committee: elected)"
        )
    if name not in RULES:
        raise FedmarketError(f"unknown aggregation rule {spec!r}; choose one of {', '.join(RULES + SELECTION_RULES)}")
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
