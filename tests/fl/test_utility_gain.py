"""separation_gain with hand-built updates: the pay is the measured separation gain at the FedAvg
weight, a label flipper that takes separation away is poison, and the loss guard reads the same
cached outputs as a fresh evaluation would."""

from __future__ import annotations

import numpy as np
import pytest

from fedmarket.fl.models import ModelSpec
from fedmarket.fl.training import TrainConfig, train_local
from fedmarket.fl.utility import ScoringRequest, Update, ValidationData, attacks, get_raw_utility
from fedmarket.fl.utility.base import round_view
from fedmarket.fl.utility.separation_gain import GAIN_BOUND, base_separation, gains

pytestmark = pytest.mark.usefixtures("one_torch_thread")
POISON = -0.1  # the contract's default poison threshold, in utility units


@pytest.fixture(scope="module")
def market_round() -> dict:
    """Digits, MLP lr 0.05: a global model one warm-up step in, five honest trainers on disjoint
    random slices and one label flipper (labels c -> 9 - c), validator data of its own."""
    from fedmarket.fl.datasets import load_dataset

    data = load_dataset("digits")
    spec = ModelSpec("mlp", data.input_shape, data.num_outputs)
    order = np.random.default_rng(0).permutation(len(data.y))
    val, warm = order[:200], order[200:500]
    config = TrainConfig(lr=0.05, seed=1)
    current, _, _ = train_local(spec, spec.init_state(0), data.x[warm], data.y[warm], config)
    updates = []
    for j in range(6):
        idx = order[500 + 100 * j : 600 + 100 * j]
        y = data.y[idx] if j < 5 else attacks.flipped_labels(data.y[idx], data.num_outputs)
        state, n, _ = train_local(spec, current, data.x[idx], y, TrainConfig(lr=0.05, seed=10 + j))
        updates.append(Update(state, n))
    return {"spec": spec, "global": current, "config": config, "validation": ValidationData(data.x[val], data.y[val]), "updates": updates}


def score(r: dict, updates: list[Update]) -> list[float]:
    return get_raw_utility("separation_gain")(ScoringRequest(r["global"], updates, r["validation"], r["spec"], seed=3, train=r["config"]))


def test_honest_updates_are_paid_and_a_label_flipper_is_poison(market_round: dict) -> None:
    r = market_round
    got = score(r, r["updates"])
    assert all(s > 0 for s in got[:5])
    assert got[5] < POISON
    view = round_view(r["global"], r["updates"], r["validation"], r["spec"])
    g = gains(view, base_separation(view))
    assert all(x is not None for x in g)
    assert g[5] is not None and g[5] < 0 < min(x for x in g[:5] if x is not None)  # it takes separation away


def test_an_update_taking_away_more_than_gain_bound_typical_gains_trips_the_guard(market_round: dict) -> None:
    """The flipper claims forty times its samples: at its larger FedAvg weight it takes away more
    separation than GAIN_BOUND typical updates add."""
    r = market_round
    flipped = r["updates"][5]
    view = round_view(r["global"], [*r["updates"][:5], Update(flipped.state, 40 * flipped.num_samples)], r["validation"], r["spec"])
    g = gains(view, base_separation(view))
    typical = float(np.median([abs(x) for x in g if x is not None]))
    assert g[5] is not None and g[5] / typical < -GAIN_BOUND
    assert score(r, view.updates)[5] < POISON


def test_the_pay_is_the_gain_so_a_trainer_with_less_data_earns_less(market_round: dict) -> None:
    """The same trainer's data cut to a fifth: a shorter update, a smaller gain at a smaller weight."""
    from fedmarket.fl.datasets import load_dataset

    r = market_round
    data = load_dataset("digits")
    order = np.random.default_rng(0).permutation(len(data.y))
    few = order[500:520]
    small, n, _ = train_local(r["spec"], r["global"], data.x[few], data.y[few], TrainConfig(lr=0.05, seed=10))
    got = score(r, [*r["updates"][1:5], r["updates"][0], Update(small, n)])
    assert 0 < got[5] < got[4]


def test_the_loss_guard_reads_the_same_outputs_as_an_evaluation(market_round: dict) -> None:
    r = market_round
    view = round_view(r["global"], r["updates"], r["validation"], r["spec"])
    for i, delta in enumerate(view.deltas):
        assert delta is not None
        assert view.weighted_loss(i) == view.loss(view.state_at(delta, view.weights[i]))
