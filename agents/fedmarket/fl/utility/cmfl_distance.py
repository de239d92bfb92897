"""CMFL's distance score: how close an update lands to the committee member's own update.

Che et al., "A Decentralized Federated Learning Framework via Committee Mechanism with
Convergence Guarantee" (CMFL, IEEE Transactions on Parallel and Distributed Systems, 2022). A committee member trains its own
local update from the global model and scores every training client's update by the Euclidean
distance between the two: the closer, the better. CMFL only ranks by that distance (to select
the updates to aggregate and to elect the next committee); the market also pays by the score,
so the distance is scaled into a score whose zero is the free rider's:

    u_i = 1 - |delta_i - delta_m| / (|delta_i| + |delta_m|)

with delta_i = w_i - w_g the update's step and delta_m the member's own step. By the triangle
inequality u_i lies in [0, 1]: 1 for the member's own step, falling as the update moves away from
it (at fixed norms, a decreasing function of the Euclidean distance), and 0 for the unchanged
model (delta_i = 0, set explicitly as the other utilities score a free rider) and for the exact
opposite step. A malformed update scores MALFORMED_SCORE; if the member's own step is zero there
is nothing to measure against and every well-formed update scores 0.

Why this scale and not 1 - |delta_i - delta_m| / |delta_m| (zero at the free rider too, negative
beyond): under non-IID data two honest clients' steps point apart, and at equal norms an honest
update lies farther from delta_m than the unchanged model does as soon as their cosine falls below
0.5. Measured on digits (8 participants, Dir(0.5), MLP, lr 0.05, committee 3) that scale scored
every honest update of round 1 negative and accepted one update in four rounds; here an honest step at
cosine c and equal norm scores 1 - sqrt((1 - c) / 2) > 0. The price: nothing scores below 0, so
this utility never slashes; a sign-flipped update scores about 0, a scaled or noisy one little
(x10 at c = 0.3: 0.12), and S1 (fl.aggregation.selection) leaves them out of the aggregate.

The member's step is the validator-side reference training (reference.train_reference: the
task's local training, seeded with the request's seed, on the request's data): in the elected
committee (fl.elected_sim) the request carries the member's own train split and its trainer
seed, so delta_m is exactly the update the member would have trained. `distance_scores` takes
a step computed elsewhere.
"""

from __future__ import annotations

import numpy as np

from fedmarket.fl.utility.base import MALFORMED_SCORE, RoundView, ScoringRequest
from fedmarket.fl.utility.reference import train_reference


def distance_scores(view: RoundView, member_delta: np.ndarray) -> list[float]:
    """1 - |delta_i - delta_m| / (|delta_i| + |delta_m|) per update, in [0, 1]; free riders 0, malformed -1."""
    member_norm = float(np.sqrt(np.dot(member_delta, member_delta)))
    out: list[float] = []
    for delta in view.deltas:
        if delta is None:
            out.append(MALFORMED_SCORE)
        elif member_norm == 0.0 or not np.any(delta):
            out.append(0.0)  # no step to compare with, or a free rider: nothing contributed
        else:
            gap = delta - member_delta
            scale = float(np.sqrt(np.dot(delta, delta))) + member_norm
            out.append(min(1.0, max(0.0, 1.0 - float(np.sqrt(np.dot(gap, gap))) / scale)))
    return out


def cmfl_distance_scores(request: ScoringRequest) -> list[float]:
    """CMFL distance scores, the member's step trained on the request's data with its seed."""
    view = request.view()
    return distance_scores(view, train_reference(view, request.train, request.seed).delta)
