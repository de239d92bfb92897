"""Novel separation: the separation cosine of the part of an update that public data does not explain.

A buyer should pay for information it could not have had for free. Everything public before the
round (fl.utility.base.PublicPast: the past global steps, earlier rounds' revealed updates) spans
a subspace P of parameter space; anything built from it (the previous global step, a momentum
extrapolation w + a (w - w_prev), a stale copy of an earlier update re-applied, any linear mix of
them) lies in P. Update i is split into its projection on P and the residual r_i = delta_i - P delta_i,
and scores

    u_i = (|r_i| / |delta_i|) * (cos(r_i, grad S(w_g)) - CHANCE_SIGMAS / sqrt(d))

with S the class-separation contrast of separation_cosine.py: the residual's alignment less the
chance margin, weighted by the fraction of the update that is new. Then the norm and loss guards
of reference.py judge the whole update, as for the other cosine utilities. So:

- an update in P (|r_i| <= COPY_TOLERANCE |delta_i|, which float32 rounding of a copy stays far
  below) scores exactly 0 before the guards: nothing new; a harmful one (x10 momentum) still
  trips a guard and scores below 0;
- noise around a public update leaves a random residual, whose cosine stays under the chance
  margin: <= 0;
- an honest update that correlates with the previous step keeps its fresh part, which points up
  the separation gradient: > 0, only smaller.

Same-round copies: a sybil's second seat sends (nearly) the update of its first. Update j whose
delta lies within DUPLICATE_TOLERANCE (relative) of an earlier update i of the same round scores
min(u_j, 0): the earlier one keeps the score, the later ones earn nothing (a copy of a poisoned
update keeps its negative score). "Earlier" is the order the validator passes, the reveal order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fedmarket.fl.models import ModelSpec
from fedmarket.fl.training import TrainConfig
from fedmarket.fl.utility.base import (
    NO_PAST,
    PublicPast,
    State,
    Update,
    ValidationData,
    cosine,
    round_view,
)
from fedmarket.fl.utility.reference import CHANCE_SIGMAS, apply_guards, train_reference
from fedmarket.fl.utility.separation_cosine import class_directions, separation_direction

COPY_TOLERANCE = 1e-3  # |residual| / |delta| at or below this: the update is public information
DUPLICATE_TOLERANCE = 0.05  # |delta_j - delta_i| / max(|delta_i|, |delta_j|) at or below this: a copy
STRUCTURE_SIGMAS = 3.0  # a residual whose share in the class directions' span is below this many chance levels is noise
_INDEPENDENT = 1e-9  # a public direction whose own residual is below this fraction adds nothing to the basis


def orthonormal_basis(vectors: Sequence[np.ndarray]) -> list[np.ndarray]:
    """An orthonormal basis of span(vectors), by modified Gram-Schmidt in the given order (twice,
    for float64 orthogonality); dependent and zero vectors are dropped."""
    basis: list[np.ndarray] = []
    for v in vectors:
        norm = float(np.sqrt(np.dot(v, v)))
        if norm == 0.0:
            continue
        r = np.array(v, dtype=np.float64)
        for _ in range(2):
            for q in basis:
                r -= np.dot(q, r) * q
        rest = float(np.sqrt(np.dot(r, r)))
        if rest > _INDEPENDENT * norm:
            basis.append(r / rest)
    return basis


def residual(delta: np.ndarray, basis: Sequence[np.ndarray]) -> np.ndarray:
    """delta less its projection on span(basis)."""
    r = np.array(delta, dtype=np.float64)
    for _ in range(2):
        for q in basis:
            r -= np.dot(q, r) * q
    return r


def novelty_alignments(deltas: Sequence[np.ndarray | None], direction: np.ndarray, public: Sequence[np.ndarray],
                       structure: Sequence[np.ndarray], margin: float, scale: float) -> list[float | None]:
    """Per update: f (|delta| / scale) (cos(delta, direction) - margin), f = |r| / |delta| the
    fresh fraction, r the residual off span(public); exactly 0.0 for an update in that span (f <=
    COPY_TOLERANCE) and at most 0.0 for one whose residual is unstructured (noise: its share in
    span(structure) no more than chance); None for a malformed one."""
    floor = STRUCTURE_SIGMAS * math.sqrt(len(structure) / direction.size) if structure else 0.0
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
        score = (fresh / norm) * (norm / (scale or norm)) * (cosine(delta, direction) - margin)
        if _norm(r - residual(r, structure)) <= floor * fresh:
            score = min(score, 0.0)  # what is new is noise: nothing the validator's data can tell apart
        out.append(score)
    return out


def _norm(v: np.ndarray) -> float:
    return float(np.sqrt(np.dot(v, v)))


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """|a - b| <= DUPLICATE_TOLERANCE * max(|a|, |b|), and a is not zero."""
    top = max(_norm(a), _norm(b))
    return top > 0.0 and _norm(a - b) <= DUPLICATE_TOLERANCE * top


def duplicates(deltas: Sequence[np.ndarray | None], basis: Sequence[np.ndarray]) -> list[bool]:
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


def novel_separation_scores(global_state: State, updates: Sequence[Update], data: ValidationData, spec: ModelSpec,
                            *, seed: int, train: TrainConfig | None = None, device: str = "cpu",
                            public: PublicPast = NO_PAST) -> list[float]:
    """Guarded, novelty-weighted cos(residual_i, grad S) per update; same-round copies capped at 0."""
    config = train or TrainConfig()
    view = round_view(global_state, updates, data, spec, device)
    direction = separation_direction(view)
    reference = train_reference(view, config, seed)
    steps = public.steps(view.global_state, view.names)
    basis = orthonormal_basis(steps + public.update_deltas(view.global_state, view.names))
    structure = orthonormal_basis(class_directions(view))
    margin = CHANCE_SIGMAS / math.sqrt(view.dim)
    alignments = novelty_alignments(view.deltas, direction, basis, structure, margin, reference.norm)
    scores = apply_guards(view, alignments, reference, config)
    return [min(s, 0.0) if copy else s for s, copy in zip(scores, duplicates(view.deltas, orthonormal_basis(steps)))]
