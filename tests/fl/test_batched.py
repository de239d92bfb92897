"""Batched (vmap) training of many clients equals train_local one client at a time."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fedmarket.fl.batched import train_clients_batched
from fedmarket.fl.datasets import load_dataset
from fedmarket.fl.models import ModelSpec
from fedmarket.fl.params import max_abs_diff, states_equal
from fedmarket.fl.training import TrainConfig, train_local

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def ragged_clients(n: int) -> list[np.ndarray]:
    """Clients with very different sample counts (and short last batches): 7, 23, 40, 12, 3."""
    sizes = [7, 23, 40, 12, 3]
    starts = np.cumsum([0] + sizes[:-1])
    return [np.arange(s, s + k) for s, k in zip(starts, sizes)][:n]


@pytest.mark.parametrize(
    "arch, config",
    [
        ("cnn", TrainConfig(epochs=1, batch_size=10, lr=0.05)),
        ("cnn", TrainConfig(epochs=2, batch_size=4, lr=0.05, momentum=0.9, prox_mu=0.5)),
        ("mlp", TrainConfig(epochs=3, batch_size=5, lr=0.1, momentum=0.5)),
    ],
    ids=["cnn-plain", "cnn-momentum-prox", "mlp"],
)
def test_batched_matches_sequential(digits, arch: str, config: TrainConfig) -> None:
    spec = ModelSpec(arch, digits.input_shape, digits.num_outputs)
    start = spec.init_state(0)
    clients = ragged_clients(5)
    seeds = [11, 12, 13, 14, 15]
    batched = train_clients_batched(spec, start, digits.x, digits.y, clients, config, seeds)
    for idx, seed, (state, n, loss) in zip(clients, seeds, batched):
        ref_state, ref_n, ref_loss = train_local(spec, start, digits.x[idx], digits.y[idx], replace(config, seed=seed))
        assert n == ref_n
        assert max_abs_diff(state, ref_state) < TOLERANCE
        assert loss == pytest.approx(ref_loss, abs=1e-5)
        assert max_abs_diff(state, start) > 1e-3  # every client did train


def test_batched_regression_matches(digits) -> None:
    d = load_dataset("diabetes")
    spec = ModelSpec("linear", d.input_shape, 1)
    start = spec.init_state(0)
    clients = [np.arange(0, 30), np.arange(30, 41), np.arange(41, 100)]
    config = TrainConfig(batch_size=8, lr=0.05, epochs=2)
    batched = train_clients_batched(spec, start, d.x, d.y, clients, config, [1, 2, 3])
    for idx, seed, (state, _, _) in zip(clients, [1, 2, 3], batched):
        reference = train_local(spec, start, d.x[idx], d.y[idx], replace(config, seed=seed))[0]
        assert max_abs_diff(state, reference) < TOLERANCE


def test_batched_is_deterministic(digits) -> None:
    spec = ModelSpec("cnn", digits.input_shape, digits.num_outputs)
    start = spec.init_state(0)
    clients = ragged_clients(3)
    a = train_clients_batched(spec, start, digits.x, digits.y, clients, TrainConfig(), [1, 2, 3])
    b = train_clients_batched(spec, start, digits.x, digits.y, clients, TrainConfig(), [1, 2, 3])
    assert all(states_equal(x[0], y[0]) for x, y in zip(a, b))
