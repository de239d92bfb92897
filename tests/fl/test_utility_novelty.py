"""novel_separation and separation_gain (which shares its novelty tests) with hand-built updates:
public information (an extrapolation of past global models, a stale copy, noise around them, a
same-round copy) earns nothing; an honest update keeps a positive score even when it correlates
with the previous step."""

from __future__ import annotations

import numpy as np
import pytest

from fedmarket.fl.models import ModelSpec
from fedmarket.fl.training import TrainConfig, train_local
from fedmarket.fl.utility import PublicPast, ScoringRequest, Update, ValidationData, attacks, get_raw_utility, get_utility
from fedmarket.fl.utility.novel_separation import duplicates, orthonormal_basis, residual

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NOVELTY_UTILITIES = ("novel_separation", "separation_gain")


@pytest.fixture(scope="module")
def past_round() -> dict:
    """Digits, MLP: a model one round in (w_prev -> w), two honest updates from w, validator data."""
    from fedmarket.fl.datasets import load_dataset

    data = load_dataset("digits")
    spec = ModelSpec("mlp", data.input_shape, data.num_outputs)
    order = np.random.default_rng(0).permutation(len(data.y))
    val, a, b, warm_idx = order[:200], order[200:320], order[320:440], order[440:800]
    config = TrainConfig(lr=0.05, seed=1)
    previous = spec.init_state(0)
    current, _, _ = train_local(spec, previous, data.x[warm_idx], data.y[warm_idx], config)
    honest_a, na, _ = train_local(spec, current, data.x[a], data.y[a], config)
    honest_b, nb, _ = train_local(spec, current, data.x[b], data.y[b], TrainConfig(lr=0.05, seed=2))
    return {
        "spec": spec,
        "previous": previous,
        "global": current,
        "config": config,
        "validation": ValidationData(data.x[val], data.y[val]),
        "a": Update(honest_a, na),
        "b": Update(honest_b, nb),
    }


def scores(r: dict, updates: list[Update], public: PublicPast, utility: str = "novel_separation") -> list[float]:
    return get_raw_utility(utility)(ScoringRequest(r["global"], updates, r["validation"], r["spec"], seed=3, train=r["config"], public=public))


@pytest.mark.parametrize("utility", NOVELTY_UTILITIES)
def test_a_pure_extrapolation_scores_zero_and_an_honest_update_keeps_its_score(past_round: dict, utility: str) -> None:
    r = past_round
    public = PublicPast((r["previous"],))
    momentum = attacks.momentum_free_ride(r["global"], r["previous"])
    double = attacks.momentum_free_ride(r["global"], r["previous"], factor=2.0)
    got = scores(r, [r["a"], r["b"], Update(momentum, 100), Update(double, 100)], public, utility)
    assert got[0] > 0 and got[1] > 0
    assert got[2] == 0.0 and got[3] <= 0.0
    # Without the public past the same extrapolation is just a good direction: separation_cosine pays it.
    old = get_raw_utility("separation_cosine")(
        ScoringRequest(r["global"], [r["a"], Update(momentum, 100)], r["validation"], r["spec"], seed=3, train=r["config"])
    )
    assert old[1] > 0


@pytest.mark.parametrize("utility", NOVELTY_UTILITIES)
def test_an_honest_update_correlated_with_the_previous_step_still_scores_positive(past_round: dict, utility: str) -> None:
    """The previous step was half this very update (as if its trainer's last update dominated FedAvg)."""
    r = past_round
    g, a, b = r["global"], r["a"].state, r["b"].state
    previous = {k: g[k] - 0.5 * (a[k] - g[k]) - 0.5 * (b[k] - g[k]) for k in g}
    step = np.concatenate([(g[k] - previous[k]).reshape(-1).numpy() for k in sorted(g)]).astype(np.float64)
    delta = np.concatenate([(a[k] - g[k]).reshape(-1).numpy() for k in sorted(g)]).astype(np.float64)
    assert np.dot(step, delta) / (np.linalg.norm(step) * np.linalg.norm(delta)) > 0.5
    got = scores(r, [r["a"], Update(attacks.momentum_free_ride(g, previous), 100)], PublicPast((previous,)), utility)
    assert got[0] > 0 and got[1] == 0.0


@pytest.mark.parametrize("utility", NOVELTY_UTILITIES)
def test_stale_copies_and_noise_around_public_models_earn_nothing(past_round: dict, utility: str) -> None:
    r = past_round
    g, previous = r["global"], r["previous"]
    old_update = r["b"].state  # revealed last round, trained from `previous` in this story
    public = PublicPast((previous,), ((old_update, g),))
    stale = attacks.stale_copy(g, old_update, g)
    step_rms = attacks.update_rms(previous, g)
    noisy_momentum = attacks.gaussian_noise(attacks.momentum_free_ride(g, previous), step_rms, seed=4)
    noisy_stale = attacks.gaussian_noise(stale, step_rms, seed=5)
    got = scores(r, [r["a"], Update(stale, 100), Update(noisy_momentum, 100), Update(noisy_stale, 100)], public, utility)
    assert got[0] > 0
    assert got[1] == 0.0 and got[2] <= 0.0 and got[3] <= 0.0


@pytest.mark.parametrize("utility", NOVELTY_UTILITIES)
def test_a_same_round_copy_scores_zero_the_original_keeps_its_score(past_round: dict, utility: str) -> None:
    r = past_round
    copy = attacks.near_copy(r["global"], r["a"].state, seed=6)
    micro = get_utility(utility)(
        ScoringRequest(r["global"], [r["a"], r["b"], Update(copy, r["a"].num_samples)], r["validation"], r["spec"], seed=3, train=r["config"])
    )
    assert micro[0] > 0 and micro[1] > 0 and micro[2] == 0


def test_the_projection_by_hand() -> None:
    basis = orthonormal_basis([np.array([2.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0]), np.array([3.0, 3.0, 0.0]), np.zeros(3)])
    assert len(basis) == 2  # the third is dependent, the fourth zero
    assert residual(np.array([5.0, -2.0, 7.0]), basis) == pytest.approx([0.0, 0.0, 7.0])
    deltas = [np.array([1.0, 0.0, 0.0]), None, np.array([1.0, 0.01, 0.0]), np.array([0.0, 1.0, 0.0]), np.zeros(3)]
    assert duplicates(deltas, orthonormal_basis([])) == [False, False, True, False, False]


@pytest.mark.parametrize("utility", NOVELTY_UTILITIES)
def test_a_one_sided_perturbation_no_gradient_step_can_make_is_poison(past_round: dict, utility: str) -> None:
    """ALIE's mean + std of two honest updates shifts every class's logit alike: slashed; the honest
    updates it was built from have no component along those directions (float32 rounding only)."""
    from fedmarket.fl.utility.base import round_view
    from fedmarket.fl.utility.logit_shift import SHIFT_TOLERANCE, output_layer

    r = past_round
    alie = attacks.alie(r["global"], [r["a"].state, r["b"].state], 1.0)
    view = round_view(r["global"], [r["a"], r["b"], Update(alie, 120)], r["validation"], r["spec"])
    layer = output_layer(view)
    assert layer is not None and layer.shape == (10, 200)
    shares = [layer.shift_share(d) for d in view.deltas]
    assert max(shares[:2]) < 1e-5 and shares[2] > 10 * SHIFT_TOLERANCE
    got = scores(r, [r["a"], r["b"], Update(alie, 120)], PublicPast((r["previous"],)), utility)
    assert got[0] > 0 and got[1] > 0 and got[2] <= -0.5


def test_pay_grows_with_the_update_and_shrinks_with_a_sample_count_it_did_not_train_on(past_round: dict) -> None:
    from fedmarket.fl.utility.base import round_view
    from fedmarket.fl.utility.novel_separation import size_weight
    from fedmarket.fl.utility.reference import train_reference

    r = past_round
    public = PublicPast((r["previous"],))
    honest = scores(r, [r["a"]], public)[0]
    claimed_ten_times = scores(r, [Update(r["a"].state, 10 * r["a"].num_samples)], public)[0]
    assert 0 < claimed_ten_times < honest
    view = round_view(r["global"], [r["a"]], r["validation"], r["spec"])
    reference = train_reference(view, r["config"], 3)
    once = size_weight(view.deltas[0], r["a"].num_samples, reference, r["config"])
    twice = size_weight(2 * view.deltas[0], r["a"].num_samples, reference, r["config"])
    assert 4 * once <= twice <= 8 * once  # the squared length, and a longer update per claimed step


def test_harm_to_some_classes_withholds_pay_but_never_deepens_a_negative_score() -> None:
    """Two class directions e1, e2 (grad S = e1 + e2) in 200 dimensions (so that chance's share of
    their span is small), no public past, no margin; HARM_WEIGHT 0.5."""
    from fedmarket.fl.utility.novel_separation import HARM_WEIGHT, novelty_alignments

    def vector(a: float, b: float) -> np.ndarray:
        v = np.zeros(200)
        v[:2] = a, b
        return v

    assert HARM_WEIGHT == 0.5
    classes = [vector(1.0, 0.0), vector(0.0, 1.0)]
    none = np.zeros((0, 0))
    basis = orthonormal_basis(classes)
    gains, trades, harms = vector(1.0, -0.5), vector(1.0, -0.8), vector(-1.0, 0.2)
    got = novelty_alignments([gains, trades, harms], classes, none, basis, 0.0)
    root2 = np.sqrt(2.0)
    assert got[0] == pytest.approx((0.5 - 0.5 * 0.5) / (np.linalg.norm(gains) * root2))  # net gain, harm counted 1.5 times
    assert got[1] == 0.0  # a small net gain bought with damage to class 2: not paid, not slashed
    assert got[2] == pytest.approx(-0.8 / (np.linalg.norm(harms) * root2))  # the plain cosine, no deeper
