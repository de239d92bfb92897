"""The validator's reference update and the guards it anchors, shared by the cosine utilities.

FLTrust (Cao, Fang, Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust
Bootstrapping", NDSS 2021) lets the server train a small "server model update" on a clean root
data set and trusts each client update by its cosine with it. Here the validator trains that
reference from the global model on its own held-out data, with the task's own local-training
configuration, so it moves the way an honest trainer's update moves.

A direction score alone pays a scaled update (x10 keeps the cosine of the update it scales), so
every cosine utility is guarded, and a guard that trips makes the score negative, below the
contract's poison threshold:

- chance margin: a cosine below CHANCE_SIGMAS / sqrt(d) is what a random direction in d
  dimensions reaches by chance (its cosine with a fixed vector has standard deviation
  ~1/sqrt(d)); it is subtracted from every non-zero update's cosine, so Gaussian noise is not
  paid.
- norm guard: nu_i = (|delta_i| / |delta_ref|) / sqrt(steps_i / steps_ref), the update's norm
  relative to the reference's, corrected for the number of SGD steps each took (an honest
  update's norm grows about like the square root of its steps: fitted exponent 0.48 to 0.74 on
  digits). Measured on digits Dir(0.3), MLP, honest updates had nu <= 2.9 and x10-scaled ones
  nu >= 7.2; NORM_BOUND = 4.5 sits between them.
- loss guard: the relative increase of the validator's loss when the update is applied at its
  FedAvg weight, (L(w_g + p_i delta_i) - L(w_g)) / L(w_g). Honest updates raised it by at most
  1.6 % in the same measurements; above LOSS_TOLERANCE = 5 % the update is scored as harmful.

A tripped guard scores -min(1, excess) where excess is how far past its bound the update went
(nu / NORM_BOUND - 1, or increase / LOSS_TOLERANCE - 1), never above -1e-6 so that it stays
negative after rounding to micro-units. An unchanged model (a free rider) scores exactly 0 before
any guard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from fedmarket.fl.training import TrainConfig, train_local
from fedmarket.fl.utility.base import MALFORMED_SCORE, RoundView, flat64, steps_of

CHANCE_SIGMAS = 4.0
NORM_BOUND = 4.5
LOSS_TOLERANCE = 0.05
MIN_PENALTY = 1e-6  # a tripped guard is negative even after rounding to micro-units


@dataclass(frozen=True, eq=False)
class Reference:
    """The validator's own update from the global model: its delta, norm and SGD step count."""

    delta: np.ndarray
    norm: float
    steps: int


def train_reference(view: RoundView, train: TrainConfig, seed: int) -> Reference:
    """Train from the global model on the validator's data with the task's configuration."""
    config = replace(train, seed=seed)
    state, n, _ = train_local(view.spec, view.global_state, view.data.x, view.data.y, config, view.device)
    delta = flat64(state, view.names) - view.global_vec
    return Reference(delta, float(np.sqrt(np.dot(delta, delta))), steps_of(n, config))


def norm_ratio(delta: np.ndarray, num_samples: int, reference: Reference, train: TrainConfig) -> float:
    """nu: |delta| / |delta_ref| divided by sqrt(steps / steps_ref); 0 when the reference did not move."""
    if reference.norm == 0.0:
        return 0.0  # nothing to compare with: the norm guard cannot judge, the other guards still do
    steps = steps_of(num_samples, train)
    return (float(np.sqrt(np.dot(delta, delta))) / reference.norm) / math.sqrt(steps / reference.steps)


def guard_penalty(excess: float) -> float:
    """A tripped guard's score: -min(1, excess), never above -MIN_PENALTY."""
    return -max(min(1.0, excess), MIN_PENALTY)


def guarded_scores(view: RoundView, alignments: list[float], reference: Reference, train: TrainConfig) -> list[float]:
    """Each update's alignment minus the chance margin, then the norm and loss guards, in [-1, 1]."""
    margin = CHANCE_SIGMAS / math.sqrt(view.dim)
    return apply_guards(view, [None if d is None else a - margin for d, a in zip(view.deltas, alignments)], reference, train)


def apply_guards(view: RoundView, scores: Sequence[float | None], reference: Reference, train: TrainConfig) -> list[float]:
    """The norm and loss guards on scores the chance margin was already taken from, in [-1, 1].

    A malformed update (None) scores MALFORMED_SCORE; an unchanged model exactly 0 before any guard.
    """
    base = view.base_loss
    out: list[float] = []
    for i, (delta, update, score) in enumerate(zip(view.deltas, view.updates, scores)):
        if delta is None or score is None:
            out.append(MALFORMED_SCORE)
            continue
        if not np.any(delta):
            out.append(0.0)  # a free rider: the model did not change, so it contributed nothing
            continue
        nu = norm_ratio(delta, update.num_samples, reference, train)
        if nu > NORM_BOUND:
            score = min(score, guard_penalty(nu / NORM_BOUND - 1.0))
        increase = (view.weighted_loss(i) - base) / max(base, 1e-12)
        if increase > LOSS_TOLERANCE:
            score = min(score, guard_penalty(increase / LOSS_TOLERANCE - 1.0))
        out.append(min(1.0, max(-1.0, score)))
    return out
