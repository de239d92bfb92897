"""What every utility function shares: its inputs, the micro-unit conversion, the round's deltas.

A utility function scores the updates a validator received in one round, one number per update,
on the validator's own held-out data. The score goes on chain as an int256 in micro-units
(round(score * 1e6)), so it must be a deterministic function of its inputs: the arithmetic on
weights runs in float64 on the CPU in canonical (sorted) key order, the model is evaluated in one
pass over the validator's data, and any training the validator does is seeded. Across machines
with different BLAS kernels a score can still differ in its last micro-unit; the contract takes the
median of the committee's scores, which absorbs that.

A malformed update (other keys or shapes than the global model, another dtype, a NaN or an
infinity) is not an error of the validator: it scores MALFORMED_SCORE, like a poisoned one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor

from fedmarket.errors import FedmarketError
from fedmarket.fl.evaluation import evaluate, metrics_from_outputs, predict
from fedmarket.fl.models import ModelSpec
from fedmarket.fl.training import TrainConfig, resolve_device, task_of

State = dict[str, Tensor]

MICRO = 1_000_000  # one utility unit on chain
SCORE_LIMIT = 1000.0  # |score| is clipped here: loss-based scores are unbounded, int256 is not the issue, sanity is
MALFORMED_SCORE = -1.0  # an update the model cannot even load scores as a clear poison


class Update(NamedTuple):
    """One trainer's revealed update: its model state and the sample count it claims."""

    state: State
    num_samples: int


@dataclass(frozen=True, eq=False)
class ValidationData:
    """The validator's held-out data: inputs and labels (int classes) or targets (float)."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if len(self.x) == 0 or len(self.x) != len(self.y):
            raise FedmarketError(f"validation data needs as many labels as inputs, and at least one: {len(self.x)} / {len(self.y)}")


@dataclass(frozen=True, eq=False)
class PublicPast:
    """What anyone could know before this round: the information a utility must not pay for.

    global_models: earlier global models, newest first (the one before the current global model,
    then the one before it, ...): their differences are the past global steps.
    updates: earlier rounds' revealed updates as (update state, the global model it was trained from).
    """

    global_models: tuple[State, ...] = ()
    updates: tuple[tuple[State, State], ...] = ()

    def steps(self, current: State, names: Sequence[str]) -> list[np.ndarray]:
        """The past global steps, newest first (current - previous, previous - the one before, ...),
        float64 in `names` order; malformed models (other keys or shapes) end the chain."""
        out: list[np.ndarray] = []
        for newer, older in itertools.pairwise([current, *self.global_models]):
            if not (_well_formed(older, current) and _well_formed(newer, current)):
                break
            out.append(flat64(newer, names) - flat64(older, names))
        return out

    def update_deltas(self, current: State, names: Sequence[str]) -> list[np.ndarray]:
        """Every earlier update's delta from its own parent (malformed ones skipped)."""
        return [flat64(u, names) - flat64(p, names) for u, p in self.updates if _well_formed(u, current) and _well_formed(p, current)]


NO_PAST = PublicPast()


@dataclass(frozen=True, eq=False)
class ScoringRequest:
    """One validator's scoring of one round: everything a utility function may read.

    `train` is the task's local-training configuration: utilities that train a reference update
    use it, so that the reference moves like an honest trainer would; `seed` seeds that training.
    `public` is what was public before the round (earlier global models and updates); only the
    utilities that discount public information read it.
    """

    global_state: State
    updates: Sequence[Update]
    data: ValidationData
    spec: ModelSpec
    _: KW_ONLY
    seed: int
    train: TrainConfig = field(default_factory=TrainConfig)
    device: str = "cpu"
    public: PublicPast = NO_PAST

    def view(self) -> RoundView:
        """The round with every update's delta computed once (the inputs checked)."""
        return round_view(self.global_state, self.updates, self.data, self.spec, self.device)


class UtilityFunction(Protocol):
    """Scores of the request's updates (micro-units, one per update, in order) on the validator's data."""

    def __call__(self, request: ScoringRequest) -> list[int]: ...


def to_micro(score: float) -> int:
    """round(score * 1e6) as a Python int, after clipping to +-SCORE_LIMIT; NaN scores as -SCORE_LIMIT."""
    if math.isnan(score):
        score = -SCORE_LIMIT
    score = min(max(score, -SCORE_LIMIT), SCORE_LIMIT)
    return int(round(score * MICRO))


def flat64(state: State, names: Sequence[str]) -> np.ndarray:
    """The parameters named `names`, in that order, as one float64 CPU vector (exact for float32)."""
    return np.concatenate([state[k].detach().to("cpu").reshape(-1).numpy().astype(np.float64) for k in names])


def unflat32(vector: np.ndarray, like: State, names: Sequence[str]) -> State:
    """Cut a float64 vector into float32 tensors shaped like `like` (one rounding, to nearest)."""
    out: State = {}
    offset = 0
    for k in names:
        n = like[k].numel()
        out[k] = torch.from_numpy(vector[offset : offset + n].astype(np.float32).reshape(tuple(like[k].shape)))
        offset += n
    return out


def steps_of(num_samples: int, train: TrainConfig) -> int:
    """Local SGD steps an honest trainer with `num_samples` samples takes: epochs * ceil(n / B)."""
    return train.epochs * max(1, math.ceil(num_samples / train.batch_size))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """cos(a, b) in float64; 0 when either vector is zero (no direction, no contribution)."""
    na = float(np.sqrt(np.dot(a, a)))
    nb = float(np.sqrt(np.dot(b, b)))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b)) / (na * nb)


def _well_formed(state: object, like: State) -> bool:
    if not isinstance(state, dict) or set(state) != set(like):
        return False
    for k, ref in like.items():
        t = state[k]
        if not isinstance(t, Tensor) or t.dtype != torch.float32 or t.shape != ref.shape:
            return False
        if not bool(torch.isfinite(t).all()):
            return False
    return True


@dataclass(eq=False)
class RoundView:
    """One round as a validator sees it: the global model, each update's delta, a loss on its data.

    `deltas[i]` is update i minus the global model as a float64 vector in sorted key order, or
    None for a malformed update; `weights[i]` is update i's FedAvg weight n_i / sum n, where a
    malformed update counts as the well-formed updates' average count (and its own weight is 0).
    """

    global_state: State
    updates: Sequence[Update]
    data: ValidationData
    spec: ModelSpec
    device: torch.device
    names: list[str] = field(init=False)
    global_vec: np.ndarray = field(init=False)
    deltas: list[np.ndarray | None] = field(init=False)
    weights: list[float] = field(init=False)
    task: str = field(init=False)
    _model: torch.nn.Module = field(init=False)
    _base_loss: float | None = field(init=False, default=None)
    _weighted_outputs: dict[int, np.ndarray] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not self.global_state:
            raise FedmarketError("the global model state is empty")
        self.global_state = {k: v.detach().to("cpu", torch.float32) for k, v in self.global_state.items()}
        self.names = sorted(self.global_state)
        self.global_vec = flat64(self.global_state, self.names)
        self.task = task_of(self.data.y)
        self._model = self.spec.build()
        self.deltas = []
        counts: list[int] = []
        for i, update in enumerate(self.updates):
            n = update.num_samples
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise FedmarketError(f"update {i} claims {n!r} samples; a sample count is a positive integer")
            if _well_formed(update.state, self.global_state):
                self.deltas.append(flat64(update.state, self.names) - self.global_vec)
                counts.append(int(n))
            else:
                self.deltas.append(None)
                counts.append(0)
        # A malformed update keeps its seat at the table with the average well-formed count (its
        # own claim is ignored: it could be anything). Without that, an honest update among
        # broken ones is judged at a weight it would never have: 0.56 with 2 of 5 well-formed,
        # which tripped the loss guard of an honest non-IID trainer.
        well_formed = [c for c in counts if c > 0]
        total = max(sum(counts), sum(well_formed) / len(well_formed) * len(counts)) if well_formed else 0
        self.weights = [c / total if total else 0.0 for c in counts]

    @property
    def dim(self) -> int:
        return int(self.global_vec.size)

    def state_at(self, delta: np.ndarray, step: float = 1.0) -> State:
        """The global model moved by step * delta (float64 arithmetic, one cast to float32)."""
        return unflat32(self.global_vec + step * delta, self.global_state, self.names)

    def loss(self, state: State) -> float:
        """Mean loss of `state` on the validator's data (cross-entropy or MSE)."""
        return float(evaluate(self._model, state, self.data.x, self.data.y, self.task, self.device).loss)

    def weighted_outputs(self, i: int) -> np.ndarray:
        """The model's outputs on the validator's data with update i applied at its FedAvg weight
        (computed once: the loss guard and the separation gain both read them)."""
        if i not in self._weighted_outputs:
            delta = self.deltas[i]
            if delta is None:
                raise FedmarketError(f"update {i} is malformed: it has no outputs")
            self._weighted_outputs[i] = predict(self._model, self.state_at(delta, self.weights[i]), self.data.x, self.device)
        return self._weighted_outputs[i]

    def weighted_loss(self, i: int) -> float:
        """Mean loss on the validator's data of the global model moved by update i at its FedAvg weight."""
        return float(metrics_from_outputs(self.weighted_outputs(i), np.asarray(self.data.y), self.task).loss)

    @property
    def base_loss(self) -> float:
        """Loss of the global model itself (computed once)."""
        if self._base_loss is None:
            self._base_loss = self.loss(self.global_state)
        return self._base_loss


def round_view(global_state: State, updates: Sequence[Update], data: ValidationData, spec: ModelSpec, device: str | torch.device = "cpu") -> RoundView:
    """Check the inputs and compute every update's delta once."""
    return RoundView(global_state, list(updates), data, spec, resolve_device(device))


def scores_or_malformed(view: RoundView, scores: Sequence[float]) -> list[float]:
    """Replace the score of every malformed update by MALFORMED_SCORE."""
    return [MALFORMED_SCORE if d is None else float(s) for d, s in zip(view.deltas, scores)]
