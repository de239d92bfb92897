"""Novel separation: the separation cosine, paid only for what public data does not explain.

A buyer should pay for information it could not have had for free. Everything public before the
round (fl.utility.base.PublicPast: the past global steps, the previous round's revealed updates)
spans a subspace P of parameter space; anything built from it (the previous global step, a
momentum extrapolation w + a (w - w_prev), a stale copy of an earlier update re-applied, any
linear mix of them) lies in P. Update i (delta_i, d parameters) has the residual
r_i = delta_i - proj_P delta_i, its fresh fraction f_i = |r_i| / |delta_i|, and scores

    c_i = cos(delta_i, grad S(w_g)) - CHANCE_SIGMAS / sqrt(d)
    u_i = c_i * f_i * |delta_i| / |delta_ref|     where c_i > 0 (what it is paid for)
    u_i = c_i                                      otherwise (a harmful update keeps its whole negative score)

with S the class-separation contrast of separation_cosine.py and delta_ref the validator's own
trained reference update (reference.py), whose norm and loss guards then judge the whole update.
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

import numpy as np

from fedmarket.fl.utility.base import ScoringRequest
from fedmarket.fl.utility.reference import CHANCE_SIGMAS, apply_guards, train_reference
from fedmarket.fl.utility.separation_cosine import class_directions

COPY_TOLERANCE = 1e-3  # |residual| / |delta| at or below this: the update is public information
DUPLICATE_TOLERANCE = 0.05  # |delta_j - delta_i| / max(|delta_i|, |delta_j|) at or below this: a copy
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
    deltas: Sequence[np.ndarray | None], direction: np.ndarray, public: np.ndarray, structure: np.ndarray, margin: float, scale: float
) -> list[float | None]:
    """Per update: c = cos(delta, direction) - margin, and where c > 0, c f |delta| / scale with
    f = |r| / |delta| the fresh fraction, r the residual off span(public) (a harmful update keeps
    its whole negative alignment, so that the poison threshold can slash it); exactly 0.0 for an
    update in that span (f <= COPY_TOLERANCE) and at most 0.0 for one whose residual is
    unstructured (noise: its share in span(structure) no more than chance); None for a malformed one."""
    floor = STRUCTURE_SIGMAS * math.sqrt(len(structure) / direction.size) if len(structure) else 0.0
    out: list[float | None] = []
    for delta in deltas:
        if delta is None:
            out.append(None)
            continue
        norm = _norm(delta)
        if norm == 0.0:
            out.append(0.0)
            continue
        r = residual(delta, public)
        fresh = _norm(r)
        if fresh <= COPY_TOLERANCE * norm:
            out.append(0.0)
            continue
        score = _cosine(delta, direction) - margin
        if score > 0:  # paid for: in proportion to the new part's length along the direction
            score *= (fresh / norm) * (norm / (scale or norm))
        if _norm(r - residual(r, structure)) <= floor * fresh:
            score = min(score, 0.0)  # what is new is noise: nothing the validator's data can tell apart
        out.append(score)
    return out


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


def novel_separation_scores(request: ScoringRequest) -> list[float]:
    """Guarded, novelty-weighted cos(residual_i, grad S) per update; same-round copies capped at 0."""
    config = request.train
    view = request.view()
    classes = class_directions(view)
    direction = np.sum(classes, axis=0)  # grad S, in one pass with its parts
    reference = train_reference(view, config, request.seed)
    steps = request.public.steps(view.global_state, view.names)
    basis = orthonormal_basis(steps + request.public.update_deltas(view.global_state, view.names))
    structure = orthonormal_basis(classes)
    margin = CHANCE_SIGMAS / math.sqrt(view.dim)
    alignments = novelty_alignments(view.deltas, direction, basis, structure, margin, reference.norm)
    scores = apply_guards(view, alignments, reference, config)
    return [min(s, 0.0) if copy else s for s, copy in zip(scores, duplicates(view.deltas, orthonormal_basis(steps)))]
