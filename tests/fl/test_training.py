"""Local training: SGD and FedProx steps by hand, bit-identical determinism, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedmarket.errors import FedmarketError
from fedmarket.fl.datasets import load_dataset
from fedmarket.fl.models import ModelSpec
from fedmarket.fl.params import max_abs_diff, states_equal
from fedmarket.fl.training import TrainConfig, batch_schedule, resolve_device, train_local

LINE = ModelSpec("linear", (1,), 1)
ZERO = {"fc.weight": torch.zeros(1, 1), "fc.bias": torch.zeros(1)}


def test_one_sgd_step_by_hand() -> None:
    # loss = mean((w x + b - y)^2) over x = (1, 2), y = (1, 2), from w = b = 0:
    # loss 2.5; dL/dw = mean(2 (0 - y) x) = -5, dL/db = mean(2 (0 - y)) = -3; lr 0.1.
    x = np.array([[1.0], [2.0]], dtype=np.float32)
    y = np.array([1.0, 2.0], dtype=np.float32)
    state, n, loss = train_local(LINE, ZERO, x, y, TrainConfig(batch_size=2, lr=0.1))
    assert n == 2 and loss == pytest.approx(2.5)
    assert state["fc.weight"].item() == pytest.approx(0.5) and state["fc.bias"].item() == pytest.approx(0.3)


def test_fedprox_term_by_hand() -> None:
    # One sample x = 1, y = 1, two steps of lr 0.1 from w = b = 0, mu = 1.
    # Step 1: gradient -2 each, the proximal gradient mu (w - w0) is 0 -> w = b = 0.2.
    # Step 2: error 0.4 - 1 = -0.6, gradient -1.2, plus proximal 0.2 -> -1.0 -> w = b = 0.3.
    # Without FedProx step 2 gives 0.2 + 0.12 = 0.32.
    x = np.array([[1.0]], dtype=np.float32)
    y = np.array([1.0], dtype=np.float32)
    prox, _, _ = train_local(LINE, ZERO, x, y, TrainConfig(epochs=2, batch_size=1, lr=0.1, prox_mu=1.0))
    plain, _, _ = train_local(LINE, ZERO, x, y, TrainConfig(epochs=2, batch_size=1, lr=0.1))
    assert prox["fc.weight"].item() == pytest.approx(0.3) and prox["fc.bias"].item() == pytest.approx(0.3)
    assert plain["fc.weight"].item() == pytest.approx(0.32)


def distance(a: dict, b: dict) -> float:
    return sum(float(((a[k] - b[k]) ** 2).sum()) for k in a) ** 0.5


def test_fedprox_keeps_the_update_near_the_global_model() -> None:
    d = load_dataset("digits")
    spec = ModelSpec("mlp", d.input_shape, d.num_outputs)
    start = spec.init_state(0)
    x, y = d.x[:100], d.y[:100]
    drift = {mu: distance(train_local(spec, start, x, y, TrainConfig(epochs=2, lr=0.05, prox_mu=mu))[0], start) for mu in (0.0, 1.0, 10.0)}
    assert drift[0.0] > drift[1.0] > drift[10.0] > 0


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_same_seed_gives_bit_identical_state(arch: str) -> None:
    d = load_dataset("digits")
    spec = ModelSpec(arch, d.input_shape, d.num_outputs)
    start = spec.init_state(1)
    before = {k: v.clone() for k, v in start.items()}
    config = TrainConfig(epochs=2, batch_size=10, lr=0.01, momentum=0.5, seed=9)
    a = train_local(spec, start, d.x[:80], d.y[:80], config)
    b = train_local(spec.build(), start, d.x[:80], d.y[:80], config)
    assert states_equal(a[0], b[0]) and a[2] == b[2]
    other = train_local(spec, start, d.x[:80], d.y[:80], TrainConfig(epochs=2, lr=0.01, momentum=0.5, seed=10))
    assert max_abs_diff(a[0], other[0]) > 0
    assert states_equal(start, before), "the global state passed in must not change"


def test_batch_schedule_covers_every_sample_once_per_epoch() -> None:
    batches = batch_schedule(23, TrainConfig(epochs=2, batch_size=10, seed=0))
    assert [len(b) for b in batches] == [10, 10, 3, 10, 10, 3]
    assert sorted(np.concatenate(batches[:3]).tolist()) == list(range(23))
    assert sorted(np.concatenate(batches[3:]).tolist()) == list(range(23))


def test_devices_and_bad_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(FedmarketError, match="no CUDA"):
        resolve_device("cuda")
    with pytest.raises(FedmarketError, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(FedmarketError):
        TrainConfig(lr=0)
    with pytest.raises(FedmarketError):
        TrainConfig(batch_size=0)
    with pytest.raises(FedmarketError, match="no training samples"):
        train_local(LINE, ZERO, np.zeros((0, 1), np.float32), np.zeros(0, np.float32), TrainConfig())
