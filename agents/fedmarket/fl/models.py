"""The model architectures a task can name, sized from the dataset's input shape.

- ``cnn``: the 2-conv CNN of McMahan et al. 2017 ("Communication-Efficient Learning of Deep
  Networks from Decentralized Data") that the seed paper trains: conv 5x5 32 -> ReLU -> max-pool 2
  -> conv 5x5 64 -> ReLU -> max-pool 2 -> fc 512 -> ReLU -> fc classes. Convolutions are padded
  ("same") so that 8x8 digits survive both poolings (8 -> 4 -> 2).
- ``fedavgcnn``: the same layers without padding, as the seed paper's authors' library (PFLlib's
  FedAvgCNN) builds them: on 28x28 inputs 28 -> 24 -> 12 -> 8 -> 4, so fc1 sees 64 * 4 * 4 = 1024
  features (582,026 parameters against the padded CNN's 1,663,370). Needs images of 16x16 or more.
- ``mlp``: McMahan's "2NN": two hidden layers of 200 ReLU units.
- ``linear``: one affine layer (the seed's linear regression; logistic regression on classes).

No layer holds buffers (no batch norm): a model's state is its parameters, which keeps averaging,
stacking for batched training and serialisation plain.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    from fedmarket.fl.datasets import Dataset

ARCHITECTURES = ("cnn", "fedavgcnn", "mlp", "linear")
# Bump a version when an architecture's layers change: the id goes into weight-file metadata, and
# weights saved for one version must not load silently into another.
ARCH_VERSIONS = {"cnn": 1, "fedavgcnn": 1, "mlp": 1, "linear": 1}
MLP_HIDDEN = 200
CNN_CHANNELS = (32, 64)
CNN_KERNEL = 5
CNN_HIDDEN = 512


class SeedCNN(nn.Module):
    """The seed paper's CNN for (C, H, W) images; `padded=False` is FedAvgCNN's layout."""

    padded = True

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        pad = CNN_KERNEL // 2 if self.padded else 0
        self.conv1 = nn.Conv2d(channels, CNN_CHANNELS[0], CNN_KERNEL, padding=pad)
        self.conv2 = nn.Conv2d(CNN_CHANNELS[0], CNN_CHANNELS[1], CNN_KERNEL, padding=pad)
        self.pool = nn.MaxPool2d(2)
        flat = CNN_CHANNELS[1] * _last_side(height, self.padded) * _last_side(width, self.padded)
        self.fc1 = nn.Linear(flat, CNN_HIDDEN)
        self.fc2 = nn.Linear(CNN_HIDDEN, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class FedAvgCNN(SeedCNN):
    """PFLlib's FedAvgCNN: the seed CNN's layers with unpadded ("valid") convolutions."""

    padded = False


def _last_side(side: int, padded: bool) -> int:
    """One side of the CNN's last feature map: (conv k5, max-pool 2) twice."""
    for _ in CNN_CHANNELS:
        side = (side if padded else side - CNN_KERNEL + 1) // 2
    return side


class MLP(nn.Module):
    """McMahan's 2NN: flatten -> 200 -> ReLU -> 200 -> ReLU -> outputs."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(prod(input_shape), MLP_HIDDEN)
        self.fc2 = nn.Linear(MLP_HIDDEN, MLP_HIDDEN)
        self.fc3 = nn.Linear(MLP_HIDDEN, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.fc1(x.flatten(1)))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class Linear(nn.Module):
    """One affine map of the flattened input."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int) -> None:
        super().__init__()
        self.fc = nn.Linear(prod(input_shape), num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))


def _check(arch: str, input_shape: tuple[int, ...], num_outputs: int) -> None:
    if arch not in ARCHITECTURES:
        raise FedmarketError(f"unknown model {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    if num_outputs < 1:
        raise FedmarketError(f"a model needs at least one output, got {num_outputs}")
    if arch == "cnn" and (len(input_shape) != 3 or min(input_shape[1:]) < 4):
        raise FedmarketError(f"the cnn needs (channels, height, width) images of at least 4x4, got {tuple(input_shape)}")
    if arch == "fedavgcnn" and (len(input_shape) != 3 or min(_last_side(side, False) for side in input_shape[1:]) < 1):
        raise FedmarketError(f"the fedavgcnn needs (channels, height, width) images of at least 16x16 (it does not pad), got {tuple(input_shape)}")


def build_model(arch: str, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """A freshly initialised model (from torch's global RNG; use init_state for a seeded one)."""
    shape = tuple(int(d) for d in input_shape)
    _check(arch, shape, num_outputs)
    cls = {"cnn": SeedCNN, "fedavgcnn": FedAvgCNN, "mlp": MLP, "linear": Linear}[arch]
    return cls(shape, num_outputs)


def arch_id(arch: str, input_shape: tuple[int, ...], num_outputs: int) -> str:
    """Stable architecture id for weight metadata, e.g. "cnn-v1:1x8x8:10"."""
    shape = tuple(int(d) for d in input_shape)
    _check(arch, shape, num_outputs)
    return f"{arch}-v{ARCH_VERSIONS[arch]}:{'x'.join(str(d) for d in shape)}:{num_outputs}"


def parse_arch_id(text: str) -> ModelSpec:
    """Inverse of arch_id: the spec a weight file's metadata names."""
    try:
        name_version, shape_text, outputs = text.split(":")
        arch, _, version = name_version.partition("-v")
        spec = ModelSpec(arch, tuple(int(d) for d in shape_text.split("x")), int(outputs))
    except ValueError as exc:
        raise FedmarketError(f"bad architecture id {text!r}") from exc
    if arch not in ARCH_VERSIONS or version != str(ARCH_VERSIONS[arch]):
        raise FedmarketError(f"architecture id {text!r} is not one this version builds ({', '.join(ARCHITECTURES)})")
    return spec


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model: what a task spec and weight metadata record."""

    arch: str
    input_shape: tuple[int, ...]
    num_outputs: int

    @property
    def id(self) -> str:
        return arch_id(self.arch, self.input_shape, self.num_outputs)

    def build(self) -> nn.Module:
        return build_model(self.arch, self.input_shape, self.num_outputs)

    def init_state(self, seed: int) -> dict[str, Tensor]:
        return init_state(self.arch, self.input_shape, self.num_outputs, seed)


def model_spec_for(dataset: Dataset, model: str) -> ModelSpec:
    """The model a config names for `dataset`; "auto" picks the CNN for images and linear for tabular data."""
    arch = model
    if model == "auto":
        arch = "cnn" if len(dataset.input_shape) == 3 else "linear"
    return ModelSpec(arch, dataset.input_shape, dataset.num_outputs)


def init_state(arch: str, input_shape: tuple[int, ...], num_outputs: int, seed: int) -> dict[str, Tensor]:
    """The initial weights for `seed`: same arguments, bit-identical tensors, on any CPU run.

    torch's default initialisers draw from the global RNG; fork it so callers' RNG state is
    untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(arch, input_shape, num_outputs)
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
