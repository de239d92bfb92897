"""Aggregation rules: hand-computed expectations, determinism, refusals."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation import RULES, get_rule
from fedmarket.fl.aggregation.krum import krum_scores, pairwise_squared_distances


def state(w: list[float], b: list[float] | None = None) -> OrderedDict[str, torch.Tensor]:
    """A two-parameter state: 'w' and 'b' (b defaults to zeros of length 1)."""
    return OrderedDict(w=torch.tensor(w, dtype=torch.float32), b=torch.tensor(b if b is not None else [0.0], dtype=torch.float32))


def scalars(*values: float) -> list[OrderedDict[str, torch.Tensor]]:
    return [state([v]) for v in values]


def w_of(result: dict[str, torch.Tensor]) -> list[float]:
    return result["w"].tolist()


# ---- fedavg -----------------------------------------------------------------------------------


def test_fedavg_weights_by_sample_counts() -> None:
    states = [state([1.0, 2.0], [10.0]), state([3.0, 4.0], [-2.0])]
    out = get_rule("fedavg")(states, [1, 3])
    # (1*1 + 3*3)/4 = 2.5, (1*2 + 3*4)/4 = 3.5, (10 - 6)/4 = 1
    assert w_of(out) == [2.5, 3.5]
    assert out["b"].tolist() == [1.0]
    assert out["w"].dtype == torch.float32 and list(out) == ["b", "w"]  # canonical (sorted) key order


def test_fedavg_accumulates_in_float64() -> None:
    # In float32, 1e8 + 1 == 1e8, so a float32 running sum would give 0; float64 gives 1/3.
    out = get_rule("fedavg")(scalars(1e8, 1.0, -1e8), [1, 1, 1])
    assert w_of(out) == [np.float32(1.0 / 3.0).item()]


def test_fedavg_client_with_zero_samples_contributes_nothing() -> None:
    assert w_of(get_rule("fedavg")(scalars(2.0, 1000.0), [5, 0])) == [2.0]


# ---- utility-weighted -------------------------------------------------------------------------


def test_weighted_drops_non_positive_utilities() -> None:
    out = get_rule("weighted")(scalars(1.0, 100.0, 50.0, 4.0), [2.0, -1.0, 0.0, 1.0])
    assert w_of(out) == [2.0]  # (2*1 + 1*4) / 3


def test_weighted_refuses_when_no_utility_is_positive() -> None:
    with pytest.raises(FedmarketError, match="positive utility"):
        get_rule("weighted")(scalars(1.0, 2.0), [0.0, -3.0])


# ---- median -----------------------------------------------------------------------------------


def test_median_odd_and_even() -> None:
    odd = [state([1.0, 5.0]), state([3.0, -2.0]), state([2.0, 9.0])]
    assert w_of(get_rule("median")(odd, [1, 1, 1])) == [2.0, 5.0]
    even = odd + [state([10.0, 0.0])]
    # column 0 sorted: 1 2 3 10 -> (2+3)/2; column 1 sorted: -2 0 5 9 -> (0+5)/2
    assert w_of(get_rule("median")(even, [1, 1, 1, 1])) == [2.5, 2.5]


def test_median_ignores_weights() -> None:
    states = scalars(0.0, 1.0, 100.0)
    assert w_of(get_rule("median")(states, [1, 1, 1000])) == [1.0]


# ---- trimmed mean -----------------------------------------------------------------------------


def test_trimmed_mean_removes_beta_n_from_each_end() -> None:
    states = scalars(4.0, 100.0, 1.0, 3.0, 2.0)
    assert w_of(get_rule("trimmed_mean:0.2")(states, [1] * 5)) == [3.0]  # k=1: (2+3+4)/3
    assert w_of(get_rule("trimmed_mean:0.0")(states, [1] * 5)) == [22.0]  # plain mean 110/5
    assert w_of(get_rule("trimmed_mean:0.1")(states, [1] * 5)) == [22.0]  # floor(0.5) = 0 trimmed
    assert w_of(get_rule("trimmed_mean:0.45")(states, [1] * 5)) == [3.0]  # k=2: the median


def test_trimmed_mean_default_beta_is_a_tenth() -> None:
    states = scalars(*[float(v) for v in range(9)], 1000.0)
    # n=10, k=1: drop 0 and 1000, mean of 1..8 = 4.5
    assert w_of(get_rule("trimmed_mean")(states, [1] * 10)) == [4.5]


# ---- krum / multikrum -------------------------------------------------------------------------

# Points 0, 1, 2, 4, 100 with n=5, f=1: each score sums the n-f-2 = 2 nearest squared distances.
#   0: 1 + 4 = 5      1: 1 + 1 = 2      2: 1 + 4 = 5      4: 4 + 9 = 13      100: 96^2 + 98^2 = 18820
KRUM_POINTS = (0.0, 1.0, 2.0, 4.0, 100.0)


def test_pairwise_distances_sum_over_all_parameters() -> None:
    states = [state([0.0, 0.0], [0.0]), state([3.0, 0.0], [4.0])]
    dist = pairwise_squared_distances(states, ["w", "b"])
    assert dist.tolist() == [[0.0, 25.0], [25.0, 0.0]]


def test_krum_scores_by_hand() -> None:
    dist = pairwise_squared_distances(scalars(*KRUM_POINTS), ["w", "b"])
    assert krum_scores(dist, f=1).tolist() == [5.0, 2.0, 5.0, 13.0, 18820.0]


def test_krum_picks_the_lowest_score_unchanged() -> None:
    out = get_rule("krum:1")(scalars(*KRUM_POINTS), [1] * 5)
    assert w_of(out) == [1.0]


def test_krum_breaks_ties_towards_the_earlier_client() -> None:
    # f=0, n=3, one neighbour each: scores 1, 1, 100 -> clients 0 and 1 tie, client 0 wins.
    assert w_of(get_rule("krum:0")(scalars(5.0, 6.0, 16.0), [1, 1, 1])) == [5.0]


def test_multikrum_averages_the_m_best_by_sample_counts() -> None:
    # m=3 keeps scores 2, 5, 5 -> clients 0, 1, 2 (values 0, 1, 2) weighted 1, 1, 2: 5/4
    out = get_rule("multikrum:1:3")(scalars(*KRUM_POINTS), [1, 1, 2, 1, 1])
    assert w_of(out) == [1.25]


def test_multikrum_default_m_is_n_minus_f() -> None:
    # n - f = 4 keeps everything but 100: (0 + 1 + 2 + 4) / 4
    assert w_of(get_rule("multikrum:1")(scalars(*KRUM_POINTS), [1] * 5)) == [1.75]
    assert w_of(get_rule("multikrum")(scalars(*KRUM_POINTS), [1] * 5)) == [1.75]


def test_multikrum_m_larger_than_n_keeps_everyone() -> None:
    assert w_of(get_rule("multikrum:0:10")(scalars(1.0, 3.0), [1, 1])) == [2.0]


def test_krum_with_a_single_client_returns_it() -> None:
    assert w_of(get_rule("krum:1")(scalars(7.0), [1])) == [7.0]


# ---- determinism ------------------------------------------------------------------------------


def random_states(n: int, seed: int) -> list[OrderedDict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        OrderedDict(
            conv=torch.randn(8, 3, 5, 5, generator=g) * 0.1,
            fc=torch.randn(64, 100, generator=g) * 0.05,
            bias=torch.randn(64, generator=g),
        )
        for _ in range(n)
    ]


def as_bytes(result: dict[str, torch.Tensor]) -> bytes:
    return b"".join(name.encode() + t.numpy().tobytes() for name, t in result.items())


@pytest.mark.parametrize("spec", ["fedavg", "weighted", "median", "trimmed_mean:0.2", "krum:2", "multikrum:2:4"])
def test_same_inputs_give_the_same_bytes(spec: str) -> None:
    weights = [float(30 + 7 * i) for i in range(9)]
    first = as_bytes(get_rule(spec)(random_states(9, seed=1), weights))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count must not matter
    try:
        second = as_bytes(get_rule(spec)(random_states(9, seed=1), weights))
    finally:
        torch.set_num_threads(threads)
    assert first == second


@pytest.mark.parametrize("spec", ["fedavg", "krum:0"])
def test_key_order_of_the_dicts_does_not_matter(spec: str) -> None:
    states = random_states(3, seed=2)
    reordered = [OrderedDict(reversed(list(s.items()))) for s in states]
    rule = get_rule(spec)
    assert as_bytes(rule(states, [1, 2, 3])) == as_bytes(rule(reordered, [1, 2, 3]))


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, width=32, allow_subnormal=False), min_size=1, max_size=6),
    n=st.integers(1, 7),
    spec=st.sampled_from(["fedavg", "weighted", "median", "trimmed_mean:0.3", "krum:1", "multikrum:1"]),
)
def test_identical_states_aggregate_to_themselves(values: list[float], n: int, spec: str) -> None:
    states = [state(values) for _ in range(n)]
    out = get_rule(spec)(states, [1.0 + i for i in range(n)])
    assert torch.equal(out["w"], states[0]["w"])


# ---- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", RULES)
def test_every_rule_refuses_mismatched_states(spec: str) -> None:
    rule = get_rule(spec)
    good = state([1.0, 2.0])
    with pytest.raises(FedmarketError, match="different parameters"):
        rule([good, OrderedDict(w=torch.tensor([1.0, 2.0]))], [1, 1])
    with pytest.raises(FedmarketError, match="shape"):
        rule([good, state([1.0, 2.0, 3.0])], [1, 1])
    with pytest.raises(FedmarketError, match="float64"):
        rule([good, OrderedDict(w=torch.tensor([1.0, 2.0], dtype=torch.float64), b=torch.zeros(1))], [1, 1])
    with pytest.raises(FedmarketError, match="NaN"):
        rule([good, state([1.0, float("nan")])], [1, 1])
    with pytest.raises(FedmarketError, match="weights"):
        rule([good, good], [1])
    with pytest.raises(FedmarketError, match="at least one"):
        rule([], [])


def test_fedavg_refuses_negative_or_all_zero_counts() -> None:
    with pytest.raises(FedmarketError, match="non-negative"):
        get_rule("fedavg")(scalars(1.0, 2.0), [3, -1])
    with pytest.raises(FedmarketError, match="positive sample count"):
        get_rule("fedavg")(scalars(1.0, 2.0), [0, 0])
    with pytest.raises(FedmarketError, match="finite"):
        get_rule("fedavg")(scalars(1.0, 2.0), [1, float("inf")])


@pytest.mark.parametrize(
    "spec",
    [
        "fedsgd",
        "median:1",
        "fedavg:2",
        "trimmed_mean:0.5",
        "trimmed_mean:-0.1",
        "trimmed_mean:x",
        "trimmed_mean:0.1:2",
        "krum:-1",
        "krum:1.5",
        "krum:1:2",
        "multikrum:1:0",
        "multikrum:a",
        "multikrum:1:2:3",
    ],
)
def test_get_rule_refuses_bad_specs(spec: str) -> None:
    with pytest.raises(FedmarketError):
        get_rule(spec)


def test_get_rule_knows_every_listed_name() -> None:
    for name in RULES:
        assert callable(get_rule(name))
    assert get_rule(" Trimmed-Mean:0.2 ") is not None
