"""Split a dataset's samples among simulated clients, each with its own local train/test split.

Schemes (one string, as a task spec or the CLI names them):
- ``iid``: a uniform random split into near-equal shares.
- ``pat:K``: the pathological non-IID split of McMahan et al. 2017 ("Communication-Efficient
  Learning of Deep Networks from Decentralized Data"), as the seed paper uses it: every client
  holds samples of exactly K labels. The N*K label slots are spread over the C labels as evenly
  as possible (each label held by floor or ceil of N*K/C clients, so every label is used when
  N*K >= C); each client in turn takes the K distinct labels with the most unfilled slots, ties
  broken at random, which always leaves a feasible deal for the remaining clients. Each label's
  samples are then split evenly among its holders. This is McMahan's shard construction (sort by
  label, K shards per client) without its flaw of sometimes dealing a client two shards of one
  label.
- ``dir:ALPHA``: label proportions per client drawn from Dirichlet(ALPHA), as in Hsu et al. 2019
  ("Measuring the Effects of Non-Identical Data Distribution for Federated Visual
  Classification"): for every label c, p_c ~ Dir(ALPHA * 1_N) shares that label's samples among
  the N clients. Small ALPHA -> each client sees few labels; large ALPHA -> near-uniform.

Regression targets are first cut into quantile bins (NUM_TARGET_BINS), which then act as labels.

Minimum size: a Dirichlet draw can leave a client (nearly) empty. After the draw, every client
below MIN_CLIENT_SAMPLES takes randomly chosen samples from the currently largest client until it
has MIN_CLIENT_SAMPLES; this moves only a handful of samples, always terminates, and keeps the
draw deterministic. A dataset with fewer than MIN_CLIENT_SAMPLES * N samples is refused.

Each client's samples are then shuffled and split 75 / 25 into local train and test sets
(test = round(n / 4), at least 1). One numpy Generator seeded once drives every random choice.

A market's split (`market_partition`) first draws `holdout` samples apart with their own stream
(fl.seeds.holdout_entropy), for the validators and the aggregator, and partitions the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fedmarket.errors import FedmarketError
from fedmarket.fl.seeds import holdout_entropy, partition_seed

MIN_CLIENT_SAMPLES = 8
NUM_TARGET_BINS = 10
TEST_FRACTION_DENOMINATOR = 4  # 1 in 4 samples is local test data: the 75 / 25 split
SCHEMES = ("iid", "pat:K", "dir:ALPHA")


@dataclass(frozen=True)
class Scheme:
    kind: str  # "iid" | "pat" | "dir"
    labels_per_client: int = 0
    alpha: float = 0.0

    def __str__(self) -> str:
        if self.kind == "pat":
            return f"pat:{self.labels_per_client}"
        if self.kind == "dir":
            return f"dir:{self.alpha:g}"
        return "iid"


def parse_scheme(text: str) -> Scheme:
    """Parse "iid", "pat:K" or "dir:ALPHA" (bare "pat" means K = 2, bare "dir" means ALPHA = 0.1)."""
    kind, _, arg = text.strip().lower().partition(":")
    try:
        if kind == "iid" and not arg:
            return Scheme("iid")
        if kind == "pat":
            k = int(arg) if arg else 2
            if k < 1:
                raise ValueError
            return Scheme("pat", labels_per_client=k)
        if kind == "dir":
            alpha = float(arg) if arg else 0.1
            if not alpha > 0 or not np.isfinite(alpha):
                raise ValueError
            return Scheme("dir", alpha=alpha)
    except ValueError:
        pass
    raise FedmarketError(f"bad partition {text!r}; use iid, pat:K (K >= 1 labels per client) or dir:ALPHA (ALPHA > 0)")


@dataclass(frozen=True, eq=False)
class ClientData:
    """Indices into the pooled dataset: the client's local train and test samples."""

    train: np.ndarray
    test: np.ndarray

    @property
    def all(self) -> np.ndarray:
        return np.concatenate([self.train, self.test])


@dataclass(frozen=True)
class ClientSummary:
    client: int
    train: int
    test: int
    labels: dict[int, int]  # label (or target bin) -> number of samples, train and test together


@dataclass(frozen=True)
class PartitionSummary:
    """Samples and label counts per client: `to_dict()` for JSON, printable with rich."""

    scheme: str
    seed: int
    label_kind: str  # "label" or "target bin"
    clients: tuple[ClientSummary, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "seed": self.seed,
            "label_kind": self.label_kind,
            "clients": [{"client": c.client, "train": c.train, "test": c.test, "labels": {str(k): v for k, v in c.labels.items()}} for c in self.clients],
        }

    def __rich__(self):  # noqa: ANN204 - rich's protocol
        from rich.table import Table

        table = Table(title=f"partition {self.scheme} (seed {self.seed})")
        for column in ("client", "train", "test", f"{self.label_kind}: count"):
            table.add_column(column, justify="right" if column in ("client", "train", "test") else "left")
        for c in self.clients:
            counts = " ".join(f"{k}:{v}" for k, v in sorted(c.labels.items()))
            table.add_row(str(c.client), str(c.train), str(c.test), counts)
        return table


@dataclass(frozen=True, eq=False)
class Partition:
    scheme: Scheme
    seed: int
    clients: tuple[ClientData, ...]
    labels: np.ndarray  # int64 labels used for splitting (regression: target bins)
    label_kind: str

    @property
    def num_clients(self) -> int:
        return len(self.clients)

    def train_sizes(self) -> list[int]:
        return [len(c.train) for c in self.clients]

    def summary(self) -> PartitionSummary:
        rows = []
        for i, client in enumerate(self.clients):
            values, counts = np.unique(self.labels[client.all], return_counts=True)
            labels = {int(v): int(n) for v, n in zip(values, counts)}
            rows.append(ClientSummary(i, len(client.train), len(client.test), labels))
        return PartitionSummary(str(self.scheme), self.seed, self.label_kind, tuple(rows))


def target_bins(targets: np.ndarray, num_bins: int = NUM_TARGET_BINS) -> np.ndarray:
    """Quantile bin (0 .. num_bins-1) of each regression target: equal-count bins act as labels."""
    edges = np.quantile(targets, np.linspace(0, 1, num_bins + 1)[1:-1])
    return np.searchsorted(edges, targets, side="right").astype(np.int64)


def _iid(labels: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    return list(np.array_split(rng.permutation(len(labels)), n))


def _pathological(labels: np.ndarray, n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    classes = np.unique(labels)
    if k > len(classes):
        raise FedmarketError(f"pat:{k} asks for {k} labels per client but the data has only {len(classes)}")
    slots = np.full(len(classes), (n * k) // len(classes), dtype=np.int64)
    slots[rng.permutation(len(classes))[: (n * k) % len(classes)]] += 1
    holders: dict[int, list[int]] = {int(c): [] for c in classes}
    for client in range(n):
        # Most unfilled slots first, random among equals: no label is left needing more holders
        # than there are clients still to deal.
        tie_break = rng.random(len(classes))
        chosen = np.lexsort((tie_break, -slots))[:k]
        slots[chosen] -= 1
        for c in classes[chosen]:
            holders[int(c)].append(client)
    parts: list[list[np.ndarray]] = [[] for _ in range(n)]
    for c in classes:
        owners = holders[int(c)]
        if not owners:
            continue  # fewer than C label slots in all: this label stays unused
        members = rng.permutation(np.flatnonzero(labels == c))
        for owner, chunk in zip(owners, np.array_split(members, len(owners))):
            parts[owner].append(chunk)
    return [np.concatenate(p) if p else np.empty(0, dtype=np.int64) for p in parts]


def _dirichlet(labels: np.ndarray, n: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    parts: list[list[np.ndarray]] = [[] for _ in range(n)]
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        shares = rng.dirichlet(np.full(n, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
        for client, chunk in enumerate(np.split(members, cuts)):
            parts[client].append(chunk)
    return [np.concatenate(p) for p in parts]


def _top_up(parts: list[np.ndarray], minimum: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Move random samples from the largest client to every client short of `minimum`."""
    parts = [p.copy() for p in parts]
    for i in range(len(parts)):
        while len(parts[i]) < minimum:
            donor = int(np.argmax([len(p) for p in parts]))
            need = min(minimum - len(parts[i]), len(parts[donor]) - minimum)
            if need <= 0:
                raise FedmarketError("not enough samples to give every client its minimum")
            take = rng.choice(len(parts[donor]), size=need, replace=False)
            parts[i] = np.concatenate([parts[i], parts[donor][take]])
            parts[donor] = np.delete(parts[donor], take)
    return parts


def _split_train_test(indices: np.ndarray, rng: np.random.Generator) -> ClientData:
    shuffled = rng.permutation(np.sort(indices))
    n_test = max(1, (len(shuffled) + TEST_FRACTION_DENOMINATOR // 2) // TEST_FRACTION_DENOMINATOR)
    return ClientData(train=shuffled[n_test:].astype(np.int64), test=shuffled[:n_test].astype(np.int64))


def partition(labels: np.ndarray, num_clients: int, scheme: str | Scheme, seed: int) -> Partition:
    """Split sample indices 0..len(labels)-1 among `num_clients` clients by `scheme`.

    `labels` are int class labels, or float regression targets (split over quantile bins).
    Deterministic: the same arguments give the same partition.
    """
    parsed = scheme if isinstance(scheme, Scheme) else parse_scheme(scheme)
    labels = np.asarray(labels)
    if num_clients < 1:
        raise FedmarketError("the number of clients must be at least 1")
    if len(labels) < MIN_CLIENT_SAMPLES * num_clients:
        raise FedmarketError(f"{len(labels)} samples cannot give {num_clients} clients {MIN_CLIENT_SAMPLES} samples each; use fewer clients")
    if np.issubdtype(labels.dtype, np.floating):
        split_labels, label_kind = target_bins(labels), "target bin"
    else:
        split_labels, label_kind = labels.astype(np.int64), "label"
    rng = np.random.default_rng(partition_seed(seed))
    if parsed.kind == "iid":
        parts = _iid(split_labels, num_clients, rng)
    elif parsed.kind == "pat":
        parts = _pathological(split_labels, num_clients, parsed.labels_per_client, rng)
    else:
        parts = _dirichlet(split_labels, num_clients, parsed.alpha, rng)
    if parsed.kind == "pat":
        short = [i for i, p in enumerate(parts) if len(p) < MIN_CLIENT_SAMPLES]
        if short:
            # Topping up would break "exactly K labels": refuse instead.
            raise FedmarketError(f"{parsed} leaves client {short[0]} with {len(parts[short[0]])} samples; use fewer clients")
    else:
        parts = _top_up(parts, MIN_CLIENT_SAMPLES, rng)
    clients = tuple(_split_train_test(p, rng) for p in parts)
    return Partition(parsed, seed, clients, split_labels, label_kind)


def market_partition(labels: np.ndarray, clients: int, scheme: str, seed: int, holdout: int) -> tuple[Partition, np.ndarray]:
    """(partition of the pool, held-out indices): `holdout` samples drawn with `seed` are kept
    apart (a market's validators and aggregator hold them), the rest is partitioned among
    `clients`; every index refers to the whole data set."""
    labels = np.asarray(labels)
    if not 0 <= holdout < len(labels):
        raise FedmarketError(f"cannot hold out {holdout} of {len(labels)} samples")
    order = np.random.default_rng(holdout_entropy(seed)).permutation(len(labels))
    held, pool = np.sort(order[:holdout]), np.sort(order[holdout:])
    parts = partition(labels[pool], clients, scheme, seed)
    remapped = tuple(ClientData(train=pool[c.train], test=pool[c.test]) for c in parts.clients)
    split_labels = np.full(len(labels), -1, dtype=np.int64)  # held-out samples belong to no client
    split_labels[pool] = parts.labels
    return Partition(parts.scheme, parts.seed, remapped, split_labels, parts.label_kind), held
