"""Metrics against values computed by hand (a linear model whose outputs are its inputs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedmarket.fl.evaluation import Metrics, evaluate, evaluate_clients, micro_auc, weighted_overall
from fedmarket.fl.models import ModelSpec


def identity_classifier(num_classes: int) -> tuple[ModelSpec, dict]:
    """A linear model with W = I, b = 0: its logits are exactly its input."""
    spec = ModelSpec("linear", (num_classes,), num_classes)
    return spec, {"fc.weight": torch.eye(num_classes), "fc.bias": torch.zeros(num_classes)}


def test_classification_metrics_by_hand() -> None:
    spec, state = identity_classifier(2)
    # Softmax probabilities: sample 0 -> (1/2, 1/2), sample 1 -> (1/4, 3/4).
    logits = np.array([[0.0, 0.0], [0.0, math.log(3.0)]], dtype=np.float32)
    m = evaluate(spec, state, logits, np.array([0, 1]), "classification")
    assert m.num_samples == 2
    assert m.accuracy == 1.0  # argmax of a tie picks class 0, which is right
    assert m.loss == pytest.approx((math.log(2) - math.log(0.75)) / 2, abs=1e-6)
    # (sample, class) pairs: positives score {1/2, 3/4}, negatives {1/2, 1/4}; of the 4
    # positive-negative pairs 3 are ordered right and 1 is a tie (counts 1/2): AUC = 3.5 / 4.
    assert m.auc == pytest.approx(0.875)
    assert m.mse is None


def pairwise_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """The AUC's definition: P(score of a positive pair > score of a negative one), ties half."""
    truth = np.zeros_like(probs)
    truth[np.arange(len(labels)), labels] = 1
    pos, neg = probs[truth == 1], probs[truth == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def test_micro_auc_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=30)
    labels = rng.integers(0, 4, size=30)
    assert micro_auc(labels, probs) == pytest.approx(pairwise_auc(labels, probs))


def test_regression_mse_by_hand() -> None:
    spec = ModelSpec("linear", (1,), 1)
    state = {"fc.weight": torch.tensor([[2.0]]), "fc.bias": torch.tensor([1.0])}
    x = np.array([[0.0], [1.0], [2.0]], dtype=np.float32)  # predictions 1, 3, 5
    m = evaluate(spec, state, x, np.array([1.0, 2.0, 3.0], dtype=np.float32), "regression")
    assert m.mse == pytest.approx(5 / 3) and m.loss == pytest.approx(5 / 3)  # errors 0, 1, 2
    assert m.accuracy is None and m.auc is None


def test_weighted_overall_weighs_by_samples() -> None:
    overall = weighted_overall([Metrics(10, loss=1.0, accuracy=0.5, auc=0.6), Metrics(30, loss=2.0, accuracy=1.0, auc=0.8)])
    assert overall.num_samples == 40
    assert overall.accuracy == pytest.approx(0.875)
    assert overall.loss == pytest.approx(1.75)
    assert overall.auc == pytest.approx(0.75)
    assert overall.mse is None


def test_per_client_metrics_agree_with_pooled_ones() -> None:
    spec, state = identity_classifier(3)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    clients = [np.arange(0, 10), np.arange(10, 40)]
    per_client = evaluate_clients(spec, state, x, y, clients, "classification")
    for metrics, idx in zip(per_client, clients):
        direct = evaluate(spec, state, x[idx], y[idx], "classification")
        assert metrics.accuracy == pytest.approx(direct.accuracy) and metrics.loss == pytest.approx(direct.loss)
    pooled = evaluate(spec, state, x, y, "classification")
    overall = weighted_overall(per_client)
    assert overall.accuracy == pytest.approx(pooled.accuracy) and overall.loss == pytest.approx(pooled.loss)
