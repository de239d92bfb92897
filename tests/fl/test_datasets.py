"""Datasets: shapes, dtypes, normalisation; fmnist / cifar10 parsed from tiny files in the real formats."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fedmarket.errors import FedmarketError
from fedmarket.fl import datasets
from fedmarket.fl.datasets import (
    CIFAR10_STATS,
    DATASETS,
    FMNIST_FILES,
    FMNIST_STATS,
    dataset_available,
    dataset_named,
    load_dataset,
    parse_idx,
)


def test_digits_shape_and_normalisation() -> None:
    d = load_dataset("digits")
    assert d.x.shape == (1797, 1, 8, 8) and d.x.dtype == np.float32
    assert d.y.dtype == np.int64 and d.num_classes == 10 and d.task == "classification"
    assert d.input_shape == (1, 8, 8) and d.num_outputs == 10
    # Fixed constants are the dataset's own mean / std: the result is standardised.
    assert abs(float(d.x.mean())) < 1e-3 and abs(float(d.x.std()) - 1.0) < 1e-3
    # A 0 pixel maps to -mean/std.
    assert np.isclose(d.x.min(), -0.3053 / 0.3760, atol=1e-6)


def test_mnist_subset_shape_and_balance() -> None:
    d = load_dataset("mnist")
    assert d.x.shape == (5000, 1, 28, 28) and d.x.dtype == np.float32
    assert np.bincount(d.y).tolist() == [500] * 10
    assert np.isclose(d.x.min(), -0.1307 / 0.3081, atol=1e-6)
    assert abs(float(d.x.mean())) < 0.05 and abs(float(d.x.std()) - 1.0) < 0.05


def test_diabetes_is_standardised_regression() -> None:
    d = load_dataset("diabetes")
    assert d.task == "regression" and d.num_classes == 0 and d.num_outputs == 1
    assert d.x.shape == (442, 10) and d.y.shape == (442,) and d.y.dtype == np.float32
    np.testing.assert_allclose(d.x.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(d.x.std(axis=0), 1, atol=1e-4)
    assert abs(float(d.y.mean())) < 1e-5 and abs(float(d.y.std()) - 1) < 1e-4


def test_unknown_dataset_lists_the_valid_ones() -> None:
    with pytest.raises(FedmarketError) as err:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(err.value)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fmnist(directory: Path, train: int = 6, test: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(train + test, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=train + test).astype(np.uint8)
    parts = (images[:train], labels[:train], images[train:], labels[train:])
    directory.mkdir(parents=True, exist_ok=True)
    for remote, array in zip(FMNIST_FILES, parts):
        with gzip.open(directory / remote.name, "wb") as handle:
            handle.write(idx_bytes(array))
    return images, labels


def test_parse_idx_reads_header_and_refuses_bad_files() -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(array)), array)
    with pytest.raises(FedmarketError, match="magic"):
        parse_idx(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(FedmarketError, match="header says"):
        parse_idx(idx_bytes(array)[:-1])


def test_fmnist_from_idx_files(tmp_path: Path) -> None:
    images, labels = write_fmnist(tmp_path)
    d = load_dataset("fmnist", tmp_path, download=False)
    assert d.x.shape == (10, 1, 28, 28) and d.input_shape == (1, 28, 28)
    np.testing.assert_array_equal(d.y, labels.astype(np.int64))
    mean, std = FMNIST_STATS[0][0], FMNIST_STATS[1][0]
    expected = (images[7, 3, 5] / 255.0 - mean) / std
    assert np.isclose(d.x[7, 0, 3, 5], expected, atol=1e-6)
    assert dataset_available("fmnist", tmp_path)


def cifar_batch(rng: np.random.Generator, count: int) -> tuple[bytes, np.ndarray, list[int]]:
    data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=count)]
    return pickle.dumps({b"batch_label": b"x", b"labels": labels, b"data": data}, protocol=2), data, labels


def write_cifar(directory: Path, as_archive: bool) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(2)
    all_data, all_labels, blobs = [], [], {}
    for name in datasets.CIFAR10_BATCHES:
        blob, data, labels = cifar_batch(rng, 2)
        blobs[name] = blob
        all_data.append(data)
        all_labels += labels
    directory.mkdir(parents=True, exist_ok=True)
    if as_archive:
        with tarfile.open(directory / datasets.CIFAR10_ARCHIVE.name, "w:gz") as tar:
            for name, blob in blobs.items():
                info = tarfile.TarInfo(f"{datasets.CIFAR10_DIR}/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        (directory / datasets.CIFAR10_DIR).mkdir()
        for name, blob in blobs.items():
            (directory / datasets.CIFAR10_DIR / name).write_bytes(blob)
    return np.concatenate(all_data), all_labels


@pytest.mark.parametrize("as_archive", [False, True], ids=["extracted", "tar.gz"])
def test_cifar10_from_python_batches(tmp_path: Path, as_archive: bool) -> None:
    data, labels = write_cifar(tmp_path, as_archive)
    d = load_dataset("cifar10", tmp_path, download=False)
    assert d.x.shape == (12, 3, 32, 32) and d.input_shape == (3, 32, 32) and d.num_classes <= 10
    assert d.y.tolist() == labels
    # Rows are 1024 red, then 1024 green, then 1024 blue values, row-major 32x32.
    sample, channel, row, col = 5, 1, 4, 7
    raw = data[sample, channel * 1024 + row * 32 + col]
    expected = (raw / 255.0 - CIFAR10_STATS[0][channel]) / CIFAR10_STATS[1][channel]
    assert np.isclose(d.x[sample, channel, row, col], expected, atol=1e-6)


def test_cifar_batch_refuses_pickles_that_call_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("pwned",))

    with pytest.raises(FedmarketError, match="refusing"):
        datasets.parse_cifar_batch(pickle.dumps({b"data": Evil(), b"labels": []}))


@pytest.mark.parametrize("name, files", [("fmnist", "train-images-idx3-ubyte.gz"), ("cifar10", "cifar-10-python.tar.gz")])
def test_missing_files_say_where_to_put_which(tmp_path: Path, name: str, files: str) -> None:
    with pytest.raises(FedmarketError) as err:
        load_dataset(name, tmp_path / "empty", download=False)
    message = str(err.value)
    assert files in message and str(tmp_path / "empty") in message and "\n" not in message
    assert not dataset_available(name, tmp_path / "empty")


def test_download_keeps_a_file_only_when_its_md5_matches(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"fashion")
    good = datasets._RemoteFile("f.bin", source.as_uri(), hashlib.md5(b"fashion").hexdigest())
    target = datasets._download(good, tmp_path / "out")
    assert target.read_bytes() == b"fashion"
    bad = datasets._RemoteFile("g.bin", source.as_uri(), "0" * 32)
    with pytest.raises(FedmarketError, match="md5"):
        datasets._download(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "g.bin").exists() and not (tmp_path / "out" / "g.bin.part").exists()


def test_data_dir_defaults_to_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fmnist(tmp_path / "fmnist")
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path))
    assert load_dataset("fmnist", download=False).x.shape[0] == 10


@pytest.mark.parametrize("name", ["digits", "mnist"])
def test_pm1_scaling_maps_pixels_onto_minus_one_to_one(name: str) -> None:
    standard, pm1 = load_dataset(name), load_dataset(name, scaling="pm1")
    assert pm1.scaling == "pm1" and standard.scaling == "standard" and pm1.x.dtype == np.float32
    assert float(pm1.x.min()) == -1.0 and float(pm1.x.max()) == 1.0  # blank and full pixels
    # The same pixels, an affine map apart: pm1 = 2 p - 1 with p = standard * std + mean.
    ((mean,), (std,)) = datasets.DIGITS_STATS if name == "digits" else datasets.MNIST_STATS
    np.testing.assert_allclose(pm1.x, 2 * (standard.x * std + mean) - 1, atol=1e-5)
    assert np.array_equal(pm1.y, standard.y)


def test_scaling_is_checked() -> None:
    with pytest.raises(FedmarketError, match="unknown input scaling"):
        load_dataset("digits", scaling="minmax")
    with pytest.raises(FedmarketError, match="applies to image data sets"):
        load_dataset("diabetes", scaling="pm1")


def test_task_spec_carries_the_scaling_and_keeps_the_default_bytes() -> None:
    from fedmarket.fl.taskspec import TaskData, TaskSpec

    # The demo task's spec file, byte for byte as before input_scaling existed (its CID is on chains).
    before = b'{"aggregation":"fedavg","batch_size":10,"dataset":"digits","epochs":1,"format":"fedmarket-task/1","holdout":400,'
    assert TaskSpec().to_bytes().startswith(before) and b"input_scaling" not in TaskSpec().to_bytes()
    spec = TaskSpec(dataset="digits", model="cnn", input_scaling="pm1")
    assert b'"input_scaling":"pm1"' in spec.to_bytes() and TaskSpec.from_bytes(spec.to_bytes()) == spec
    assert float(TaskData.load(spec).dataset.x.min()) == -1.0
    with pytest.raises(FedmarketError, match="unknown input scaling"):
        TaskSpec(input_scaling="minmax")


def test_a_passed_data_set_must_be_the_one_the_config_names() -> None:
    digits = load_dataset("digits")
    assert dataset_named("digits", None, "standard", digits) is digits
    with pytest.raises(FedmarketError, match=r"the passed data set is digits \(standard\), the config names mnist \(standard\)"):
        dataset_named("mnist", None, "standard", digits)
    assert dataset_named("digits", None, "standard").name == "digits"
