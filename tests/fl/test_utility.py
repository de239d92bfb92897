"""Validator utilities: hand-computed values, micro-units, determinism, guards, attacks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedmarket.errors import FedmarketError
from fedmarket.fl.models import ModelSpec
from fedmarket.fl.training import TrainConfig, train_local
from fedmarket.fl.utility import (
    DEFAULT_UTILITY,
    MALFORMED_SCORE,
    UTILITIES,
    ScoringRequest,
    Update,
    ValidationData,
    attacks,
    get_raw_utility,
    get_utility,
    to_micro,
)
from fedmarket.fl.utility.base import round_view
from fedmarket.fl.utility.reference import (
    CHANCE_SIGMAS,
    NORM_BOUND,
    Reference,
    guarded_scores,
    norm_ratio,
)
from fedmarket.fl.utility.separation_cosine import separation_contrast

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---- a linear regression small enough to compute by hand ----------------------------------------
# y = w . x + b on x = (1, 0), (0, 1) with targets 1, 2; the global model is all zeros: L0 = (1 + 4) / 2.
LINEAR = ModelSpec("linear", (2,), 1)
REGRESSION = ValidationData(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), np.array([1.0, 2.0], dtype=np.float32))


def linear_state(w1: float, w2: float, b: float = 0.0) -> dict[str, torch.Tensor]:
    return {"fc.weight": torch.tensor([[w1, w2]], dtype=torch.float32), "fc.bias": torch.tensor([b], dtype=torch.float32)}


ZERO = linear_state(0.0, 0.0)


def raw(
    name: str, updates: list[Update], data: ValidationData = REGRESSION, spec: ModelSpec = LINEAR, global_state: dict[str, torch.Tensor] = ZERO, **kwargs
) -> list[float]:
    return get_raw_utility(name)(ScoringRequest(global_state, updates, data, spec, seed=0, **kwargs))


def test_loss_delta_by_hand() -> None:
    # w = (1, 0): predictions 1, 0 -> L = (0 + 4) / 2 = 2, so the loss drops by 0.5.
    assert raw("loss_delta", [Update(linear_state(1.0, 0.0), 1)]) == pytest.approx([0.5], abs=1e-12)


def test_weighted_loss_delta_by_hand() -> None:
    # p = 1/4 for the first update: w = (0.25, 0), L = (0.75^2 + 2^2) / 2 = 2.28125 -> 2.5 - 2.28125.
    # p = 3/4 for the second: w = (0, 1.5), L = (1 + 0.25) / 2 = 0.625 -> 1.875.
    scores = raw("weighted_loss_delta", [Update(linear_state(1.0, 0.0), 1), Update(linear_state(0.0, 2.0), 3)])
    assert scores == pytest.approx([0.21875, 1.875], abs=1e-12)


def test_leave_one_out_by_hand() -> None:
    # All: w = (0.5, 1), L = (0.25 + 1) / 2 = 0.625. Without A: B alone, L = 0.5. Without B: A alone, L = 2.
    scores = raw("loo", [Update(linear_state(1.0, 0.0), 1), Update(linear_state(0.0, 2.0), 1)])
    assert scores == pytest.approx([0.5 - 0.625, 2.0 - 0.625], abs=1e-12)


def test_leave_one_out_of_a_single_update_compares_with_the_global_model() -> None:
    assert raw("loo", [Update(linear_state(1.0, 0.0), 5)]) == pytest.approx([2.5 - 2.0], abs=1e-12)


def test_separation_contrast_by_hand() -> None:
    log_p = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.1, 0.3, 0.6]], dtype=torch.float64))
    labels = torch.tensor([0, 1, 1])
    # class 0: log .7 - mean(log .4, log .1); class 1: mean(log .5, log .3) - log .2; class 2 has no sample.
    expected = ((math.log(0.7) - (math.log(0.4) + math.log(0.1)) / 2) + ((math.log(0.5) + math.log(0.3)) / 2 - math.log(0.2))) / 2
    assert float(separation_contrast(log_p, labels)) == pytest.approx(expected, abs=1e-12)


def test_separation_contrast_of_one_class_is_zero() -> None:
    log_p = torch.log(torch.tensor([[0.7, 0.3], [0.4, 0.6]], dtype=torch.float64))
    assert float(separation_contrast(log_p, torch.tensor([1, 1]))) == 0.0


# ---- micro-units, registry ---------------------------------------------------------------------


def test_to_micro_rounds_and_clips() -> None:
    assert to_micro(0.1234564) == 123456
    assert to_micro(-0.0000004) == 0
    assert to_micro(-1.0) == -1_000_000
    assert to_micro(1e9) == 1000 * 1_000_000
    assert to_micro(float("-inf")) == -1000 * 1_000_000
    assert to_micro(float("nan")) == -1000 * 1_000_000
    assert isinstance(to_micro(0.5), int)


def test_registry() -> None:
    assert DEFAULT_UTILITY in UTILITIES
    assert set(UTILITIES) >= {"loss_delta", "loo", "reference_cosine", "separation_cosine", "novel_separation", "separation_gain"}
    with pytest.raises(FedmarketError, match="unknown utility"):
        get_utility("shapley")
    assert get_utility("Reference-Cosine") is not None


# ---- on digits: free riders, malformed updates, determinism --------------------------------------


@pytest.fixture(scope="module")
def digits_round() -> dict:
    """A global model after one FedAvg step on digits, two honest updates, validator data."""
    from fedmarket.fl.datasets import load_dataset

    data = load_dataset("digits")
    spec = ModelSpec("mlp", data.input_shape, data.num_outputs)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.y))
    val, a, b = order[:200], order[200:320], order[320:440]
    config = TrainConfig(lr=0.05, seed=1)
    start = spec.init_state(0)
    warm, _, _ = train_local(spec, start, data.x[order[440:800]], data.y[order[440:800]], config)
    honest_a, na, _ = train_local(spec, warm, data.x[a], data.y[a], config)
    honest_b, nb, _ = train_local(spec, warm, data.x[b], data.y[b], TrainConfig(lr=0.05, seed=2))
    return {
        "data": data,
        "spec": spec,
        "global": warm,
        "config": config,
        "validation": ValidationData(data.x[val], data.y[val]),
        "honest": [Update(honest_a, na), Update(honest_b, nb)],
        "train_a": (data.x[a], data.y[a]),
    }


# Not loo: a free rider dilutes the round's aggregate, so removing it changes the others' loss
# (the fairness benchmark shows leave-one-out paying free riders).
@pytest.mark.parametrize("name", [u for u in UTILITIES if u != "loo"])
def test_a_free_rider_scores_exactly_zero(digits_round: dict, name: str) -> None:
    r = digits_round
    updates = r["honest"] + [Update(attacks.free_ride(r["global"]), 50)]
    scores = get_utility(name)(ScoringRequest(r["global"], updates, r["validation"], r["spec"], seed=3, train=r["config"]))
    assert scores[2] == 0


@pytest.mark.parametrize("name", UTILITIES)
def test_malformed_updates_score_as_poison(digits_round: dict, name: str) -> None:
    r = digits_round
    nan_state = {k: v.clone() for k, v in r["honest"][0].state.items()}
    first = sorted(nan_state)[0]
    nan_state[first].view(-1)[0] = float("nan")
    missing = {k: v for k, v in r["honest"][0].state.items() if k != first}
    wrong_dtype = {k: v.double() for k, v in r["honest"][0].state.items()}
    updates = [r["honest"][0], Update(nan_state, 10), Update(missing, 10), Update(wrong_dtype, 10)]
    scores = get_utility(name)(ScoringRequest(r["global"], updates, r["validation"], r["spec"], seed=3, train=r["config"]))
    assert scores[1:] == [to_micro(MALFORMED_SCORE)] * 3


def test_a_malformed_update_counts_as_an_average_one_in_the_weights(digits_round: dict) -> None:
    """Its own claim is ignored (it could be anything); the honest updates keep the weights they
    would have among peers, not the whole round between them."""
    r = digits_round
    (a, na), (b, nb) = r["honest"]
    broken = Update({}, 10**12)
    view = round_view(r["global"], [Update(a, na), broken, Update(b, nb), broken], r["validation"], r["spec"])
    mean = (na + nb) / 2
    assert view.weights == pytest.approx([na / (4 * mean), 0.0, nb / (4 * mean), 0.0])
    assert round_view(r["global"], [Update(a, na), Update(b, nb)], r["validation"], r["spec"]).weights == pytest.approx([na / (na + nb), nb / (na + nb)])


def test_sample_counts_must_be_positive_integers(digits_round: dict) -> None:
    r = digits_round
    with pytest.raises(FedmarketError, match="sample count"):
        get_utility()(ScoringRequest(r["global"], [Update(r["honest"][0].state, 0)], r["validation"], r["spec"], seed=0))


@pytest.mark.parametrize("name", UTILITIES)
def test_same_inputs_give_the_same_scores(digits_round: dict, name: str) -> None:
    r = digits_round
    updates = r["honest"] + [Update(attacks.sign_flip(r["global"], r["honest"][0].state), 120)]
    first = get_utility(name)(ScoringRequest(r["global"], updates, r["validation"], r["spec"], seed=7, train=r["config"]))
    second = get_utility(name)(ScoringRequest(r["global"], updates, r["validation"], r["spec"], seed=7, train=r["config"]))
    assert first == second
    assert all(isinstance(s, int) for s in first)


@pytest.mark.parametrize("name", ["separation_gain", "novel_separation", "separation_cosine", "reference_cosine"])
def test_cosine_utilities_on_one_round(digits_round: dict, name: str) -> None:
    r = digits_round
    g, honest = r["global"], r["honest"][0]
    updates = r["honest"] + [
        Update(attacks.sign_flip(g, honest.state), honest.num_samples),
        Update(attacks.scale(g, honest.state, 10.0), honest.num_samples),
        Update(attacks.gaussian_noise(g, attacks.update_rms(g, honest.state), seed=5), honest.num_samples),
    ]
    scores = get_raw_utility(name)(ScoringRequest(g, updates, r["validation"], r["spec"], seed=3, train=r["config"]))
    assert scores[0] > 0 and scores[1] > 0
    assert scores[2] < 0 and scores[3] < 0
    assert scores[4] <= 0  # a random direction stays under the chance margin


# ---- guards by hand ------------------------------------------------------------------------------


def test_norm_ratio_corrects_for_the_number_of_steps() -> None:
    config = TrainConfig(epochs=1, batch_size=10)
    reference = Reference(np.array([3.0, 4.0]), 5.0, steps=4)  # |delta_ref| = 5 after 4 steps
    # |delta| = 10 after ceil(160 / 10) = 16 steps: (10 / 5) / sqrt(16 / 4) = 1.
    assert norm_ratio(np.array([6.0, 8.0]), 160, reference, config) == pytest.approx(1.0)
    # |delta| = 10 after 4 steps: 2.
    assert norm_ratio(np.array([0.0, 10.0]), 40, reference, config) == pytest.approx(2.0)
    assert norm_ratio(np.array([1.0, 0.0]), 40, Reference(np.zeros(2), 0.0, 4), config) == 0.0


def wide_state(w1: float, w2: float) -> dict[str, torch.Tensor]:
    """A linear model on 399 features of which the data uses the first two: d = 400 parameters."""
    weight = torch.zeros(1, 399, dtype=torch.float32)
    weight[0, 0], weight[0, 1] = w1, w2
    return {"fc.weight": weight, "fc.bias": torch.zeros(1, dtype=torch.float32)}


def test_guards_by_hand() -> None:
    """Alignment minus 4/sqrt(d); a norm past the bound or a loss rise past 5 % turns negative."""
    spec = ModelSpec("linear", (399,), 1)
    x = np.zeros((2, 399), dtype=np.float32)
    x[0, 0] = x[1, 1] = 1.0
    data = ValidationData(x, REGRESSION.y)  # the same two samples as REGRESSION: L0 = 2.5
    config = TrainConfig(epochs=1, batch_size=1)
    reference = Reference(np.eye(400)[0], 1.0, steps=1)
    global_state = wide_state(0.0, 0.0)
    small = wide_state(0.1, 0.2)  # helps: loss falls; |delta| = 0.2236 < NORM_BOUND
    big = wide_state(3.0, 4.0)  # |delta| = 5 > NORM_BOUND = 4.5: norm guard
    harmful = wide_state(-0.5, 0.0)  # |delta| small, but the loss rises
    updates = [Update(small, 1), Update(big, 1), Update(harmful, 1), Update(attacks.free_ride(global_state), 1)]
    view = round_view(global_state, updates, data, spec)
    scores = guarded_scores(view, [0.5, 0.5, 0.5, 0.5], reference, config)
    margin = CHANCE_SIGMAS / math.sqrt(400)  # 0.2
    assert scores[0] == pytest.approx(0.5 - margin)
    assert scores[1] == pytest.approx(-(5.0 / NORM_BOUND - 1.0))
    # At its FedAvg weight 1/4 the harmful update gives w = (-0.125, 0): L = (1.265625 + 4) / 2 = 2.6328125,
    # a rise of 5.3125 %, so the excess is 0.053125 / 0.05 - 1.
    assert scores[2] == pytest.approx(-(0.053125 / 0.05 - 1.0))
    assert scores[3] == 0.0


# ---- attacks -------------------------------------------------------------------------------------


def test_attacks_by_hand() -> None:
    g = linear_state(1.0, 2.0, 0.5)
    u = linear_state(2.0, 0.0, 0.5)
    assert attacks.sign_flip(g, u)["fc.weight"].tolist() == [[0.0, 4.0]]
    assert attacks.scale(g, u, 10.0)["fc.weight"].tolist() == [[11.0, -18.0]]
    assert attacks.scale(g, u, 10.0)["fc.bias"].tolist() == [0.5]
    ride = attacks.free_ride(g)
    assert all(torch.equal(ride[k], g[k]) for k in g) and ride["fc.weight"] is not g["fc.weight"]
    assert attacks.update_rms(g, u) == pytest.approx(math.sqrt((1 + 4 + 0) / 3))
    assert attacks.flipped_labels(np.array([0, 3, 9]), 10).tolist() == [9, 6, 0]


def test_gaussian_noise_is_seeded() -> None:
    g = {"w": torch.zeros(20_000, dtype=torch.float32)}
    a = attacks.gaussian_noise(g, 0.5, seed=4)
    assert torch.equal(a["w"], attacks.gaussian_noise(g, 0.5, seed=4)["w"])
    assert not torch.equal(a["w"], attacks.gaussian_noise(g, 0.5, seed=5)["w"])
    assert float(a["w"].std()) == pytest.approx(0.5, rel=0.02)
    with pytest.raises(FedmarketError):
        attacks.gaussian_noise(g, -1.0, seed=0)


def test_label_flip_trains_on_flipped_labels(digits_round: dict) -> None:
    r = digits_round
    x, y = r["train_a"]
    flipped, n = attacks.label_flip(r["spec"], r["global"], x, y, r["config"])
    expected, _, _ = train_local(r["spec"], r["global"], x, 9 - y, r["config"])
    assert n == len(y)
    assert all(torch.equal(flipped[k], expected[k]) for k in expected)
    with pytest.raises(FedmarketError, match="class labels"):
        attacks.label_flip(LINEAR, ZERO, REGRESSION.x, REGRESSION.y, r["config"])
