"""fl.semi's aggregation weights: softmax of negative losses x polynomial staleness, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fedmarket.errors import FedmarketError
from fedmarket.fl.semi.config import DEFAULT_TEMPERATURE
from fedmarket.fl.semi.loss_weights import mixing_weights, score_batch, softmax_of_negative_losses
from fedmarket.fl.semi.staleness import lag, polynomial_staleness


def test_softmax_of_negative_losses_by_hand() -> None:
    # exp(0) / (exp(0) + exp(-1)) and exp(-1) / (...)
    assert softmax_of_negative_losses([1.0, 2.0], 1.0) == pytest.approx([0.7310585786300049, 0.2689414213699951], abs=1e-15)
    assert softmax_of_negative_losses([3.0, 3.0, 3.0], 0.1) == pytest.approx([1 / 3] * 3)
    # shifting every loss leaves the weights unchanged (the min is subtracted), even far from 0
    assert softmax_of_negative_losses([1001.0, 1002.0], 1.0) == pytest.approx([0.7310585786300049, 0.2689414213699951])


def test_mixing_weights_by_hand() -> None:
    # softmax [0.731, 0.269] x staleness [(0+1)^-0.5, (3+1)^-0.5] = [0.731, 0.134], normalised
    assert mixing_weights([1.0, 2.0], [0, 3], temperature=1.0, staleness_exponent=0.5) == pytest.approx([0.8446375965030365, 0.15536240349696362])
    # T = 2, a = 1: exp(-L/2) x [1, 1, 1/2], normalised
    weights = mixing_weights([0.5, 1.5, 1.0], [0, 0, 1], temperature=2.0, staleness_exponent=1.0)
    assert weights == pytest.approx([0.5010193109499247, 0.3038835731992268, 0.1950971158508485])
    assert sum(weights) == pytest.approx(1.0)


def test_ablations_switch_one_factor_off() -> None:
    assert mixing_weights([1.0, 2.0], [0, 3], temperature=1.0, use_staleness=False) == pytest.approx([0.7310585786300049, 0.2689414213699951])
    assert mixing_weights([1.0, 2.0], [0, 3], staleness_exponent=0.5, use_losses=False) == pytest.approx([2 / 3, 1 / 3])
    assert mixing_weights([1.0, 2.0], [0, 3], use_losses=False, use_staleness=False) == [0.5, 0.5]


def test_default_temperature_costs_a_factor_e_per_tenth_of_a_nat() -> None:
    # T = 0.1 (docs/semi.md "Loss weights"): a model 0.1 nats worse than another gets 1/e of its weight
    assert DEFAULT_TEMPERATURE == 0.1
    assert mixing_weights([1.0, 1.1], [0, 0]) == pytest.approx([0.7310585786300049, 0.2689414213699951])
    # and a model 2 nats worse, as another client's model on a Dir(0.1) split typically is, is all but ignored
    assert mixing_weights([0.3, 2.3], [0, 0])[1] == pytest.approx(1 / (1 + np.exp(20)))


def test_staleness_shrinks_weights() -> None:
    assert polynomial_staleness([0, 1, 3, 8], 0.5) == pytest.approx([1.0, 2**-0.5, 0.5, 1 / 3])
    assert polynomial_staleness([0, 5], 0.0) == [1.0, 1.0]
    equal_losses = mixing_weights([1.0, 1.0, 1.0], [0, 1, 4], staleness_exponent=0.5)
    assert equal_losses[0] > equal_losses[1] > equal_losses[2]
    assert lag(5, 2) == 3 and lag(2, 5) == 0  # a model from a later round is not rewarded


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(FedmarketError):
        softmax_of_negative_losses([1.0], 0.0)
    with pytest.raises(FedmarketError):
        softmax_of_negative_losses([float("nan")], 1.0)
    with pytest.raises(FedmarketError):
        polynomial_staleness([-1])
    with pytest.raises(FedmarketError):
        mixing_weights([1.0], [0, 1])


def test_score_batch_is_a_seeded_sample_of_own_training_data() -> None:
    own = np.array([40, 3, 17, 99, 5, 61, 8])
    batch = score_batch(own, 4, seed=7)
    assert len(batch) == 4 and len(set(batch)) == 4 and set(batch) <= set(own)
    assert np.array_equal(batch, score_batch(own, 4, seed=7))
    assert sorted(score_batch(own, 10, seed=7)) == sorted(own)  # a client smaller than a batch scores on all it has
