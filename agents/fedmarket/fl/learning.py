"""The learning settings, declared once: what every run of federated learning is configured by.

- `LocalTraining`: a client's local-training hyper-parameters (E epochs of minibatch SGD of size
  B at rate eta, momentum, FedProx's mu).
- `TrainConfig`: those plus the seed of one client's batch order (what fl.training runs).
- `Learning`: those plus the data set, its partition scheme, the model, the aggregation rule and
  the task seed. The defaults are the seed paper's protocol (McMahan et al. 2017 as the seed
  paper runs it: batch 10, lr 0.005, 1 local epoch, Dir(0.1), the CNN for images).

The task spec (fl.taskspec.TaskSpec), the simulation (fl.sim.SimConfig) and the benchmarks
extend `Learning` with what they add (trainers and validators, rounds and device, ...) instead
of copying its fields. Which names are valid is checked downstream (fl.taskspec.check_learning),
where the registries are: this module imports nothing heavy, so the CLI can build its options
from these classes without loading torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from fedmarket.errors import FedmarketError


@dataclass(frozen=True)
class LocalTraining:
    """Local-training hyper-parameters (the seed paper's protocol: 1 epoch, batch 10, lr 0.005)."""

    epochs: int = 1
    batch_size: int = 10
    lr: float = 0.005
    momentum: float = 0.0
    prox_mu: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise FedmarketError("epochs and batch size must be at least 1")
        if not self.lr > 0:
            raise FedmarketError(f"the learning rate must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1 or self.prox_mu < 0:
            raise FedmarketError("momentum must be in [0, 1) and prox_mu >= 0")


@dataclass(frozen=True)
class TrainConfig(LocalTraining):
    """One client's local training: the hyper-parameters and the seed of its batch order."""

    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Learning(LocalTraining):
    """What is learned and how: data set, split, model, local training, aggregation, seed."""

    dataset: str = "digits"
    partition: str = "dir:0.1"
    model: str = "auto"  # cnn | mlp | linear | auto (cnn for images, linear for tabular data)
    aggregation: str = "fedavg"
    seed: int = 0  # every random stream derives from it (fl.seeds)
    # How image pixels are scaled (fl.datasets.SCALINGS): "standard" (per-channel mean / std) or
    # "pm1" ([-1, 1], as the seed paper's authors' library PFLlib does).
    input_scaling: str = "standard"

    def train_config(self, seed: int) -> TrainConfig:
        """Local training with batch-order seed `seed` (fl.seeds.client_seed for a trainer)."""
        return TrainConfig(self.epochs, self.batch_size, self.lr, self.momentum, self.prox_mu, seed)

    def learning(self) -> Learning:
        """The learning settings alone (of a TaskSpec, a SimConfig or a benchmark's config)."""
        return Learning(**learning_fields(self))


def learning_fields(config: Learning) -> dict[str, Any]:
    """The learning fields of `config` by name: `TaskSpec(**learning_fields(c), trainers=...)`."""
    return {f.name: getattr(config, f.name) for f in fields(Learning)}


SEED_PROTOCOL = Learning()
"""The seed paper's protocol, the defaults of `fedmarket sim` and the benchmarks."""

DEMO_TASK = Learning(partition="dir:0.5", model="mlp", lr=0.05)
"""The demo's task (fl.taskspec.TaskSpec's defaults): digits split Dir(0.5), the MLP at lr 0.05;
importable without torch, so that the CLI's flags can show these defaults."""
DEMO_TRAINERS, DEMO_VALIDATORS, DEMO_HOLDOUT = 5, 3, 400
