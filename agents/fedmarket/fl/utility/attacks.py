"""The dishonest trainers a utility function must not pay, as functions that build their updates.

Each returns a float32 model state the trainer would publish in place of an honest update; the
arithmetic on weights runs in float64 and is cast once. The fairness benchmark, the utility tests
and the end-to-end market reuse them.

- free_ride: publish the global model unchanged (contributes nothing, hopes to be paid).
- gaussian_noise: the global model plus i.i.d. Gaussian noise (the "Gaussian attack" of
  Blanchard et al., NeurIPS 2017; Fang et al., "Local Model Poisoning Attacks to
  Byzantine-Robust Federated Learning", USENIX Security 2020, use it as a baseline).
- label_flip: train honestly on labels mapped c -> C - 1 - c (Tolpegin, Truex, Gursoy, Liu,
  "Data Poisoning Attacks Against Federated Learning Systems", ESORICS 2020).
- sign_flip: the honest update reversed, w_g - (w_i - w_g) (Damaskinos et al., "Asynchronous
  Byzantine Machine Learning", ICML 2018; the "sign-flipping" attack of Li et al. 2019, RSA).
- scale: the honest update multiplied by a factor (model replacement / boosting, Bagdasaryan et
  al., "How To Backdoor Federated Learning", AISTATS 2020; Bhagoji et al., ICML 2019).
- momentum_free_ride: the previous global step again, w + f (w - w_prev): a free rider that
  extrapolates public models (Lin et al., "Free-riders in Federated Learning: Attacks and
  Defenses", 2019, use the global models' differences as a disguise).
- stale_copy: an earlier round's (public) update re-applied to the current global model.
- near_copy: another update of the same round with a negligible perturbation (a sybil's second seat).
- alie: "A Little Is Enough" (Baruch, Baruch, Goldberg, NeurIPS 2019): colluders send the mean of
  their updates plus z times the coordinate-wise standard deviation.
- random_labels: a share of the labels replaced by random ones (an honest trainer with dirty data).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from fedmarket.errors import FedmarketError
from fedmarket.fl.models import ModelSpec
from fedmarket.fl.training import TrainConfig, train_local

State = dict[str, Tensor]
ATTACKS = ("free_ride", "momentum_free_ride", "stale_copy", "near_copy", "gaussian_noise", "label_flip", "sign_flip", "scale", "alie")


def _combine(global_state: Mapping[str, Tensor], update: Mapping[str, Tensor], factor: float) -> State:
    """w_g + factor * (w_u - w_g), per tensor, in float64, cast to float32."""
    out: State = {}
    for k in sorted(global_state):
        g = global_state[k].detach().to("cpu", torch.float64)
        u = update[k].detach().to("cpu", torch.float64)
        out[k] = (g + factor * (u - g)).to(torch.float32)
    return out


def free_ride(global_state: Mapping[str, Tensor]) -> State:
    """The global model, unchanged: a bit-identical float32 copy."""
    return {k: global_state[k].detach().to("cpu", torch.float32).clone() for k in sorted(global_state)}


def gaussian_noise(global_state: Mapping[str, Tensor], std: float, seed: int) -> State:
    """The global model plus N(0, std^2) noise on every coordinate, from a seeded numpy Generator."""
    if not std >= 0:
        raise FedmarketError(f"noise std must be non-negative, got {std}")
    rng = np.random.default_rng(seed)
    out: State = {}
    for k in sorted(global_state):
        g = global_state[k].detach().to("cpu", torch.float64)
        noise = torch.from_numpy(rng.normal(0.0, std, size=tuple(g.shape)))
        out[k] = (g + noise).to(torch.float32)
    return out


def update_rms(global_state: Mapping[str, Tensor], update: Mapping[str, Tensor]) -> float:
    """Root mean square of an update's change, per coordinate: a noise level that mimics it."""
    total, count = 0.0, 0
    for k in sorted(global_state):
        d = update[k].detach().to("cpu", torch.float64) - global_state[k].detach().to("cpu", torch.float64)
        total += float((d * d).sum())
        count += d.numel()
    return (total / count) ** 0.5 if count else 0.0


def flipped_labels(y: np.ndarray, num_classes: int) -> np.ndarray:
    """c -> num_classes - 1 - c."""
    return (num_classes - 1 - np.asarray(y, dtype=np.int64)).astype(np.int64)


def label_flip(
    spec: ModelSpec, global_state: Mapping[str, Tensor], x: np.ndarray, y: np.ndarray, config: TrainConfig, device: str = "cpu"
) -> tuple[State, int]:
    """Train like an honest trainer, on flipped labels; returns (state, sample count)."""
    if np.issubdtype(np.asarray(y).dtype, np.floating):
        raise FedmarketError("label flipping needs class labels, not regression targets")
    state, n, _ = train_local(spec, global_state, x, flipped_labels(y, spec.num_outputs), config, device)
    return state, n


def sign_flip(global_state: Mapping[str, Tensor], update: Mapping[str, Tensor]) -> State:
    """w_g - (w_u - w_g): the honest update pointed the other way."""
    return _combine(global_state, update, -1.0)


def scale(global_state: Mapping[str, Tensor], update: Mapping[str, Tensor], factor: float = 10.0) -> State:
    """w_g + factor * (w_u - w_g): the honest update boosted."""
    return _combine(global_state, update, factor)


def momentum_free_ride(global_state: Mapping[str, Tensor], previous: Mapping[str, Tensor], factor: float = 1.0) -> State:
    """w + factor * (w - w_prev): the last global step taken again (w itself when there is no step)."""
    return _combine(previous, global_state, 1.0 + factor)


def stale_copy(global_state: Mapping[str, Tensor], old_update: Mapping[str, Tensor], old_parent: Mapping[str, Tensor]) -> State:
    """w + (u_old - w_old): an earlier round's update re-applied to the current global model."""
    out: State = {}
    for k in sorted(global_state):
        g, u, p = (t[k].detach().to("cpu", torch.float64) for t in (global_state, old_update, old_parent))
        out[k] = (g + (u - p)).to(torch.float32)
    return out


def near_copy(global_state: Mapping[str, Tensor], update: Mapping[str, Tensor], seed: int, relative: float = 1e-3) -> State:
    """`update` plus Gaussian noise of `relative` times its change's rms per coordinate."""
    return gaussian_noise({k: update[k] for k in sorted(global_state)}, relative * update_rms(global_state, update), seed)


def alie(global_state: Mapping[str, Tensor], updates: list[Mapping[str, Tensor]], z: float = 1.0) -> State:
    """w + mean_j delta_j + z * std_j delta_j per coordinate, over the colluders' own updates."""
    if not updates:
        raise FedmarketError("ALIE needs the colluders' updates")
    out: State = {}
    for k in sorted(global_state):
        g = global_state[k].detach().to("cpu", torch.float64)
        deltas = torch.stack([u[k].detach().to("cpu", torch.float64) - g for u in updates])
        std = deltas.std(dim=0, unbiased=False)
        out[k] = (g + deltas.mean(dim=0) + z * std).to(torch.float32)
    return out


def random_labels(y: np.ndarray, num_classes: int, share: float, seed: int) -> np.ndarray:
    """`y` with a `share` of its labels (chosen by `seed`) replaced by uniformly random classes."""
    rng = np.random.default_rng(seed)
    out = np.asarray(y, dtype=np.int64).copy()
    dirty = rng.permutation(len(out))[: int(round(share * len(out)))]
    out[dirty] = rng.integers(0, num_classes, size=len(dirty))
    return out
