"""Novel separation: the separation cosine, paid only for what public data does not explain.

A buyer should pay for information it could not have had for free. Everything public before the
round (fl.utility.base.PublicPast: the past global steps, the previous round's revealed updates)
spans a subspace P of parameter space; anything built from it (the previous global step, a
momentum extrapolation w + a (w - w_prev), a stale copy of an earlier update re-applied, any
linear mix of them) lies in P. Update i (delta_i, d parameters) has the residual
r_i = delta_i - proj_P delta_i, its fresh fraction f_i = |r_i| / |delta_i|, and scores

    c_i = cos(delta_i, grad S(w_g)) - HARM_WEIGHT * harm_i - CHANCE_SIGMAS / sqrt(d)
    u_i = c_i * f_i * (|delta_i| / |delta_ref|)^2 * min(1, nu_i)   where c_i > 0 (what it is paid for)
    u_i = c_i                                                      otherwise (a harmful update keeps its whole negative score)

with S the class-separation contrast of separation_cosine.py and delta_ref the validator's own
trained reference update (reference.py), whose norm and loss guards then judge the whole update
(they see c_i * f_i; the size factor is applied after them, so a large update is not capped at 1).
The size factor (size_weight): an honest update's squared length grows about linearly with its
clean samples (digits, MLP: |delta| ~ steps^0.64 * clean share^0.43), so the pay does too; nu_i is
the norm guard's length per claimed SGD step, so an update shorter than an honest one of its
claimed sample count (a lazy trainer) is paid less. Against the earlier |delta_i| / |delta_ref|
(bench fairness, digits, MLP lr 0.05, 3 seeds, 5 rounds): Spearman of honest pay with clean
samples 0.80 -> 0.87 (Dir(0.1)) and 0.66 -> 0.89 (pat:2), the lazy trainer's pool share 0.80 % ->
0.21 % and 0.71 % -> 0.18 %.

harm_i = sum_k max(0, -<delta_i, grad S_k>) / (|delta_i| |grad S|), S_k class k's part of S: what
the update takes from the classes whose separation it lowers, counted HARM_WEIGHT times more, so
that gains on some classes do not buy pay for damage to others. A label flipper lowers the
separation of the classes it trains on and of their flipped targets; an honest non-IID update
mostly raises its own classes' (bench fairness, 3 seeds, 5 rounds, against no harm term: label
flip's pool share 1.34 % -> 1.20 % on Dir(0.1) and 0.05 % -> 0 % on pat:2, pat:2 accuracy 0.356
-> 0.383; Spearman -0.01 on both; a weight of 1 cut label flip to 0.80 % but left 10 % of honest
Dir(0.1) updates unpaid). The term only withholds pay: a score never goes below
min(0, cos - margin), since with it in the negative side 10 % of honest Dir(0.1) updates were
poison-slashed over 10 rounds (4.3 % without).

A fabricated update (logit_shift.py: a component along the directions that shift every class's
logit alike, which no gradient step of a softmax classifier has; ALIE's mean + z * std has 40 % of
its output-layer length there) scores as a tripped guard, -1 for ALIE: poison.
Why not the residual's own alignment: measured on digits, an honest update's residual points
*against* grad S about as often as along it (what it adds beyond the last global step is its own
classes, which the validator's contrast over all classes does not reward at first order), while
the full update's alignment is positive; so the alignment is taken from the whole update and
only the payment is scaled by what is new. Two tests keep public information unpaid:

- an update in P (f_i <= COPY_TOLERANCE, which float32 rounding of a copy stays far below)
  scores exactly 0 before the guards; a harmful one (x10 momentum) still trips a guard;
- noise around a public update: its residual is the noise, which has no more than chance's share
  (sqrt(K / d), STRUCTURE_SIGMAS times) in the span of the K per-class separation gradients,
  where an honest residual has much more: such an update scores min(u_i, 0).

Same-round copies: a sybil's second seat sends (nearly) the update of its first. Update j whose
residual off the global steps lies within DUPLICATE_TOLERANCE (relative) of an earlier update's
scores min(u_j, 0): the earlier one keeps the score, the later ones earn nothing (a copy of a
poisoned update keeps its negative score). "Earlier" is the order the validator passes, the
reveal order. A copy of a previous round's update is caught the same way against P.

Measured by the fairness benchmark (bench/results/fairness.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedmarket.fl.training import TrainConfig
from fedmarket.fl.utility.base import RoundView, ScoringRequest
from fedmarket.fl.utility.logit_shift import SHIFT_TOLERANCE, output_layer
from fedmarket.fl.utility.reference import CHANCE_SIGMAS, Reference, apply_guards, guard_penalty, norm_ratio, train_reference
from fedmarket.fl.utility.separation_cosine import class_directions

COPY_TOLERANCE = 1e-3  # |residual| / |delta| at or below this: the update is public information
DUPLICATE_TOLERANCE = 0.05  # |delta_j - delta_i| / max(|delta_i|, |delta_j|) at or below this: a copy
HARM_WEIGHT = 0.5  # a lowered class separation counts this much more than a raised one
STRUCTURE_SIGMAS = 3.0  # a residual whose share in the class directions' span is below this many chance levels is noise
_INDEPENDENT = 1e-9  # a public direction whose own residual is below this fraction adds nothing to the basis


def orthonormal_basis(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """An orthonormal basis of span(vectors) as the rows of a (k, d) float64 array, built by
    Gram-Schmidt in the given order with re-orthogonalisation (two passes); dependent and zero
    vectors are dropped."""
    rows: list[np.ndarray] = []
    for v in vectors:
        norm = _norm(v)
        if norm == 0.0:
            continue
        r = residual(v, np.array(rows)) if rows else np.array(v, dtype=np.float64)
        rest = _norm(r)
        if rest > _INDEPENDENT * norm:
            rows.append(r / rest)
    return np.array(rows, dtype=np.float64) if rows else np.zeros((0, 0), dtype=np.float64)


def residual(delta: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """delta less its projection on the span of the orthonormal rows of `basis` (two passes)."""
    r = np.array(delta, dtype=np.float64)
    if len(basis) == 0:
        return r
    for _ in range(2):
        r = r - np.einsum("k,kd->d", np.einsum("kd,d->k", basis, r), basis)
    return r


def novelty_alignments(
    deltas: Sequence[np.ndarray | None], classes: Sequence[np.ndarray], public: np.ndarray, structure: np.ndarray, margin: float
) -> list[float | None]:
    """Per update: c = cos(delta, direction) - HARM_WEIGHT * harm - margin, with direction the sum
    of the per-class directions `classes` and harm = sum_k max(0, -<delta, g_k>) / (|delta| |direction|)
    (what the update takes from the classes it lowers), but never below min(0, cos - margin); and
    where c > 0, c f with
    f = |r| / |delta| the fresh fraction, r the residual off span(public) (a harmful update keeps
    its whole negative alignment, so that the poison threshold can slash it); exactly 0.0 for an
    update in that span (f <= COPY_TOLERANCE) and at most 0.0 for one whose residual is
    unstructured (noise: its share in span(structure) no more than chance); None for a malformed one."""
    return alignments_and_fresh(deltas, classes, public, structure, margin)[0]


def alignments_and_fresh(
    deltas: Sequence[np.ndarray | None], classes: Sequence[np.ndarray], public: np.ndarray, structure: np.ndarray, margin: float
) -> tuple[list[float | None], list[float]]:
    """novelty_alignments and each update's fresh fraction f = |r| / |delta| (0 for a malformed or zero update)."""
    direction = np.sum(classes, axis=0)
    length = _norm(direction)
    floor = STRUCTURE_SIGMAS * math.sqrt(len(structure) / direction.size) if len(structure) else 0.0
    out: list[float | None] = []
    fractions: list[float] = []
    for delta in deltas:
        if delta is None:
            out.append(None)
            fractions.append(0.0)
            continue
        norm = _norm(delta)
        if norm == 0.0:
            out.append(0.0)
            fractions.append(0.0)
            continue
        r = residual(delta, public)
        fresh = _norm(r)
        fractions.append(fresh / norm)
        if fresh <= COPY_TOLERANCE * norm:
            out.append(0.0)
            continue
        harm = sum(max(0.0, -_dot(delta, g)) for g in classes) / (norm * length) if length > 0.0 else 0.0
        plain = _cosine(delta, direction) - margin
        # The harm term only withholds pay: a score is never pushed below the plain alignment (the
        # poison threshold slashes on that), so honest non-IID updates are not slashed for it.
        score = max(plain - HARM_WEIGHT * harm, min(plain, 0.0))
        if score > 0:  # paid for: in proportion to the new part's length along the direction
            score *= fresh / norm
        if _norm(r - residual(r, structure)) <= floor * fresh:
            score = min(score, 0.0)  # what is new is noise: nothing the validator's data can tell apart
        out.append(score)
    return out, fractions


# Dot products by einsum, not BLAS: beside torch's thread pool a BLAS dot of 50k floats was
# measured 100x slower (8 ms) than einsum's plain loop on the 2-core machine.
def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.einsum("i,i->", a, b))


def _norm(v: np.ndarray) -> float:
    return math.sqrt(_dot(v, v))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """cos(a, b); 0 when either is zero (as fl.utility.base.cosine)."""
    na, nb = _norm(a), _norm(b)
    return 0.0 if na == 0.0 or nb == 0.0 else _dot(a, b) / (na * nb)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """|a - b| <= DUPLICATE_TOLERANCE * max(|a|, |b|), and a is not zero."""
    top = max(_norm(a), _norm(b))
    return top > 0.0 and _norm(a - b) <= DUPLICATE_TOLERANCE * top


def duplicates(deltas: Sequence[np.ndarray | None], basis: np.ndarray) -> list[bool]:
    """Whether update j is a near-copy (up to public directions) of an earlier update of the round."""
    seen: list[np.ndarray] = []
    out: list[bool] = []
    for delta in deltas:
        if delta is None or not np.any(delta):
            out.append(False)
            continue
        r = residual(delta, basis)
        out.append(any(_close(r, earlier) for earlier in seen))
        seen.append(r)
    return out


@dataclass(eq=False)
class NoveltyRound:
    """One validator's round after the novelty tests and the guards, before the payment.

    scores: the guarded c_i f_i (positive: paid for, before any size factor); fresh: f_i per
    update; steps: the past global steps (the public directions copies are compared up to)."""

    view: RoundView
    scores: list[float]
    fresh: list[float]
    reference: Reference
    train: TrainConfig
    steps: list[np.ndarray]

    def final(self, scores: Sequence[float] | None = None) -> list[float]:
        """`scores` (default: self.scores) with same-round copies capped at 0 and fabricated updates poison."""
        given = list(self.scores if scores is None else scores)
        capped = [min(s, 0.0) if copy else s for s, copy in zip(given, duplicates(self.view.deltas, orthonormal_basis(self.steps)))]
        return fabricated_guard(self.view, capped)


def novelty_round(request: ScoringRequest, view: RoundView) -> NoveltyRound:
    """The alignments off the public subspace, the noise test and the norm and loss guards of a round."""
    config = request.train
    classes = class_directions(view)
    reference = train_reference(view, config, request.seed)
    steps = request.public.steps(view.global_state, view.names)
    basis = orthonormal_basis(steps + request.public.update_deltas(view.global_state, view.names))
    structure = orthonormal_basis(classes)
    margin = CHANCE_SIGMAS / math.sqrt(view.dim)
    alignments, fresh = alignments_and_fresh(view.deltas, classes, basis, structure, margin)
    return NoveltyRound(view, apply_guards(view, alignments, reference, config), fresh, reference, config, steps)


def novel_separation_scores(request: ScoringRequest) -> list[float]:
    """Guarded, novelty-weighted cos(residual_i, grad S) per update; same-round copies capped at 0."""
    novelty = novelty_round(request, request.view())
    view, reference, config = novelty.view, novelty.reference, novelty.train
    return novelty.final(
        [s * size_weight(d, u.num_samples, reference, config) if s > 0 and d is not None else s for s, d, u in zip(novelty.scores, view.deltas, view.updates)]
    )


def size_weight(delta: np.ndarray, num_samples: int, reference: Reference, train: TrainConfig) -> float:
    """(|delta| / |delta_ref|)^2 * min(1, nu): what a positive score is multiplied by.

    An honest update's squared length grows about linearly with its clean samples (fitted on
    digits, MLP: |delta| ~ steps^0.64 * clean share^0.43), so the pay does too; min(1, nu) (nu the
    norm guard's length per claimed SGD step, reference.norm_ratio) discounts an update shorter
    than its claimed sample count makes an honest one (a lazy trainer claiming data it did not
    train on). Applied after the guards, so a large honest update is not capped at 1."""
    if reference.norm == 0.0:
        return 1.0  # nothing to compare with: the alignment alone
    ratio = _norm(delta) / reference.norm
    return ratio * ratio * min(1.0, norm_ratio(delta, num_samples, reference, train))


def fabricated_guard(view: RoundView, scores: list[float]) -> list[float]:
    """Scores of updates that no gradient step can have produced (logit_shift.py) as a tripped guard:
    -min(1, share / SHIFT_TOLERANCE - 1), so that ALIE-style one-sided perturbations are poison-slashed."""
    layer = output_layer(view)
    if layer is None:
        return scores
    out = []
    for delta, score in zip(view.deltas, scores):
        share = 0.0 if delta is None else layer.shift_share(delta)
        out.append(min(score, guard_penalty(share / SHIFT_TOLERANCE - 1.0)) if share > SHIFT_TOLERANCE else score)
    return out
