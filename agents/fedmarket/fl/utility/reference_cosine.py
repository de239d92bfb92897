"""FLTrust-style reference cosine: how well an update points where the validator's own update points.

Cao, Fang, Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping",
NDSS 2021. The validator trains a reference update on its held-out data from the global model
(reference.py) and scores update i by cos(delta_i, delta_ref), less the chance margin, with the
norm and loss guards of reference.py.

Measured by the fairness benchmark (bench/results/fairness.md: digits, Dir(0.3), 10 trainers, 8
rounds, 3 seeds): with an MLP at lr 0.05 honest updates score +0.10..+0.62 and label flippers take
0.26 % of the trainer pool; at the seed protocol's lr 0.005 one honest update in a hundred scores
below 0 and label flippers take 2.6 % (scores up to +0.11), and with the CNN at lr 0.05 1.1 %. A
cross-entropy reference apparently also points where training on any labels goes, which a label
flipper shares; the separation cosine (separation_cosine.py), which only rewards telling classes
apart, pays them 0.01 % and 0.8 % in the same runs.
"""

from __future__ import annotations

from fedmarket.fl.utility.base import (
    ScoringRequest,
    cosine,
)
from fedmarket.fl.utility.reference import guarded_scores, train_reference


def reference_cosine_scores(request: ScoringRequest) -> list[float]:
    """Guarded cos(delta_i, delta_ref) per update, delta_ref trained on the validator's data."""
    config = request.train
    view = request.view()
    reference = train_reference(view, config, request.seed)
    alignments = [0.0 if d is None else cosine(d, reference.delta) for d in view.deltas]
    return guarded_scores(view, alignments, reference, config)
