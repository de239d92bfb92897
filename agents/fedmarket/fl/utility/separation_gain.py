"""Separation gain: novel_separation's tests of what is new, paid by what the update adds to the aggregate.

novel_separation pays a positive update c_i f_i (|delta_i| / |delta_ref|)^2 min(1, nu_i): a
first-order alignment times a length. This utility keeps every one of its tests (the alignment
c_i with its harm term and chance margin, the fresh fraction f_i off the public subspace, the
noise-structure test, the norm and loss guards, same-round copies, the fabricated-update test)
and replaces the payment and one guard by what the update actually does at the weight the
aggregate gives it:

    G_i = S(w_g + p_i delta_i) - S(w_g)

with S the class-separation contrast of separation_cosine.py on the validator's data and p_i
the update's FedAvg weight (the model the loss guard already evaluates, so it costs no extra
forward pass). It is measured, not extrapolated: a first-order alignment misjudges large or
curved steps.

    u_i = f_i * G_i / G_ref * min(1, nu_i)^2    where c_i > 0 and G_i > 0 (else 0 before the guards)

G_ref the gain of the validator's own reference update at weight 1 / m (m updates in the round),
so that a score is in units of "what the validator's own data would have added" and the
committee's scores are comparable; min(1, nu_i)^2 discounts an update shorter than an honest one
of its claimed sample count (a lazy trainer). Squared, because the gain already grows with the
claimed count through p_i: a claim inflated k times raises p_i (and about G_i) k times and lowers
nu_i by sqrt(k), so the pay stays about level; with min(1, nu_i) alone the lazy trainer took
0.40 % of the pool on digits pat:2 (0.18 % under novel_separation).

Separation-loss guard: label flipping lowers the separation of the classes it trains on, where an
honest non-IID update raises its own classes'. With rel_i = G_i / median_j |G_j| (j over the
round's changed, well-formed updates: mostly honest), an update with rel_i < -GAIN_BOUND scores as
a tripped guard, -min(1, -rel_i / GAIN_BOUND - 1): poison. Measured on digits (MLP lr 0.05, 20
trainers, seeds 0-1, 6 rounds, each validator's view): on Dir(0.1) honest rel >= -1.0 and label
flip rel <= -2.87; on pat:2 honest >= -0.03 but label flip only -0.70 to +0.05 (a pair of classes
flipped onto each other among peers that hold them moves the aggregate little), so there it is
not slashed by this guard.

Why G_i for the pay: on the same runs the Spearman correlation of an honest trainer's summed
max(G_i, 0) with its clean-sample count was 0.97 / 0.96 (Dir(0.1), seeds 0 / 1) and 0.92 / 0.96
(pat:2), against 0.92 / 0.90 and 0.93 / 0.89 for novel_separation's score.

Measured by the fairness benchmark (bench/results/fairness.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fedmarket.fl.evaluation import predict
from fedmarket.fl.utility.base import RoundView, ScoringRequest
from fedmarket.fl.utility.novel_separation import NoveltyRound, novel_separation_scores, novelty_round
from fedmarket.fl.utility.reference import Reference, guard_penalty, norm_ratio
from fedmarket.fl.utility.separation_cosine import separation_weights

GAIN_BOUND = 2.0  # rel_i below -GAIN_BOUND: the update takes away this many typical updates' separation


def separation_of(view: RoundView, outputs: np.ndarray) -> float:
    """S on the validator's data from the model's outputs (log-softmax in float64)."""
    logits = torch.as_tensor(outputs, dtype=torch.float64)
    log_probs = torch.log_softmax(logits, dim=1).numpy()
    return float(np.einsum("nk,nk->", separation_weights(view.data.y, view.spec.num_outputs), log_probs))


def base_separation(view: RoundView) -> float:
    """S of the global model itself."""
    return separation_of(view, predict(view._model, view.global_state, view.data.x, view.device))


def gains(view: RoundView, base: float) -> list[float | None]:
    """G_i per update (None for a malformed or unchanged one); `base` is base_separation(view)."""
    return [None if d is None or not np.any(d) else separation_of(view, view.weighted_outputs(i)) - base for i, d in enumerate(view.deltas)]


def reference_gain(view: RoundView, reference: Reference, base: float) -> float:
    """The reference update's gain at weight 1 / m (m the round's updates)."""
    step = 1.0 / max(1, len(view.updates))
    return separation_of(view, predict(view._model, view.state_at(reference.delta, step), view.data.x, view.device)) - base


def gain_scores(view: RoundView, novelty: NoveltyRound, round_gains: Sequence[float | None], base: float) -> list[float]:
    """Positive guarded scores replaced by f_i G_i / G_ref min(1, nu_i)^2; the separation-loss guard on all."""
    unit = reference_gain(view, novelty.reference, base)
    sizes = [abs(g) for g in round_gains if g is not None]
    typical = float(np.median(sizes)) if sizes else 0.0
    out: list[float] = []
    for i, (score, gain) in enumerate(zip(novelty.scores, round_gains)):
        delta = view.deltas[i]
        if gain is None or delta is None:
            out.append(score)
            continue
        if score > 0:
            paid = max(gain, 0.0) / unit if unit > 0 else 0.0
            short = min(1.0, norm_ratio(delta, view.updates[i].num_samples, novelty.reference, novelty.train))
            score = novelty.fresh[i] * paid * short * short
        if typical > 0 and gain / typical < -GAIN_BOUND:
            score = min(score, guard_penalty(-gain / typical / GAIN_BOUND - 1.0))
        out.append(score)
    return out


def separation_gain_scores(request: ScoringRequest) -> list[float]:
    """novel_separation's tests, each positive update paid by its measured separation gain."""
    view = request.view()
    if view.task != "classification":  # no classes to separate: novel_separation's own scores
        return novel_separation_scores(request)
    novelty = novelty_round(request, view)
    base = base_separation(view)
    return novelty.final(gain_scores(view, novelty, gains(view, base), base))
