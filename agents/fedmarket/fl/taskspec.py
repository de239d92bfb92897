"""The task spec: what a buyer asks for, as the JSON file whose CID goes on chain (`specDigest`).

Everything an agent needs to take part is in it: the learning settings (fl.learning.Learning:
the data set and its split, the model architecture, the local-training hyper-parameters, the
aggregation rule and the seed), how many trainers and validators share the data, the utility
function, and who scores (`committee`: the staked validators, or a committee elected each round
from the trainers, fl.committee). The file is canonical JSON (sorted keys, no spaces), so the same
spec always has the same CID, and an agent that downloads it checks it against that CID first.

Data of a simulated market (`--data auto`): `holdout` samples of the data set, drawn with the
seed, are held out and cut into `validators + 1` disjoint slices, one per validator (its
held-out scoring data) and the last for the aggregator (the metric it publishes); the rest is
partitioned among `trainers` clients by `partition`, and trainer i (in join order) holds client
i's train split. The report evaluates every global model on the clients' test splits, weighted
by size, as `fedmarket sim` does, and `fedmarket sim --holdout N` partitions the same pool: so
the market's global models can be checked against the simulation's, CID for CID.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation import get_rule, get_scored_rule
from fedmarket.fl.datasets import DATASETS, Dataset, check_scaling, load_dataset
from fedmarket.fl.learning import (
    DEMO_HOLDOUT,
    DEMO_TASK,
    DEMO_TRAINERS,
    DEMO_VALIDATORS,
    Learning,
    learning_fields,
)
from fedmarket.fl.models import ARCHITECTURES, ModelSpec, model_spec_for
from fedmarket.fl.params import canonical
from fedmarket.fl.partition import Partition, market_partition, parse_scheme
from fedmarket.fl.seeds import initial_model_seed
from fedmarket.fl.utility import DEFAULT_UTILITY, get_raw_utility
from fedmarket.storage.weights import WeightsMeta, encode_weights

SPEC_FORMAT = "fedmarket-task/1"
# Fields added after the format was fixed: the file leaves them out while they hold their
# defaults, so a spec that does not use them keeps the bytes (and the CID) it always had.
OMITTED_AT_DEFAULT = ("input_scaling", "committee")
COMMITTEES = ("validators", "elected")
"""Who scores a task's updates: its staked validators, or (CMFL, BlockFL; fl.committee) a committee
elected each round from the trainers themselves."""


def check_learning(learning: Learning, where: str = "", scores: bool = False) -> None:
    """Refuse learning settings that name no data set, model, partition or rule this version has;
    `where` starts each message (e.g. "task spec: "). A rule that selects by the committee's
    scores (cmfl_s1, cmfl_s2) passes only with `scores` (an elected committee)."""
    if learning.dataset not in DATASETS:
        raise FedmarketError(f"{where}unknown dataset {learning.dataset!r}; choose one of: {', '.join(DATASETS)}")
    if learning.model != "auto" and learning.model not in ARCHITECTURES:
        raise FedmarketError(f"{where}unknown model {learning.model!r}; choose auto or one of: {', '.join(ARCHITECTURES)}")
    check_scaling(learning.dataset, learning.input_scaling)
    parse_scheme(learning.partition)
    if scores:
        get_scored_rule(learning.aggregation)
    else:
        get_rule(learning.aggregation)


@dataclass(frozen=True)
class TaskSpec(Learning):
    """A training task: the learning settings and who holds which data.

    The defaults are the demo's: digits split Dir(0.5), the MLP at lr 0.05, 5 trainers and 3
    validators (the other learning settings are the seed protocol's, fl.learning).
    """

    partition: str = DEMO_TASK.partition
    model: str = DEMO_TASK.model
    lr: float = DEMO_TASK.lr
    trainers: int = DEMO_TRAINERS
    validators: int = DEMO_VALIDATORS
    holdout: int = DEMO_HOLDOUT
    utility: str = DEFAULT_UTILITY
    committee: str = COMMITTEES[0]

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check()

    @classmethod
    def of(cls, learning: Learning, **task: Any) -> TaskSpec:
        """The task that learns as `learning` does; `task` sets trainers, validators, holdout, utility."""
        return cls(**learning_fields(learning), **task)

    def check(self) -> None:
        """Refuse a spec no agent could follow, with one line naming the field."""
        if self.committee not in COMMITTEES:
            raise FedmarketError(f"task spec: unknown committee {self.committee!r}; choose one of: {', '.join(COMMITTEES)}")
        check_learning(self, "task spec: ", scores=self.committee == "elected")
        if self.committee == "elected":
            if self.validators != 0:
                raise FedmarketError(
                    f"task spec: an elected committee's task has no validators (the trainers serve): validators must be 0, not {self.validators}"
                )
            if self.trainers < 2:
                raise FedmarketError("task spec: an elected committee needs at least 2 trainers (one serves, one trains)")
        elif self.trainers < 1 or self.validators < 1:
            raise FedmarketError("task spec: a task needs at least 1 trainer and 1 validator")
        if self.holdout < self.validators + 1:
            raise FedmarketError(f"task spec: holdout {self.holdout} cannot give {self.validators} validators and the aggregator a sample each")
        get_raw_utility(self.utility)

    # ------------------------------------------------------------------ the file

    def to_bytes(self) -> bytes:
        """The canonical JSON file (its CID is the task's specDigest)."""
        body = {"format": SPEC_FORMAT, **asdict(self)}
        for name in OMITTED_AT_DEFAULT:
            if body[name] == getattr(TaskSpec, name):
                del body[name]
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskSpec:
        """Parse a downloaded spec; anything but a well-formed spec of this format is refused."""
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise FedmarketError("task spec is not JSON") from None
        if not isinstance(body, dict) or body.get("format") != SPEC_FORMAT:
            raise FedmarketError(f"task spec format is not {SPEC_FORMAT!r}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(body) - set(known) - {"format"})
        if unknown:
            raise FedmarketError(f"task spec has unknown fields: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in body.items():
            if name == "format":
                continue
            expected = type(getattr(cls(), name))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not expected:
                raise FedmarketError(f"task spec field {name!r} must be {expected.__name__}, not {type(value).__name__}")
            values[name] = value
        return cls(**values)

    # ------------------------------------------------------------------ what follows from it

    def model_spec(self, dataset: Dataset) -> ModelSpec:
        return model_spec_for(dataset, self.model)

    def initial_weights(self, dataset: Dataset) -> bytes:
        """The initial global model file (round 0): the seeded initialisation, as the sim's round 0."""
        spec = self.model_spec(dataset)
        state = canonical(spec.init_state(initial_model_seed(self.seed)))
        return encode_weights(state, WeightsMeta(arch=spec.id, round=0, parent_cid=None))


@dataclass(frozen=True, eq=False)
class TaskData:
    """A simulated market's data: who holds which samples (see the module's docstring)."""

    spec: TaskSpec
    dataset: Dataset

    @classmethod
    def load(cls, spec: TaskSpec, data_dir: Any = None) -> TaskData:
        return cls(spec, load_dataset(spec.dataset, data_dir, scaling=spec.input_scaling))

    @cached_property
    def _split(self) -> tuple[Partition, np.ndarray]:
        return market_partition(self.dataset.y, self.spec.trainers, self.spec.partition, self.spec.seed, self.spec.holdout)

    @property
    def partition(self) -> Partition:
        return self._split[0]

    @cached_property
    def holdout_slices(self) -> list[np.ndarray]:
        return [np.asarray(s, dtype=np.int64) for s in np.array_split(self._split[1], self.spec.validators + 1)]

    def trainer_indices(self, index: int) -> np.ndarray:
        """Train split of trainer `index` (0-based join order)."""
        if not 0 <= index < self.spec.trainers:
            raise FedmarketError(f"the task has data for trainers 0..{self.spec.trainers - 1}, not {index}")
        return self.partition.clients[index].train

    def validator_indices(self, index: int) -> np.ndarray:
        """Held-out slice of validator `index` (0-based join order)."""
        if not 0 <= index < self.spec.validators:
            raise FedmarketError(f"the task has data for validators 0..{self.spec.validators - 1}, not {index}")
        return self.holdout_slices[index]

    def aggregator_indices(self) -> np.ndarray:
        return self.holdout_slices[-1]

    def test_sets(self) -> list[np.ndarray]:
        """The clients' local test splits: what the report evaluates each global model on."""
        return [c.test for c in self.partition.clients]

    @cached_property
    def model_spec(self) -> ModelSpec:
        return self.spec.model_spec(self.dataset)
