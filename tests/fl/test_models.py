"""Models: output shapes for every dataset's input, parameter counts by hand, seeded init, ids."""

from __future__ import annotations

import pytest
import torch

from fedmarket.errors import FedmarketError
from fedmarket.fl.models import ModelSpec, arch_id, build_model, init_state, parse_arch_id
from fedmarket.fl.params import num_parameters, states_equal

# Every dataset's input shape and output width, with the models that fit it.
CASES = [
    ("digits", (1, 8, 8), 10, ("cnn", "mlp", "linear")),
    ("mnist", (1, 28, 28), 10, ("cnn", "mlp", "linear")),
    ("fmnist", (1, 28, 28), 10, ("cnn", "mlp", "linear")),
    ("cifar10", (3, 32, 32), 10, ("cnn", "mlp", "linear")),
    ("diabetes", (10,), 1, ("mlp", "linear")),
]


@pytest.mark.parametrize("name, shape, outputs, archs", CASES, ids=[c[0] for c in CASES])
def test_output_shape_for_every_dataset(name: str, shape: tuple, outputs: int, archs: tuple) -> None:
    for arch in archs:
        model = build_model(arch, shape, outputs)
        assert model(torch.zeros(3, *shape)).shape == (3, outputs)


def conv(cin: int, cout: int, k: int = 5) -> int:
    return cout * cin * k * k + cout


def fc(fin: int, fout: int) -> int:
    return fin * fout + fout


def test_cnn_parameter_counts_by_hand() -> None:
    # conv 32 k5 -> pool -> conv 64 k5 -> pool -> fc 512 -> fc 10; padding keeps H/4 x W/4 at the end.
    digits = conv(1, 32) + conv(32, 64) + fc(64 * 2 * 2, 512) + fc(512, 10)
    mnist = conv(1, 32) + conv(32, 64) + fc(64 * 7 * 7, 512) + fc(512, 10)
    cifar = conv(3, 32) + conv(32, 64) + fc(64 * 8 * 8, 512) + fc(512, 10)
    assert num_parameters(init_state("cnn", (1, 8, 8), 10, 0)) == digits
    assert num_parameters(init_state("cnn", (1, 28, 28), 10, 0)) == mnist == 1_663_370  # McMahan et al.'s figure
    assert num_parameters(init_state("cnn", (3, 32, 32), 10, 0)) == cifar
    assert num_parameters(init_state("mlp", (1, 28, 28), 10, 0)) == fc(784, 200) + fc(200, 200) + fc(200, 10)
    assert num_parameters(init_state("linear", (10,), 1, 0)) == 11


def test_init_state_is_seeded_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = init_state("cnn", (1, 8, 8), 10, seed=4)
    after = torch.rand(1)
    assert torch.equal(before, after)
    assert states_equal(a, init_state("cnn", (1, 8, 8), 10, seed=4))
    assert not states_equal(a, init_state("cnn", (1, 8, 8), 10, seed=5))
    assert all(t.dtype == torch.float32 for t in a.values())


def test_arch_id_is_stable_and_round_trips() -> None:
    assert arch_id("cnn", (1, 8, 8), 10) == "cnn-v1:1x8x8:10"
    assert arch_id("linear", (10,), 1) == "linear-v1:10:1"
    spec = ModelSpec("mlp", (3, 32, 32), 10)
    assert parse_arch_id(spec.id) == spec
    with pytest.raises(FedmarketError):
        parse_arch_id("cnn-v9:1x8x8:10")
    with pytest.raises(FedmarketError):
        parse_arch_id("garbage")


def test_bad_models_are_refused() -> None:
    with pytest.raises(FedmarketError, match="unknown model"):
        build_model("resnet", (1, 8, 8), 10)
    with pytest.raises(FedmarketError, match="cnn needs"):
        build_model("cnn", (10,), 1)
    with pytest.raises(FedmarketError, match="at least one output"):
        build_model("linear", (10,), 0)


def test_fedavgcnn_is_pfllibs_unpadded_cnn() -> None:
    # conv 1->32 k5 -> pool -> conv 32->64 k5 -> pool (28 -> 24 -> 12 -> 8 -> 4) -> fc 1024->512 -> fc 10.
    mnist = conv(1, 32) + conv(32, 64) + fc(64 * 4 * 4, 512) + fc(512, 10)
    assert num_parameters(init_state("fedavgcnn", (1, 28, 28), 10, 0)) == mnist == 582_026  # PFLlib's figure
    # cifar10: 32 -> 28 -> 14 -> 10 -> 5, PFLlib's dim=1600
    assert num_parameters(init_state("fedavgcnn", (3, 32, 32), 10, 0)) == conv(3, 32) + conv(32, 64) + fc(1600, 512) + fc(512, 10)
    assert build_model("fedavgcnn", (1, 28, 28), 10)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert arch_id("fedavgcnn", (1, 28, 28), 10) == "fedavgcnn-v1:1x28x28:10"
    assert parse_arch_id("fedavgcnn-v1:1x28x28:10") == ModelSpec("fedavgcnn", (1, 28, 28), 10)
    with pytest.raises(FedmarketError, match="at least 16x16"):
        build_model("fedavgcnn", (1, 8, 8), 10)  # digits are too small for two unpadded k5 convolutions
