"""CMFL: the distance utility and the selection strategies S1 / S2, by hand."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation import SELECTION_RULES, get_rule, get_scored_rule, needs_scores
from fedmarket.fl.aggregation.selection import ranking, select_best, select_spread
from fedmarket.fl.models import ModelSpec
from fedmarket.fl.training import TrainConfig
from fedmarket.fl.utility import MALFORMED_SCORE, ScoringRequest, Update, ValidationData, get_raw_utility, get_utility
from fedmarket.fl.utility.base import round_view
from fedmarket.fl.utility.cmfl_distance import distance_scores

# y = w . x + b on x = (1, 0), (0, 1) with targets 1, 2, from the zero model. One SGD step on both
# samples (batch 2, lr 0.1) of the mean squared error: grad w = mean(2 (0 - y) x) = (-1, -2),
# grad b = mean(2 (0 - y)) = -3, so the member's step is w = (0.1, 0.2), b = 0.3.
LINEAR = ModelSpec("linear", (2,), 1)
MEMBER_DATA = ValidationData(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), np.array([1.0, 2.0], dtype=np.float32))
ONE_STEP = TrainConfig(batch_size=2, lr=0.1)


def linear(w1: float, w2: float, b: float) -> dict[str, torch.Tensor]:
    return {"fc.weight": torch.tensor([[w1, w2]], dtype=torch.float32), "fc.bias": torch.tensor([b], dtype=torch.float32)}


ZERO = linear(0.0, 0.0, 0.0)
STEP = (0.1, 0.2, 0.3)


def cmfl(updates: list[dict[str, torch.Tensor]]) -> list[float]:
    request = ScoringRequest(ZERO, [Update(u, 2) for u in updates], MEMBER_DATA, LINEAR, seed=0, train=ONE_STEP)
    return get_raw_utility("cmfl_distance")(request)


def test_cmfl_distance_by_hand() -> None:
    # delta_m = (w1, w2, b) = (0.1, 0.2, 0.3), |delta_m| = sqrt(0.14); (0.2, -0.1, 0) is orthogonal
    # to it (0.02 - 0.02 + 0) with norm sqrt(0.05).
    scores = cmfl(
        [
            linear(*STEP),  # the member's own step: distance 0
            linear(0.2, 0.4, 0.6),  # twice it: |d - m| = |m|, |d| + |m| = 3 |m|
            linear(-0.1, -0.2, -0.3),  # its opposite: |d - m| = 2 |m| = |d| + |m|
            linear(0.2, -0.1, 0.0),  # orthogonal: |d - m| = sqrt(0.05 + 0.14)
            ZERO,  # a free rider
        ]
    )
    m, d = math.sqrt(0.14), math.sqrt(0.05)
    expected = [1.0, 1.0 - 1.0 / 3.0, 0.0, 1.0 - math.sqrt(0.19) / (d + m), 0.0]
    assert scores == pytest.approx(expected, abs=1e-6)
    assert scores[4] == 0.0 and scores[2] == pytest.approx(0.0, abs=1e-7)


def test_cmfl_distance_in_micro_units_and_malformed() -> None:
    request = ScoringRequest(ZERO, [Update(linear(0.2, 0.4, 0.6), 2), Update({}, 2), Update(ZERO, 5)], MEMBER_DATA, LINEAR, seed=0, train=ONE_STEP)
    assert get_utility("cmfl_distance")(request) == [666_667, round(MALFORMED_SCORE * 1e6), 0]


def test_distance_scores_with_a_given_member_step() -> None:
    view = round_view(ZERO, [Update(linear(0.0, 3.0, 4.0), 1), Update(linear(0.0, 0.0, 0.0), 1)], MEMBER_DATA, LINEAR)
    # member step (b, w1, w2) = (4, 0, 3): the update (b, w1, w2) = (4, 0, 3) is it; the second is a free rider.
    assert distance_scores(view, np.array([4.0, 0.0, 3.0])) == pytest.approx([1.0, 0.0])
    # member step (0, 0, 3), |m| = 3; update (4, 0, 3), |d| = 5, |d - m| = 4: 1 - 4 / 8.
    assert distance_scores(view, np.array([0.0, 0.0, 3.0])) == pytest.approx([0.5, 0.0])
    # a member that did not move cannot judge: 0 for every well-formed update
    assert distance_scores(view, np.zeros(3)) == [0.0, 0.0]


# ---- selection: S1 and S2 ---------------------------------------------------------------------


def scalars(*values: float) -> list[OrderedDict[str, torch.Tensor]]:
    return [OrderedDict(w=torch.tensor([v], dtype=torch.float32)) for v in values]


def w_of(state: dict[str, torch.Tensor]) -> float:
    return float(state["w"][0])


def test_ranking_and_the_selections_by_hand() -> None:
    scores = [0.2, 0.9, 0.5, 0.9, 0.1, 0.4]
    assert ranking(scores) == [1, 3, 2, 5, 0, 4]  # equal scores: the earlier client first
    assert select_best(scores, 2) == [1, 3]
    assert select_best(scores) == [1, 2, 3]  # k = ceil(6 / 2)
    assert select_best(scores, 10) == [0, 1, 2, 3, 4, 5]  # clamped to n
    # S2, k = 3 of n = 6: ranks round(0), round(2.5) = 3 (half up), round(5) -> clients 1, 5, 4
    assert select_spread(scores, 3) == [1, 4, 5]
    # k = 4: ranks 0, round(5/3) = 2, round(10/3) = 3, 5 -> clients 1, 2, 5, 4
    assert select_spread(scores, 4) == [1, 2, 4, 5]
    assert select_spread(scores, 1) == [1]  # one update: the best
    assert select_spread(scores, 6) == [0, 1, 2, 3, 4, 5]


def test_s1_averages_the_best_scored_by_their_weights() -> None:
    states = scalars(1.0, 2.0, 30.0, 4.0)
    scores = [0.5, 0.7, -1.0, 0.1]
    # S1 k=2: clients 1 and 0, weights 3 and 1: (1 * 1 + 3 * 2) / 4
    assert w_of(get_scored_rule("cmfl_s1:2")(states, [1, 3, 1, 1], scores)) == pytest.approx(1.75)
    # default k = ceil(4 / 2) = 2: the same
    assert w_of(get_scored_rule("cmfl_s1")(states, [1, 3, 1, 1], scores)) == pytest.approx(1.75)


def test_s2_averages_a_spread_of_the_ranking() -> None:
    states = scalars(1.0, 2.0, 30.0, 4.0, 5.0)
    scores = [0.5, 0.7, -1.0, 0.1, 0.3]  # ranking: 1, 0, 4, 3, 2
    # k = 3: ranks 0, 2, 4 -> clients 1, 4, 2 (the worst too): (2 + 5 + 30) / 3
    assert w_of(get_scored_rule("cmfl_s2:3")(states, [1] * 5, scores)) == pytest.approx(37.0 / 3.0)
    # k = 2: the best and the worst, weights 2 and 1: (2 * 2 + 30) / 3
    assert w_of(get_scored_rule("cmfl-S2:2")(states, [1, 2, 1, 1, 1], scores)) == pytest.approx(34.0 / 3.0)


def test_scored_rules_of_the_plain_rules_ignore_the_scores() -> None:
    states = scalars(1.0, 3.0)
    assert w_of(get_scored_rule("fedavg")(states, [1, 3], [100.0, -100.0])) == w_of(get_rule("fedavg")(states, [1, 3])) == 2.5


@pytest.mark.parametrize("rule", SELECTION_RULES)
def test_selection_rules_need_scores(rule: str) -> None:
    assert needs_scores(f"{rule}:3") and not needs_scores("fedavg")
    with pytest.raises(FedmarketError, match="committee's scores"):
        get_rule(rule)
    scored = get_scored_rule(rule)
    with pytest.raises(FedmarketError, match="scores"):
        scored(scalars(1.0, 2.0), [1, 1], [0.5])
    with pytest.raises(FedmarketError, match="finite score"):
        scored(scalars(1.0, 2.0), [1, 1], [0.5, float("nan")])
    with pytest.raises(FedmarketError, match="positive sum"):
        scored(scalars(1.0, 2.0), [0, 0], [0.5, 0.1])
    for bad in (f"{rule}:0", f"{rule}:-1", f"{rule}:x", f"{rule}:1:2"):
        with pytest.raises(FedmarketError):
            get_scored_rule(bad)
