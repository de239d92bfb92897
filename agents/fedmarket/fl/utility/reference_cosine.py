"""FLTrust-style reference cosine: how well an update points where the validator's own update points.

Cao, Fang, Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping",
NDSS 2021. The validator trains a reference update on its held-out data from the global model
(reference.py) and scores update i by cos(delta_i, delta_ref), less the chance margin, with the
norm and loss guards of reference.py.

Measured on digits, Dir(0.3), 10 trainers, an MLP: honest updates score +0.15..+0.66 at lr 0.05,
but at the seed protocol's lr 0.005 some honest updates score below 0 (the cross-entropy reference
is then dominated by re-balancing the class priors), and a label-flipped update trained on a few
classes keeps a positive cosine with the generic part of the reference (up to +0.43). The
separation cosine (separation_cosine.py) removes both failures; see the fairness benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedmarket.fl.models import ModelSpec
from fedmarket.fl.training import TrainConfig
from fedmarket.fl.utility.base import State, Update, ValidationData, cosine, round_view
from fedmarket.fl.utility.reference import guarded_scores, train_reference


def reference_cosine_scores(global_state: State, updates: Sequence[Update], data: ValidationData, spec: ModelSpec,
                            *, seed: int, train: TrainConfig | None = None, device: str = "cpu") -> list[float]:
    """Guarded cos(delta_i, delta_ref) per update, delta_ref trained on the validator's data."""
    config = train or TrainConfig()
    view = round_view(global_state, updates, data, spec, device)
    reference = train_reference(view, config, seed)
    alignments = [0.0 if d is None else cosine(d, reference.delta) for d in view.deltas]
    return guarded_scores(view, alignments, reference, config)
